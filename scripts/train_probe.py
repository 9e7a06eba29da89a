"""Trains the shapes probe with the default recipe and writes the shipped weights.

    python scripts/train_probe.py [--image-size 16 32 64] [--out jaxgan/metrics/probe_weights]

One file per size, named by the recipe's key (``probe_<size>_<tag>.msgpack``),
which is where :func:`jaxgan.metrics.probe.load_probe` looks before its cache.
Add the sizes written to ``SHIPPED_SIZES`` in ``jaxgan/metrics/probe.py``:
``tests/test_metrics.py`` then checks that each of them is there for the
current recipe and reads fresh real renders right. After changing
:class:`~jaxgan.metrics.probe.ProbeSettings` or the network the tag changes:
run it again and delete the files of the old tag. Prints each probe's training
time and held-out accuracy.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgan import xla_flags  # pylint: disable=wrong-import-position  (imports nothing heavy)

if __name__ == "__main__":
  xla_flags.restart_with_huge_pages()  # re-executes once, before anything runs
xla_flags.set_entry_point_defaults()  # before JAX is imported

from jaxgan.metrics import probe as probe_lib  # pylint: disable=wrong-import-position


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--image-size", type=int, nargs="+", default=[16, 32, 64])
  parser.add_argument("--out", default=probe_lib.SHIPPED_DIR,
                      help="output directory (default: the package's probe_weights)")
  args = parser.parse_args(argv)
  settings = probe_lib.ProbeSettings()
  for size in args.image_size:
    probe = probe_lib.train_probe(size, settings, log=lambda m: print(m, flush=True))
    path = os.path.join(args.out, os.path.basename(probe_lib.shipped_path(size, settings)))
    probe_lib.save_probe(probe, path)
    worst = {split: min((acc[name], name) for name in probe_lib.ATTRIBUTES)
             for split, acc in probe.info["accuracy"].items()}
    print(f"{size}px: {probe.info['train_seconds']:.0f} s, worst held-out attribute "
          f"{worst}, {os.path.getsize(path):,} bytes at {path}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
