"""Evaluates a trained ``shapes`` run: caption alignment, Fréchet distances, FID.

    python evaluate.py --workdir runs/base [--step 5000] [--num-prompts 200] \
        [--fid-weights fid_inception.npz]

Appends one JSON line to ``runs/base/metrics.jsonl`` and prints a table. The
shapes probe that reads the images is taken from the package
(``jaxgan/metrics/probe_weights``, written by ``scripts/train_probe.py``; none
shipped yet), else from ``$JAXGAN_CACHE_DIR`` (default ``~/.cache/jaxgan``);
failing both, the first evaluation at an image size trains it (68 minutes at
32px on a 2-core CPU that a training run shared) and caches it. For
``--fid-weights`` see ``jaxgan/metrics/inception.py``.
"""

import argparse
import sys


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description="Evaluate a jaxgan run on shapes.")
  parser.add_argument("--workdir", required=True, help="the run directory")
  parser.add_argument("--step", type=int, default=None,
                      help="checkpoint step (default: the latest)")
  parser.add_argument("--num-prompts", type=int, default=200,
                      help="evaluation prompts per split (train and holdout)")
  parser.add_argument("--fid-weights", default=None,
                      help="converted FID Inception weights (.npz); FID is skipped without")
  parser.add_argument("--seed", type=int, default=0, help="noise seed")
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--cache-dir", default=None,
                      help="probe and FID statistics cache (default $JAXGAN_CACHE_DIR "
                           "or ~/.cache/jaxgan)")
  args = parser.parse_args(argv)
  if args.num_prompts < 2:
    parser.error("--num-prompts must be at least 2")

  from jaxgan import metrics  # pylint: disable=g-import-not-at-top
  try:
    result = metrics.evaluate_run(
        args.workdir, step=args.step, num_prompts=args.num_prompts,
        fid_weights=args.fid_weights, seed=args.seed, batch_size=args.batch_size,
        cache_dir=args.cache_dir, log=lambda m: print(m, file=sys.stderr, flush=True))
  except (FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(metrics.format_table(result))
  print(f"appended to {args.workdir.rstrip('/')}/{metrics.METRICS_FILE}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
