"""Data sources and the input pipeline."""

from __future__ import annotations

import ml_collections

from jaxgan.data.pipeline import make_dataset, fixed_captions, vocabulary_captions


def build_source(config: ml_collections.ConfigDict, split: str = "train"):
  """The random-access source a config names, rendered/decoded at ``config.image_size``."""
  if config.data.source == "shapes":
    from jaxgan.data.shapes import ShapesSource  # pylint: disable=g-import-not-at-top
    return ShapesSource(split=split, image_size=config.image_size,
                        num_examples=config.data.num_examples, seed=config.seed,
                        max_objects=config.data.max_objects)
  raise ValueError(f"Unknown data source {config.data.source!r}; valid: ('shapes',).")


__all__ = ["build_source", "make_dataset", "fixed_captions", "vocabulary_captions"]
