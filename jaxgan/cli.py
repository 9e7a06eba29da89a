"""Shared pieces of the command-line entry points: ``--config`` flag parsing,
and the sampling options ``sample.py`` and ``evaluate.py`` both take.

Imports no JAX: entry points call it before setting XLA's flags.
"""

from __future__ import annotations

import argparse
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


# The scores --rank-by offers: jaxgan.models.gan.SCORES (tested equal; that
# module imports JAX, which the entry points parse their arguments before).
RANK_BY_CHOICES = ("words", "contrastive", "match")


def add_sampling_args(parser: argparse.ArgumentParser) -> None:
  """``--truncation``, ``--best-of`` and ``--rank-by``, as
  :meth:`jaxgan.sampling.Pipeline.generate` takes them."""
  parser.add_argument("--truncation", type=float, default=1.0,
                      help="noise truncation psi in (0, 1]: each value drawn from a normal "
                           "truncated to [-2 psi, 2 psi]; 1.0 (the default) is off")
  parser.add_argument("--best-of", type=int, default=1,
                      help="candidates drawn for each image; the one the run's discriminator "
                           "scores best by --rank-by is kept (default 1: no ranking; needs "
                           "a run directory, not an exported model)")
  parser.add_argument("--rank-by", default="words", choices=RANK_BY_CHOICES,
                      help="D's score for --best-of: its caption-word head's likelihood of "
                           "the prompt's words (default), its contrastive cosine, or its "
                           "matching logit")
