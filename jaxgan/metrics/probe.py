"""A probe classifier that reads the attributes of ``shapes`` images back.

It is the judge of caption alignment: trained on real renders only, it tells
for each image which shape, colour, size and grid position each object has,
the background colour and how many objects there are. Its penultimate layer
also gives the features for a Fréchet distance on this data.

Slot order. The shapes source lists objects in the order its canonical caption
names them (slot 1 is named first; in the ``holdout`` split slot 1 is the
held-out (shape, colour) pair). That order is not visible in the pixels: the
same image is rendered for both orders. So the network reads the image per grid
cell (is there an object in cell c, and which shape, colour, size), and
:func:`predict` lists the objects it finds in reading order (row-major cell
index). :func:`align_slots` then puts predicted objects into the caption's slot
order, choosing the pairing that agrees with the target on more attributes
(reading order on a tie), before anything is scored.

The probe is trained deterministically (fixed seeds, fixed data order), once
per image size and training recipe (:class:`ProbeSettings`, whose ``tag()``
names the weights file). Weights shipped with the package
(``probe_weights/``, written by ``scripts/train_probe.py``) are used first;
otherwise the probe is trained on first use and cached on disk (see
:func:`default_cache_dir`). Loading costs milliseconds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Any, Mapping

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import paths
from jaxgan.data import shapes

NUM_CELLS = len(shapes.POSITIONS)
# Per-slot attributes, then the per-image ones; scoring and reports use these
# names, with slot suffixes _1 and _2.
SLOT_ATTRIBUTES = ("shape", "colour", "size", "position")
ATTRIBUTES = (tuple(f"{a}_{i}" for i in (1, 2) for a in SLOT_ATTRIBUTES)
              + ("background", "num_objects"))
# Trained probes that come with the package (see :func:`load_probe`), and the
# image sizes shipped for the default recipe (scripts/train_probe.py writes
# them: about half an hour per size on a shared 2-core CPU).
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe_weights")
SHIPPED_SIZES: tuple[int, ...] = (16, 32, 64)
# Bump when the network or the training recipe changes: old caches are ignored.
# 2: the background median reads every 4th pixel (was: all of them).
_VERSION = 2


def accuracy_floor(image_size: int, attribute: str) -> float:
  """The least a shipped probe must read right of fresh real renders.

  99.5% of every attribute, except shape and size at 16px: a small object is
  2-3 pixels across there, where circles, squares, hexagons and diamonds are
  nearly the same pixels (the 16px probe reads the shape of 92% of small, 97%
  of medium and 100% of large objects right; 96% over all). Evaluations print
  the probe's reading of real renders next to the generated images', so such a
  ceiling is visible in every report.

  Args:
    image_size: the probe's image size.
    attribute: a name from :data:`ATTRIBUTES`.
  """
  if image_size <= 16 and attribute.startswith("shape"):
    return 0.94
  if image_size <= 16 and attribute.startswith("size"):
    return 0.98
  return 0.995


def default_cache_dir() -> str:
  """``$JAXGAN_CACHE_DIR`` if set, else ``~/.cache/jaxgan``."""
  return paths.cache_dir()


@dataclasses.dataclass(frozen=True)
class ProbeSettings:
  """How a probe is trained; every field is part of its cache key.

  Attributes:
    num_train: real renders trained on (indices 0..num_train-1 of each split's
      source; a quarter from ``holdout``, so every (shape, colour) pair is seen).
    num_eval: held-out renders per split for the reported accuracy (indices
      num_train.. of the same sources, never trained on).
    steps: optimizer steps.
    batch_size: images per step.
    learning_rate: peak Adam learning rate (cosine decay to 0).
    seed: seeds the data sources, the init and the data order.
    width: channels of the first conv stage (doubled after it).
    cell_dim: features per grid cell (the Fréchet features are 9 x cell_dim).
    cell_pixels: side of a grid cell after resizing the image to 3 x 3 cells.
  """

  num_train: int = 30_000
  num_eval: int = 2_000
  # 1,500 steps left shape at 96.9% (circle vs hexagon at small and medium
  # sizes, 32px); 4,000 reach 99.9% or more on every attribute.
  steps: int = 4_000
  batch_size: int = 128
  learning_rate: float = 2e-3
  seed: int = 1234
  width: int = 16
  cell_dim: int = 32
  cell_pixels: int = 16

  def tag(self) -> str:
    text = json.dumps({"version": _VERSION, **dataclasses.asdict(self)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


# Enough for a quick check (tests): well above chance, far below the real one.
TINY_SETTINGS = ProbeSettings(num_train=1_500, num_eval=300, steps=120, batch_size=32,
                              learning_rate=3e-3, width=8, cell_dim=16, cell_pixels=8)


class ProbeNet(nn.Module):
  """Reads each grid cell with one shared small CNN.

  Objects never leave their grid cell, so the image is resized to 3 x 3 cells
  of ``cell_pixels`` and the same network classifies every cell (empty or which
  shape, colour, size): one weight set sees nine examples per image and needs
  no notion of where a cell is. Background and object count are read from all
  nine cell features together, which are also the Fréchet features; the
  object count is the number of occupied cells.

  Attributes:
    width: channels of the first conv stage.
    cell_dim: features per cell (the Fréchet features are 9 x cell_dim).
    cell_pixels: side of a cell after resizing.
  """

  width: int = 16
  cell_dim: int = 32
  cell_pixels: int = 16

  @nn.compact
  def __call__(self, images: jax.Array) -> tuple[dict[str, jax.Array], jax.Array]:
    """Logits and features of images in [-1, 1].

    Args:
      images: float [B, H, W, 3] in [-1, 1], H == W.

    Returns:
      ``(logits, features)``: logits ``cell_shape`` [B, 9, 1 + num shapes]
      (class 0 = empty cell), ``cell_colour`` [B, 9, C], ``cell_size``
      [B, 9, S], ``background`` [B, num backgrounds]; features
      [B, 9 * cell_dim].
    """
    batch = images.shape[0]
    side = 3 * self.cell_pixels
    x = jax.image.resize(images.astype(jnp.float32), (batch, side, side, 3), "bilinear")
    # The background fills most of every image, so the per-image median colour
    # is the background; subtracting it gives a channel where objects stand
    # out whatever the colours, which makes shape much quicker to learn.
    # Every 4th pixel each way is plenty for a median (objects cover at most
    # 2 of 9 cells) and sorts 16x fewer values: the full sort took a third of
    # the training step on a CPU.
    background = jnp.median(x[:, ::4, ::4].reshape(batch, -1, 3), axis=1)[:, None, None, :]
    x = jnp.concatenate([x, x - background], axis=-1)
    # [B, 3, p, 3, p, C] -> [B * 9, p, p, C], cells in row-major (reading) order.
    channels = x.shape[-1]
    x = x.reshape(batch, 3, self.cell_pixels, 3, self.cell_pixels, channels)
    x = x.transpose(0, 1, 3, 2, 4, 5).reshape(batch * NUM_CELLS, self.cell_pixels,
                                              self.cell_pixels, channels)
    x = nn.relu(nn.Conv(self.width, (3, 3))(x))
    for width in (self.width, 2 * self.width, 2 * self.width):
      x = nn.relu(nn.Conv(width, (3, 3))(x))
      x = _max_pool_2x2(x)
    x = x.reshape(x.shape[0], -1)
    cell_features = nn.relu(nn.Dense(self.cell_dim, name="cell_features")(x))

    def cells(name, classes):
      return nn.Dense(classes, name=name)(cell_features).reshape(batch, NUM_CELLS,
                                                                  classes)

    features = cell_features.reshape(batch, NUM_CELLS * self.cell_dim)
    logits = {
        "cell_shape": cells("cell_shape", 1 + len(shapes.SHAPES)),
        "cell_colour": cells("cell_colour", len(shapes.COLOURS)),
        "cell_size": cells("cell_size", len(shapes.SIZES)),
        "background": nn.Dense(len(shapes.BACKGROUNDS), name="background")(features),
    }
    return logits, features


def _max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max pooling as a reshape and a max: the same values as
  ``nn.max_pool``, but its gradient is an elementwise mask, where the
  reduce-window's select-and-scatter gradient took a third of the probe's step
  on a CPU."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _network(settings: ProbeSettings) -> ProbeNet:
  return ProbeNet(width=settings.width, cell_dim=settings.cell_dim,
                  cell_pixels=settings.cell_pixels)


# ---------------------------------------------------------------------------
# Labels, decoding, alignment and scoring (numpy).
# ---------------------------------------------------------------------------


def stack_attributes(items: list[Mapping[str, Any]]) -> dict[str, np.ndarray]:
  """Stacks per-example attribute dicts into a batched dict (int32)."""
  keys = ("num_objects", "shape", "colour", "size", "position", "background")
  return {k: np.stack([np.asarray(a[k], np.int32) for a in items]) for k in keys}


def cell_labels(attributes: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Per-cell training targets; colour and size are -1 in empty cells."""
  batch = attributes["shape"].shape[0]
  cell_shape = np.zeros((batch, NUM_CELLS), np.int32)
  cell_colour = np.full((batch, NUM_CELLS), -1, np.int32)
  cell_size = np.full((batch, NUM_CELLS), -1, np.int32)
  rows = np.arange(batch)
  for slot in range(2):
    present = attributes["position"][:, slot] >= 0
    r, cell = rows[present], attributes["position"][present, slot]
    cell_shape[r, cell] = attributes["shape"][present, slot] + 1
    cell_colour[r, cell] = attributes["colour"][present, slot]
    cell_size[r, cell] = attributes["size"][present, slot]
  return {"cell_shape": cell_shape, "cell_colour": cell_colour, "cell_size": cell_size,
          "background": attributes["background"].astype(np.int32)}


