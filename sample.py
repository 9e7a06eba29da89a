"""Generates images from a trained run.

    python sample.py --workdir runs/base --prompt "a small red circle in the top left" \
        --num 4 --out samples.png

``--out`` ending in .png/.jpg/.webp writes one grid, one row per prompt; any
other path is a folder that gets one PNG per image and a JSON sidecar beside
each (prompt, seed, image index, step, truncation, best-of, post-processing). With
``--interpolate`` the frames between two prompts (or two seeds of one prompt)
are written as a one-row grid, as an animation when --out ends with .gif or
.webp, or as numbered PNGs in a folder.

Errors a user can fix (no checkpoint, an unknown --step, an empty prompt, an
unwritable --out...) print one line and exit with status 1.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from jaxgan import cli  # no JAX: the XLA flags are set after parsing


def _parse_args(argv):
  parser = argparse.ArgumentParser(
      description="Generate images from a trained jaxgan run.")
  parser.add_argument("--workdir", required=True, help="the run directory")
  parser.add_argument("--prompt", action="append", default=[],
                      help="a prompt (repeat for several)")
  parser.add_argument("--prompts-file",
                      help="a text file with one prompt a line (blank lines skipped)")
  parser.add_argument("--num", type=int, default=1, help="images per prompt")
  parser.add_argument("--seed", type=int, default=0, help="noise seed")
  parser.add_argument("--seed-b", type=int, default=None,
                      help="with --interpolate: the seed to walk to")
  cli.add_sampling_args(parser)
  parser.add_argument("--out", default=None,
                      help="a .png/.jpg/.webp grid, a .gif/.webp animation "
                           "(--interpolate), or a folder (default: samples.png, "
                           "or interpolation.gif with --interpolate)")
  parser.add_argument("--step", type=int, default=None,
                      help="checkpoint step (default: the latest)")
  parser.add_argument("--batch-size", type=int, default=32,
                      help="images per generator call")
  parser.add_argument("--postprocess", default="",
                      help='post-processing chain, e.g. "auto_levels denoise resize:2" '
                           '(default: none)')
  parser.add_argument("--interpolate", action="store_true",
                      help="walk between two --prompt, or one prompt and --seed/--seed-b")
  parser.add_argument("--frames", type=int, default=8, help="interpolation frames")
  return parser.parse_args(argv)


def _read_prompts(args) -> list[str]:
  prompts = list(args.prompt)
  if args.prompts_file:
    with open(args.prompts_file, encoding="utf-8") as f:
      prompts += [line.strip() for line in f if line.strip()]
  if not prompts:
    raise ValueError("no prompt given; use --prompt TEXT (repeatable) or --prompts-file")
  return prompts


def main(argv=None) -> int:
  args = _parse_args(sys.argv[1:] if argv is None else argv)
  from jaxgan import xla_flags  # pylint: disable=g-import-not-at-top
  xla_flags.set_entry_point_defaults()  # before JAX is imported
  # Before JAX and Orbax load: they log every checkpoint detail at INFO.
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.WARNING)
  warnings.formatwarning = (
      lambda message, category, *unused: f"sample.py: warning: {message}\n")
  from jaxgan import sample_writer  # pylint: disable=g-import-not-at-top
  try:
    prompts = _read_prompts(args)
    if args.interpolate:
      summary = sample_writer.write_interpolation(
          args.workdir, prompts, args.out or "interpolation.gif", frames=args.frames,
          seed=args.seed, seed_b=args.seed_b, truncation=args.truncation,
          step=args.step, postprocess=args.postprocess)
    else:
      summary = sample_writer.write_samples(
          args.workdir, prompts, args.out or "samples.png", num=args.num, seed=args.seed,
          truncation=args.truncation, batch_size=args.batch_size, step=args.step,
          postprocess=args.postprocess, best_of=args.best_of, rank_by=args.rank_by)
    print(summary)
  except (ValueError, FileNotFoundError, OSError) as error:
    message = " ".join(str(error).split())
    print(f"sample.py: error: {message}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  from jaxgan import xla_flags  # pylint: disable=g-import-not-at-top
  xla_flags.restart_with_huge_pages()  # re-executes once, before anything runs
  sys.exit(main())
