"""Converts a data set into ArrayRecord shards of pre-resized images: decode and resize once.

    python scripts/prepare_data.py --config configs/cub.py --config.data.path=data/birds \
        --out data/cub_256 [--size 256] [--splits train,test] [--workers 2]

Any source a config can name (``imagefolder``, ``cub``, ``coco``, ``tfds:NAME``,
``shapes``) is read once; each image is decoded, cropped to its box (CUB),
resized so its short side is ``ceil(size * 76/64)`` (the pipeline's random crop
still has room) and re-encoded (JPEG quality 95, or ``--format png``). Train on
the result with::

    python train.py --config configs/cub.py --workdir runs/cub \
        --config.data.source=arrayrecord --config.data.path=data/cub_256

Unreadable images are skipped and listed in ``DIR/info.json``. Nothing in the
source folder is written; an existing non-empty ``--out`` is refused unless
``--overwrite``. Without ``--splits``, ``train`` and, when the source has one,
``test`` are converted.
"""

import os
import sys

from absl import app, flags
from ml_collections import config_flags

# `configs` is a top-level folder of the repo, not part of the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgan import cli  # noqa: E402
from jaxgan.data import DataError, build_source, convert  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/base.py", "Python config file naming the source (data.source, "
    "data.path).", lock_config=True)
_OUT = flags.DEFINE_string("out", None, "Output directory for the shards.", required=True)
_SIZE = flags.DEFINE_integer("size", None, "Training image size to prepare for "
                             "(default: the config's image_size).")
_SPLITS = flags.DEFINE_list("splits", None, "Splits to convert (default: train, and test "
                            "when the source has it).")
_WORKERS = flags.DEFINE_integer("workers", min(8, os.cpu_count() or 1),
                                "Decoding processes (0: this process).", lower_bound=0)
_FORMAT = flags.DEFINE_enum("format", "jpeg", list(convert.IMAGE_FORMATS),
                            "Encoding of the stored images.")
_QUALITY = flags.DEFINE_integer("quality", 95, "JPEG quality.", lower_bound=1,
                                upper_bound=100)
_SHARD_SIZE = flags.DEFINE_integer("shard_size", convert.DEFAULT_SHARD_SIZE,
                                   "Records per shard at most.", lower_bound=1)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace a conversion already in --out.")


def _sources(config):
  """The splits to convert, by name; a missing default ``test`` split is left out."""
  if _SPLITS.value:
    return {split: build_source(config, split) for split in _SPLITS.value}
  sources = {"train": build_source(config, "train")}
  try:
    sources["test"] = build_source(config, "test")
  except DataError as error:
    print(f"prepare_data.py: no test split, converting train only ({error})",
          file=sys.stderr)
  return sources


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  if config.data.source == "arrayrecord":
    print("prepare_data.py: error: the source is already arrayrecord.", file=sys.stderr)
    return 1
  try:
    sources = _sources(config)
    description = "; ".join(getattr(s, "description", config.data.source)
                            for s in sources.values())
    info = convert.prepare(
        sources, _OUT.value, size=_SIZE.value or config.image_size, description=description,
        image_format=_FORMAT.value, quality=_QUALITY.value, workers=_WORKERS.value,
        shard_size=_SHARD_SIZE.value, overwrite=_OVERWRITE.value)
  except (DataError, OSError) as error:
    print(f"prepare_data.py: error: {error}", file=sys.stderr)
    return 1
  for split, entry in info["splits"].items():
    print(f"{split}: {entry['count']} examples in {len(entry['shards'])} shard(s), "
          f"{len(entry['skipped'])} unreadable skipped")
    for skipped in entry["skipped"][:5]:
      print(f"  skipped {skipped['name']}: {skipped['error']}")
  print(f"wrote {os.path.abspath(_OUT.value)} ({info['load_size']}px short side, for "
        f"image_size {info['image_size']}); train with --config.data.source=arrayrecord "
        f"--config.data.path={os.path.abspath(_OUT.value)}")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)),
          flags_parser=lambda argv: cli.parse_flags(argv, "prepare_data.py"))
