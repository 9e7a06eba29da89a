"""Evaluates a trained run: caption alignment, Fréchet distances, FID.

    python evaluate.py --workdir runs/base [--step 5000] [--num-prompts 200] \
        [--fid-weights fid_inception.npz] [--truncation 0.7] [--best-of 4]

A run on real data (any source but ``shapes``) gets FID against its test
split, with DF-GAN's protocol (every test image's captions, ``--repeats``
passes, one random caption per image per pass); the shapes probe does not
apply there, and ``--fid-weights`` is required::

    python evaluate.py --workdir runs/cub --fid-weights fid_inception.npz --repeats 10

The test split's reference statistics are computed on first use and cached
(``scripts/fid_reference.py`` computes them ahead).

Appends one JSON line to ``runs/base/metrics.jsonl`` and prints a table. The
shapes probe that reads the images is taken from the package
(``jaxgan/metrics/probe_weights``, 16, 32 and 64 px, written by
``scripts/train_probe.py``), else from ``$JAXGAN_CACHE_DIR`` (default
``~/.cache/jaxgan``); failing both, the first evaluation at an image size
trains it (about half an hour on a shared 2-core CPU) and caches it. For
``--fid-weights`` see ``jaxgan/metrics/inception.py``.
"""

import argparse
import sys

from jaxgan import cli  # no JAX: the XLA flags are set after parsing


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description="Evaluate a jaxgan run.")
  parser.add_argument("--workdir", required=True, help="the run directory")
  parser.add_argument("--step", type=int, default=None,
                      help="checkpoint step (default: the latest)")
  parser.add_argument("--num-prompts", type=int, default=200,
                      help="shapes: evaluation prompts per split (train and holdout)")
  parser.add_argument("--fid-weights", default=None,
                      help="converted FID Inception weights (.npz); FID is skipped without")
  parser.add_argument("--seed", type=int, default=0, help="noise (and caption choice) seed")
  cli.add_sampling_args(parser)
  parser.add_argument("--split", default="test",
                      help="real data: the split FID is measured against")
  parser.add_argument("--repeats", type=int, default=1,
                      help="real data: passes over the split's captions (DF-GAN's protocol)")
  parser.add_argument("--data-path", default=None,
                      help="real data: where the data is now, if moved since training")
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--cache-dir", default=None,
                      help="probe and FID statistics cache (default $JAXGAN_CACHE_DIR "
                           "or ~/.cache/jaxgan)")
  args = parser.parse_args(argv)
  if args.num_prompts < 2:
    parser.error("--num-prompts must be at least 2")
  if args.repeats < 1:
    parser.error("--repeats must be at least 1")

  from jaxgan import xla_flags  # pylint: disable=g-import-not-at-top
  xla_flags.set_entry_point_defaults()  # before JAX is imported
  from jaxgan import metrics  # pylint: disable=g-import-not-at-top
  try:
    result = metrics.evaluate_run(
        args.workdir, step=args.step, num_prompts=args.num_prompts,
        fid_weights=args.fid_weights, seed=args.seed, batch_size=args.batch_size,
        cache_dir=args.cache_dir, log=lambda m: print(m, file=sys.stderr, flush=True),
        split=args.split, repeats=args.repeats, data_path=args.data_path,
        truncation=args.truncation, best_of=args.best_of, rank_by=args.rank_by)
  except (FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(metrics.format_table(result))
  print(f"appended to {args.workdir.rstrip('/')}/{metrics.METRICS_FILE}")
  return 0


if __name__ == "__main__":
  from jaxgan import xla_flags  # pylint: disable=g-import-not-at-top
  xla_flags.restart_with_huge_pages()  # re-executes once, before anything runs
  sys.exit(main())
