"""Caption alignment on ``shapes``: does the image show what the prompt says?

A fixed evaluation set of prompts is built from ground-truth attributes (the
canonical caption, :func:`jaxgan.data.shapes.describe`, of examples of a
dedicated seed), separately for ``train`` combinations and ``holdout`` ones
(whose first object is a (shape, colour) pair the model never saw). The probe
reads the attributes back from the generated images; the per-attribute accuracy
and the rate of images with every attribute right are the scores. The same
numbers on real renders of the same attributes are the ceiling: what a perfect
generator would score with this probe.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from jaxgan.data import shapes
from jaxgan.metrics import probe as probe_lib

# The evaluation prompts' source seed: distinct from training runs' data seed
# (config.seed, 0 by default) and from the probe's training seed.
EVAL_SEED = 20_250


@dataclasses.dataclass(frozen=True)
class EvalSet:
  """Fixed prompts of one split with their attributes.

  Attributes:
    split: "train" or "holdout".
    prompts: canonical captions, one per example.
    attributes: batched ground truth (caption slot order), like
      :func:`jaxgan.metrics.probe.stack_attributes` gives.
    seed: the source seed they come from.
  """

  split: str
  prompts: tuple[str, ...]
  attributes: dict[str, np.ndarray]
  seed: int

  def __len__(self) -> int:
    return len(self.prompts)

  def real_images(self, image_size: int) -> np.ndarray:
    """Real renders (uint8 [N, S, S, 3]) of exactly these attributes.

    They are the source's own examples, so the objects carry the same small
    jitter as training images.
    """
    source = shapes.ShapesSource(self.split, image_size=image_size,
                                 num_examples=len(self), seed=self.seed)
    return np.stack([source[i]["image"] for i in range(len(self))])


def eval_set(split: str, num_prompts: int = 200, seed: int = EVAL_SEED) -> EvalSet:
  """The first ``num_prompts`` examples of ``split`` at ``seed``, as prompts.

  Deterministic: the same arguments give the same prompts on any machine.

  Args:
    split: "train" or "holdout".
    num_prompts: how many.
    seed: source seed.

  Returns:
    The evaluation set.
  """
  source = shapes.ShapesSource(split, image_size=shapes.MIN_IMAGE_SIZE,
                               num_examples=num_prompts, seed=seed)
  attributes = [source.attributes(i) for i in range(num_prompts)]
  return EvalSet(split=split, prompts=tuple(shapes.describe(a) for a in attributes),
                 attributes=probe_lib.stack_attributes(attributes), seed=seed)


def eval_sets(num_prompts: int = 200, seed: int = EVAL_SEED) -> dict[str, EvalSet]:
  """One :class:`EvalSet` per split, keyed by split name."""
  return {split: eval_set(split, num_prompts, seed) for split in shapes.SPLITS}


# Object 1's attributes, reported apart for prompts of one and of two objects
# (``{n}_objects/{attribute}``): with two, the model must bind each colour,
# shape and size to its own place, which a sentence-wide condition can blur.
OBJECT_1_ATTRIBUTES = tuple(f"{a}_1" for a in probe_lib.SLOT_ATTRIBUTES)
# ``2_objects/both_places``, ``both_colours``, ``colour_swaps``,
# ``both_shapes`` and ``shape_swaps``: see :func:`alignment`.
BOTH_COLOURS = "both_colours"
COLOUR_SWAPS = "colour_swaps"
BOTH_SHAPES = "both_shapes"
SHAPE_SWAPS = "shape_swaps"
BOTH_PLACES = "both_places"
TWO_OBJECT_ROWS = (BOTH_PLACES, BOTH_COLOURS, COLOUR_SWAPS, BOTH_SHAPES, SHAPE_SWAPS)


def alignment(probe: probe_lib.Probe, images, attributes: Mapping[str, np.ndarray]
              ) -> dict[str, float]:
  """Per-attribute accuracy, overall and by the prompts' number of objects.

  Args:
    probe: the judge.
    images: [N, S, S, 3], uint8 or float in [-1, 1].
    attributes: what each image should show (caption slot order).

  Returns:
    Fractions in [0, 1]: every name in :data:`probe.ATTRIBUTES` and
    ``all_correct``, over all images; and ``{n}_objects/{name}`` for the names
    in :data:`OBJECT_1_ATTRIBUTES` and ``all_correct``, over the images whose
    prompt has ``n`` objects (for each ``n`` present); and
    ``2_objects/both_colours``, over the two-object prompts that ask two
    colours, how often each of the two places holds an object of its colour,
    and ``2_objects/colour_swaps``, how often each holds one of the other
    object's colour (a binding error, not a colour the prompt lacks);
    ``2_objects/both_shapes`` and ``2_objects/shape_swaps``, the same for
    the shapes, over the two-object prompts that ask two shapes;
    ``2_objects/both_places``, over all two-object prompts, how often both
    asked places hold an object (whatever it looks like);
    and ``{size}/shape_1`` (``small/shape_1``, ...), object 1's shape over the
    prompts that ask that size for it: a shape that only large objects get
    right is one the image size limits, not the caption's reading.
  """
  predicted = probe.predict(images)
  result = probe_lib.accuracy(predicted, attributes)
  num_objects = np.asarray(attributes["num_objects"])
  for n in np.unique(num_objects).tolist():
    picked = num_objects == n
    subset = probe_lib.accuracy({k: v[picked] for k, v in predicted.items()},
                                {k: np.asarray(v)[picked] for k, v in attributes.items()})
    for k in OBJECT_1_ATTRIBUTES + ("all_correct",):
      result[f"{n}_objects/{k}"] = subset[k]
  for attribute, both_name, swaps_name in (("colour", BOTH_COLOURS, COLOUR_SWAPS),
                                           ("shape", BOTH_SHAPES, SHAPE_SWAPS)):
    values = np.asarray(attributes[attribute])
    two_values = (num_objects == 2) & (values[:, 0] != values[:, 1])
    if two_values.any():
      both = _in_place(predicted, attributes, attribute)
      swapped = _in_place(predicted, attributes, attribute, slots=(1, 0))
      result[f"2_objects/{both_name}"] = float(np.mean(both[two_values]))
      result[f"2_objects/{swaps_name}"] = float(np.mean(swapped[two_values]))
  if (num_objects == 2).any():
    places = _in_place(predicted, attributes, slots=None)
    result[f"2_objects/{BOTH_PLACES}"] = float(np.mean(places[num_objects == 2]))
  right_shape = probe_lib.correct_table(predicted, attributes)["shape_1"]
  sizes = np.asarray(attributes["size"])[:, 0]
  for index in np.unique(sizes).tolist():
    result[f"{shapes.SIZES[index]}/shape_1"] = float(np.mean(right_shape[sizes == index]))
  return result


def _in_place(predicted: Mapping[str, np.ndarray], attributes: Mapping[str, np.ndarray],
              attribute: str = "colour",
              slots: tuple[int, int] | None = (0, 1)) -> np.ndarray:
  """Per image: at each of the prompt's two places stands an object with the
  ``attribute`` (colour or shape) the prompt gives object ``slots[place]``
  (any object when ``slots`` is None).

  Binding, read by place: the probe's objects are matched to the prompt's by
  grid cell, never by the attribute scored, so with (0, 1) values drawn at
  each other's places, shared, blended or misplaced count as wrong, and
  (1, 0) counts exactly the values drawn at each other's places.
  """
  positions = np.asarray(predicted["position"])
  right = np.ones(len(positions), bool)
  for slot in range(2):
    at_place = positions == np.asarray(attributes["position"])[:, slot:slot + 1]
    if slots is not None:
      wanted = np.asarray(attributes[attribute])[:, slots[slot]:slots[slot] + 1]
      at_place &= np.asarray(predicted[attribute]) == wanted
    right &= np.any(at_place, axis=1)
  return right


def alignment_report(probe: probe_lib.Probe, sets: Mapping[str, EvalSet],
                     generated: Mapping[str, np.ndarray] | None = None,
                     real: Mapping[str, np.ndarray] | None = None
                     ) -> dict[str, float]:
  """Alignment of generated images and of real renders, per split.

  Args:
    probe: the judge.
    sets: evaluation sets keyed by split.
    generated: per split, one generated image per prompt, in prompt order;
      None scores real renders only.
    real: real renders per split (from :meth:`EvalSet.real_images`); rendered
      here when None.

  Returns:
    Flat dict: ``align/{split}/{name}`` for generated images and
    ``real/{split}/{name}`` for the ceiling, names as :func:`alignment` gives
    (``shape_1``, ..., ``all_correct``, ``2_objects/colour_1``, ...).
  """
  report = {}
  for split, es in sets.items():
    real_images = (real or {}).get(split)
    if real_images is None:
      real_images = es.real_images(probe.image_size)
    for name, value in alignment(probe, real_images, es.attributes).items():
      report[f"real/{split}/{name}"] = value
    if generated is not None:
      for name, value in alignment(probe, generated[split], es.attributes).items():
        report[f"align/{split}/{name}"] = value
  return report