def decode(logits: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Network outputs -> attribute dicts (batched), objects in reading order.

  A cell is occupied when the network finds it more likely full than empty;
  the count is clipped to 1..2 (every shapes image has one or two objects), so
  with no occupied cell the likeliest one is taken, and with more than two the
  two likeliest.
  """
  cell_shape = np.asarray(logits["cell_shape"], np.float64)
  batch = cell_shape.shape[0]
  # log P(empty) per cell; the least likely empty cells hold the objects.
  empty = cell_shape[..., 0] - np.logaddexp.reduce(cell_shape, axis=-1)
  order = np.argsort(empty, axis=1, kind="stable")
  count = np.clip(np.sum(empty < np.log(0.5), axis=1), 1, 2)
  positions = np.sort(order[:, :2], axis=1)
  positions[count == 1] = [-1, -1]
  positions[count == 1, 0] = order[count == 1, 0]
  rows = np.arange(batch)[:, None]
  cells = np.maximum(positions, 0)
  absent = positions < 0

  def pick(values):
    return np.where(absent, -1, values[rows, cells]).astype(np.int32)

  return {
      "num_objects": count.astype(np.int32),
      "shape": pick(np.argmax(cell_shape[..., 1:], axis=-1)),
      "colour": pick(np.argmax(np.asarray(logits["cell_colour"]), axis=-1)),
      "size": pick(np.argmax(np.asarray(logits["cell_size"]), axis=-1)),
      "position": positions.astype(np.int32),
      "background": np.argmax(np.asarray(logits["background"]), axis=-1).astype(np.int32),
  }


def align_slots(predicted: Mapping[str, np.ndarray],
                target: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Reorders predicted objects into the target's slot (caption) order.

  When two objects are predicted, the two slots are swapped if that makes more
  of the per-slot attributes agree with the target (ties keep reading order).

  Args:
    predicted: batched attributes from :func:`decode`.
    target: batched ground-truth attributes (caption order).

  Returns:
    ``predicted`` with its per-slot arrays reordered.
  """
  def agreement(order):
    return sum((predicted[k][:, order] == target[k]).sum(axis=1) for k in SLOT_ATTRIBUTES)

  swap = agreement([1, 0]) > agreement([0, 1])
  swap &= predicted["num_objects"] == 2
  aligned = dict(predicted)
  for k in SLOT_ATTRIBUTES:
    aligned[k] = np.where(swap[:, None], predicted[k][:, ::-1], predicted[k])
  return aligned


def correct_table(predicted: Mapping[str, np.ndarray],
                  target: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Per-example bool [N] for every name in :data:`ATTRIBUTES`, plus ``all``.

  Slot 2 of a one-object image is the "absent" class (-1): it is right exactly
  when the prediction has no second object either.
  """
  aligned = align_slots(predicted, target)
  table = {}
  for slot in range(2):
    for k in SLOT_ATTRIBUTES:
      table[f"{k}_{slot + 1}"] = aligned[k][:, slot] == target[k][:, slot]
  table["background"] = aligned["background"] == target["background"]
  table["num_objects"] = aligned["num_objects"] == target["num_objects"]
  table["all"] = np.all(np.stack([table[k] for k in ATTRIBUTES]), axis=0)
  return table


def accuracy(predicted: Mapping[str, np.ndarray],
             target: Mapping[str, np.ndarray]) -> dict[str, float]:
  """Mean of :func:`correct_table`: per-attribute accuracy and ``all_correct``."""
  table = correct_table(predicted, target)
  result = {k: float(np.mean(table[k])) for k in ATTRIBUTES}
  result["all_correct"] = float(np.mean(table["all"]))
  return result


# ---------------------------------------------------------------------------
# The trained probe.
# ---------------------------------------------------------------------------


def _to_float(images) -> np.ndarray:
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images.astype(np.float32) / 127.5 - 1.0
  return images.astype(np.float32)


class Probe:
  """A trained probe: ``predict`` attributes, ``features`` for Fréchet distance.

  Attributes:
    image_size: the side of the images it reads.
    settings: how it was trained.
    params: the network's params.
    info: ``accuracy`` (per split, on held-out real renders), ``train_seconds``.
  """

  def __init__(self, image_size: int, settings: ProbeSettings, params: Any,
               info: dict[str, Any]):
    self.image_size = image_size
    self.settings = settings
    self.params = params
    self.info = info
    self.module = _network(settings)
    self._apply = jax.jit(lambda p, x: self.module.apply({"params": p}, x))

  def _run(self, images, batch_size: int):
    images = _to_float(images)
    if images.ndim != 4 or images.shape[1:] != (self.image_size, self.image_size, 3):
      raise ValueError(f"the probe reads [N, {self.image_size}, {self.image_size}, 3] "
                       f"images, got {images.shape}")
    # Small calls (tests, a few prompts) should not pay for a padded full batch.
    batch_size = max(1, min(batch_size, images.shape[0]))
    outputs = []
    for start in range(0, images.shape[0], batch_size):
      chunk = images[start:start + batch_size]
      n = chunk.shape[0]
      # Pad the last chunk so one compiled program serves every call.
      if n < batch_size:
        chunk = np.concatenate([chunk, np.zeros((batch_size - n,) + chunk.shape[1:],
                                                chunk.dtype)])
      logits, features = jax.device_get(self._apply(self.params, chunk))
      outputs.append(jax.tree.map(lambda a, n=n: np.asarray(a)[:n], (logits, features)))
    return jax.tree.map(lambda *a: np.concatenate(a), *outputs)

  def predict(self, images, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Attributes read from images, objects in reading order.

    Args:
      images: uint8 [N, H, W, 3], or float in [-1, 1].
      batch_size: images per forward pass.

    Returns:
      Batched attribute dict like :func:`stack_attributes` gives.
    """
    return decode(self._run(images, batch_size)[0])

  def features(self, images, batch_size: int = 256) -> np.ndarray:
    """Penultimate features [N, 9 * cell_dim] (float32) for Fréchet distance."""
    return self._run(images, batch_size)[1]

  def evaluate(self, images, attributes: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Per-attribute accuracy of the probe's reading of ``images``."""
    return accuracy(self.predict(images), attributes)


def render_examples(split: str, image_size: int, start: int, count: int, seed: int,
                    max_objects: int = 2) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """Real renders (with the source's jitter) and their attributes."""
  source = shapes.ShapesSource(split, image_size=image_size, num_examples=start + count,
                               seed=seed, max_objects=max_objects)
  items = [source[i] for i in range(start, start + count)]
  images = np.stack([item["image"] for item in items])
  return images, stack_attributes([item["attributes"] for item in items])


def _training_data(image_size: int, settings: ProbeSettings):
  num_holdout = settings.num_train // 4
  parts = [render_examples("train", image_size, 0, settings.num_train - num_holdout,
                           settings.seed),
           render_examples("holdout", image_size, 0, num_holdout, settings.seed)]
  images = np.concatenate([p[0] for p in parts])
  attributes = {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}
  return images, cell_labels(attributes)


def _loss(logits, labels):
  def ce(name, mask=None):
    target = labels[name]
    valid = target >= 0 if mask is None else mask
    losses = optax.softmax_cross_entropy_with_integer_labels(
        logits[name], jnp.maximum(target, 0))
    return jnp.sum(losses * valid) / jnp.maximum(jnp.sum(valid), 1)

  # Most cells are empty: averaged over all cells, the shape term would be
  # mostly "empty" and shape identity would learn slowly. So it is scored over
  # all cells (is there an object?) and again over occupied cells only.
  occupied = labels["cell_shape"] > 0
  return (ce("cell_shape", jnp.ones_like(occupied)) + ce("cell_shape", occupied)
          + ce("cell_colour") + ce("cell_size") + ce("background"))


def train_probe(image_size: int, settings: ProbeSettings = ProbeSettings(),
                log=None) -> Probe:
  """Trains a probe from scratch (deterministic) and measures it.

  Args:
    image_size: image side, 16..256.
    settings: data, budget and network size.
    log: optional ``callable(str)`` for progress lines.

  Returns:
    The probe, with ``info["accuracy"]`` on held-out real renders of both splits.
  """
  started = time.time()
  images, labels = _training_data(image_size, settings)
  module = _network(settings)
  key = jax.random.key(settings.seed)
  init_key, noise_key = jax.random.split(key)
  params = module.init(init_key, jnp.zeros((1, image_size, image_size, 3)))["params"]
  schedule = optax.cosine_decay_schedule(settings.learning_rate, settings.steps)
  tx = optax.adam(schedule)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, step_index, batch_images, batch_labels):
    x = batch_images.astype(jnp.float32) / 127.5 - 1.0
    # A little pixel noise: generated images are never as clean as renders,
    # and the judge should not be thrown by grain it never saw.
    x = x + 0.04 * jax.random.normal(jax.random.fold_in(noise_key, step_index), x.shape)
    loss, grads = jax.value_and_grad(
        lambda p: _loss(module.apply({"params": p}, x)[0], batch_labels))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(settings.seed)
  num = images.shape[0]
  order = rng.permutation(num)
  position = 0
  for i in range(settings.steps):
    if position + settings.batch_size > num:
      order, position = rng.permutation(num), 0
    index = np.sort(order[position:position + settings.batch_size])
    position += settings.batch_size
    params, opt_state, loss = step(params, opt_state, i, images[index],
                                   {k: v[index] for k, v in labels.items()})
    if log is not None and (i + 1) % max(settings.steps // 10, 1) == 0:
      log(f"probe {image_size}px: step {i + 1}/{settings.steps}, loss {float(loss):.4f}")
  train_seconds = time.time() - started
  probe = Probe(image_size, settings, jax.device_get(params),
                {"train_seconds": train_seconds})
  probe.info["accuracy"] = {
      split: probe.evaluate(*render_examples(split, image_size, settings.num_train,
                                             settings.num_eval, settings.seed))
      for split in shapes.SPLITS}
  return probe


def cache_path(image_size: int, settings: ProbeSettings = ProbeSettings(),
               cache_dir: str | None = None) -> str:
  """Where the probe for this size and settings is cached."""
  return os.path.join(cache_dir or default_cache_dir(), _file_name(image_size, settings))


def shipped_path(image_size: int, settings: ProbeSettings = ProbeSettings()) -> str:
  """Where the package keeps a trained probe for this size and settings.

  The file exists for the default settings at :data:`SHIPPED_SIZES` only.
  """
  return os.path.join(SHIPPED_DIR, _file_name(image_size, settings))


def _file_name(image_size: int, settings: ProbeSettings) -> str:
  return f"probe_{image_size}_{settings.tag()}.msgpack"


def save_probe(probe: Probe, path: str) -> None:
  """Writes params and info (msgpack), atomically."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  payload = {"params": probe.params,
             "meta": json.dumps({"image_size": probe.image_size,
                                 "settings": dataclasses.asdict(probe.settings),
                                 "info": probe.info})}
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "wb") as f:
    f.write(flax.serialization.msgpack_serialize(payload))
  os.replace(tmp, path)


def load_probe_file(path: str) -> Probe:
  """Reads a probe written by :func:`save_probe`."""
  with open(path, "rb") as f:
    payload = flax.serialization.msgpack_restore(f.read())
  meta = json.loads(payload["meta"])
  return Probe(meta["image_size"], ProbeSettings(**meta["settings"]), payload["params"],
               meta["info"])


def load_probe(image_size: int, settings: ProbeSettings = ProbeSettings(),
               cache_dir: str | None = None, log=None) -> Probe:
  """The probe for ``image_size``: shipped, cached, or trained (and cached).

  Looked up in this order, all keyed by ``settings.tag()``: the weights that
  come with the package (:func:`shipped_path`), the cache
  (:func:`cache_path`), and only then trained from scratch and cached.

  Args:
    image_size: side of the images it will read.
    settings: the training recipe (part of the key).
    cache_dir: cache directory; :func:`default_cache_dir` when None.
    log: optional ``callable(str)`` for progress lines while training.

  Returns:
    The probe.
  """
  for path in (shipped_path(image_size, settings), cache_path(image_size, settings, cache_dir)):
    if os.path.exists(path):
      return load_probe_file(path)
  path = cache_path(image_size, settings, cache_dir)
  if log is not None:
    log(f"Training the shapes probe for {image_size}px images (once; cached at {path}).")
  probe = train_probe(image_size, settings, log=log)
  save_probe(probe, path)
  return probe


def probe_features(images, probe: Probe | None = None) -> np.ndarray:
  """Penultimate probe features [N, D] of images (uint8 or float in [-1, 1]).

  Args:
    images: [N, H, W, 3] with H == W.
    probe: the probe to use; the default cached one for the image size when None.

  Returns:
    float32 features.
  """
  if probe is None:
    probe = load_probe(int(np.shape(images)[1]))
  return probe.features(images)
