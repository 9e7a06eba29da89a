"""Computes and caches the FID reference statistics of a data set's split.

    python scripts/fid_reference.py --config configs/cub.py --config.data.path=data/birds \
        --split test --fid-weights fid_inception.npz [--cache_dir DIR]

The split's images are prepared as the pipeline prepares them at test time
(box crop, short side resized to ``image_size``, centre square; no random crop
or flip), passed through the FID Inception, and their mean and covariance
written as ``.npz`` (``mu``, ``sigma``) into the cache (``$JAXGAN_CACHE_DIR``,
default ``~/.cache/jaxgan``), keyed by source, split, size and weights digest.
``evaluate.py`` on a run with the same data reads them from there (and
computes them itself when they are missing). Unreadable images are skipped
and listed in the ``.json`` beside the ``.npz``.
"""

import os
import sys

from absl import app, flags
from ml_collections import config_flags

# `configs` is a top-level folder of the repo, not part of the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgan import cli  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/base.py", "Python config file naming the data (data.source, "
    "data.path, image_size).", lock_config=True)
_SPLIT = flags.DEFINE_string("split", "test", "The split to describe.")
_WEIGHTS = flags.DEFINE_string("fid_weights", None, "Converted FID Inception weights "
                               "(.npz, see jaxgan/metrics/inception.py).", required=True)
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Cache directory (default "
                                 "$JAXGAN_CACHE_DIR or ~/.cache/jaxgan).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 50, "Images per Inception call.",
                                   lower_bound=1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from jaxgan.metrics import inception, probe, real_data  # pylint: disable=g-import-not-at-top
  try:
    features = inception.InceptionFeatures(_WEIGHTS.value, batch_size=_BATCH_SIZE.value)
    _, _, info = real_data.reference_statistics(
        _CONFIG.value, _SPLIT.value, features, _WEIGHTS.value,
        _CACHE_DIR.value or probe.default_cache_dir(), batch_size=_BATCH_SIZE.value,
        log=lambda m: print(m, file=sys.stderr, flush=True))
  except (ValueError, OSError) as error:  # DataError is a ValueError
    print(f"fid_reference.py: error: {error}", file=sys.stderr)
    return 1
  state = "already cached" if info["cached"] else "computed"
  print(f"{state}: {info['path']} ({info['count']} images of {info['source']}, "
        f"{len(info['skipped'])} unreadable skipped)")
  for skipped in info["skipped"][:5]:
    print(f"  skipped {skipped}")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)),
          flags_parser=lambda argv: cli.parse_flags(argv, "fid_reference.py"))
