"""Shared pieces of the command-line entry points that take ``--config`` files."""

from __future__ import annotations

import sys

from absl import flags


def parse_flags(argv: list[str], program: str) -> list[str]:
  """absl flag parsing with one-line errors (exit 2), for ``app.run(flags_parser=...)``.

  An unknown ``--config.key`` or a bad flag value prints
  ``PROGRAM: error: ...`` instead of a traceback.
  """
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as error:
    overrides = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
    detail = str(error).replace("\\n", " ").replace("\\'", "").strip("'\"")
    print(f"{program}: error: unknown config key among {overrides}: {detail}",
          file=sys.stderr)
    sys.exit(2)
  except flags.Error as error:  # a bad value or an unknown flag
    print(f"{program}: error: {error}", file=sys.stderr)
    sys.exit(2)
