"""Data sources and the input pipeline.

``config.data.source`` names the source:

* ``shapes``: procedural captioned renders (:mod:`jaxgan.data.shapes`), the default;
* ``imagefolder``: a folder of images with captions (:mod:`jaxgan.data.imagefolder`);
* ``cub``, ``coco``: DF-GAN's layouts of CUB-200 and COCO (:mod:`jaxgan.data.dfgan_layout`);
* ``arrayrecord``: shards written by ``scripts/prepare_data.py``;
* ``tfds:NAME``: a prepared TensorFlow Datasets data set, read without TensorFlow.
"""

from __future__ import annotations

import ml_collections

from jaxgan.data.files import DataError
from jaxgan.data.pipeline import (UnreadableDataError, fixed_captions, make_dataset,
                                  vocabulary_captions)

# The sources a config may name; ``tfds:NAME`` takes any TFDS name.
SOURCES = ("shapes", "imagefolder", "cub", "coco", "arrayrecord", "tfds:NAME")
# Sources whose images are rendered at the training size, not decoded from files.
RENDERED_SOURCES = ("shapes",)


def is_valid_source(name: str) -> bool:
  return name in SOURCES[:-1] or (name.startswith("tfds:") and len(name) > len("tfds:"))


def data_seed(config: ml_collections.ConfigDict) -> int:
  """The seed of the data's order and augmentation: ``data.seed``, else the run's seed."""
  seed = config.data.get("seed")
  return config.seed if seed is None else seed


def build_source(config: ml_collections.ConfigDict, split: str = "train"):
  """The random-access source a config names, for ``split``.

  Args:
    config: the run config (``data.source``, ``data.path``, ...).
    split: "train", or the evaluation split: "holdout" for ``shapes``, "test"
      for the others.

  Returns:
    A :class:`jaxgan.data.pipeline.CaptionedSource`.

  Raises:
    DataError: the data cannot be read as configured (the message names why).
  """
  name = config.data.source
  if name == "shapes":
    from jaxgan.data.shapes import ShapesSource  # pylint: disable=g-import-not-at-top
    return ShapesSource(split=split, image_size=config.image_size,
                        num_examples=config.data.num_examples, seed=data_seed(config),
                        max_objects=config.data.max_objects)
  path = config.data.get("path", "")
  if name == "imagefolder":
    from jaxgan.data.imagefolder import imagefolder_source  # pylint: disable=g-import-not-at-top
    return imagefolder_source(path, split, config.data.get("caption_column", "text"))
  if name in ("cub", "coco"):
    from jaxgan.data import dfgan_layout  # pylint: disable=g-import-not-at-top
    return (dfgan_layout.cub_source if name == "cub" else dfgan_layout.coco_source)(path, split)
  if name == "arrayrecord":
    from jaxgan.data.arrayrecord import ArrayRecordSource  # pylint: disable=g-import-not-at-top
    # The size check refuses shards prepared for a smaller image than the run's.
    return ArrayRecordSource(path, split, image_size=config.image_size)
  if name.startswith("tfds:"):
    from jaxgan.data.tfds import tfds_source  # pylint: disable=g-import-not-at-top
    return tfds_source(name[len("tfds:"):], split, data_dir=config.data.get("path", ""),
                       caption_key=config.data.get("caption_column", "text"))
  raise DataError(f"Unknown data source {name!r}; valid: {', '.join(SOURCES)}.")


def dataset_for(config: ml_collections.ConfigDict, source, tokenizer):
  """The training input pipeline of a run: :func:`make_dataset` with the config's settings."""
  rendered = config.data.source in RENDERED_SOURCES
  return make_dataset(
      source, tokenizer, global_batch_size=config.batch_size, seed=data_seed(config),
      image_size=config.image_size,
      random_crop=not rendered and config.data.get("random_crop", True),
      flip=config.data.get("flip", False), workers=config.data.get("workers", 0),
      num_threads=config.data.num_threads, prefetch=config.data.prefetch,
      caption_edits=caption_edits_for(config, source))


def caption_edits_for(config: ml_collections.ConfigDict, source):
  """The edits that make a run's negative captions (``loss.swap_weight`` > 0,
  of the kinds ``loss.swap_edits`` names), allowed the neighbouring-word pairs
  of the captions its vocabulary is built from; None when it makes none."""
  if not config.loss.get("swap_weight", 0.0) > 0:
    return None
  from jaxgan.data import caption_swaps  # pylint: disable=g-import-not-at-top
  return caption_swaps.CaptionEdits(
      caption_swaps.known_bigrams(vocabulary_captions(source, config.data.vocab_examples)),
      caption_swaps.edit_kinds(config.loss.get("swap_edits", "swap")))


__all__ = ["SOURCES", "DataError", "UnreadableDataError", "build_source", "data_seed",
           "dataset_for", "is_valid_source", "make_dataset", "fixed_captions",
           "caption_edits_for", "vocabulary_captions"]
