"""Exports a trained run as one self-contained model directory.

    python export.py --workdir runs/base --out model/ [--step N]

See jaxgan/export.py for what the directory holds. ``jaxgan.load_pipeline("model/")``
loads it; ``jax.export.deserialize`` runs its ``generate.stablehlo`` with JAX alone.
Errors a user can fix (no run, no checkpoint, an existing non-empty --out) print
one line and exit with status 1.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description="Export a trained jaxgan run.")
  parser.add_argument("--workdir", required=True, help="the run directory")
  parser.add_argument("--out", required=True, help="a new or empty directory")
  parser.add_argument("--step", type=int, default=None,
                      help="checkpoint step (default: the latest)")
  args = parser.parse_args(sys.argv[1:] if argv is None else argv)
  # Before JAX and Orbax load: they log every checkpoint detail at INFO.
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.WARNING)
  from jaxgan import export  # pylint: disable=g-import-not-at-top
  try:
    manifest = export.export_run(args.workdir, args.out, step=args.step)
  except (ValueError, OSError) as error:
    print(f"export.py: error: {' '.join(str(error).split())}", file=sys.stderr)
    return 1
  print(f"exported step {manifest['step']} of {args.workdir} to {args.out}")
  return 0


if __name__ == "__main__":
  from jaxgan import xla_flags  # pylint: disable=g-import-not-at-top
  xla_flags.restart_with_huge_pages()  # re-executes once, before anything runs
  sys.exit(main())
