"""Can G's architecture draw the ``shapes`` attributes when it is told them?

    python scripts/generator_capacity.py [--image_size 32] [--nf 16]
        [--text_stem] [--steps 3000]

The generator-side twin of ``scripts/discriminator_capacity.py``. Trains a
fresh DF-GAN generator, by default of ``configs/base.py``'s size, to redraw
rendered one-object ``shapes`` images from their attributes: its "sentence" is
the one-hot shape, colour, size, grid cell and background (36 numbers), its
noise is random, and the loss is the L1 distance to the render (a regression,
weighted ``--object_weight`` times more on the object's pixels, so G learns
about the per-pixel median image of each attribute combination; the jitter of
an object inside its cell, up to 2.3 pixels for a small one at 32x32, blurs
it). Every ``--every`` steps it prints how often the shipped shapes probe
reads each attribute back from G's images of 1,000 held-out attribute
combinations (chance: 1/8 shape, 1/10 colour, 1/3 size, 1/9 position, 1/6
background), and the probe's reading of the real renders as the ceiling.

A GAN-trained G whose shapes stay at chance while D reads them
(``scripts/discriminator_reads.py``) is told apart: the architecture cannot
draw them at this size and width (this script's shape stays low too), or its
adversarial training does not get it there (this script's shape is high).
The attributes are inputs here only; training runs never see them.
"""

import argparse
import json
import time

from jaxgan import xla_flags

xla_flags.set_entry_point_defaults()

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image

from jaxgan.data import shapes
from jaxgan.metrics import probe as probe_lib
from jaxgan.models.dfgan import Generator
from jaxgan.train.step import images_to_float

# One-hot blocks of the condition, object 1's attributes then the background.
CONDITION_CLASSES = {"shape": len(shapes.SHAPES), "colour": len(shapes.COLOURS),
                     "size": len(shapes.SIZES), "position": len(shapes.POSITIONS),
                     "background": len(shapes.BACKGROUNDS)}
DATA_SEED = 20261203  # other examples than evaluate.py's and the probe's


def render(split: str, image_size: int, count: int,
           offset: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """``count`` one-object renders (uint8) from ``offset`` on, and their attributes."""
  source = shapes.ShapesSource(split, image_size=image_size, num_examples=offset + count,
                               seed=DATA_SEED, max_objects=1)
  items = [source[i] for i in range(offset, offset + count)]
  images = np.stack([item["image"] for item in items])
  return images, probe_lib.stack_attributes([item["attributes"] for item in items])


def condition(attributes: dict[str, np.ndarray]) -> np.ndarray:
  """[N, 36] float32: one-hot object-1 attributes and background."""
  blocks = []
  for name, classes in CONDITION_CLASSES.items():
    values = attributes[name]
    values = values[:, 0] if values.ndim == 2 else values
    blocks.append(np.eye(classes, dtype=np.float32)[values])
  return np.concatenate(blocks, axis=-1)


def pick(scores: dict[str, float]) -> dict[str, float]:
  """The probe's accuracies for the conditioned attributes (object 1's, background)."""
  return {name: round(scores[name if name == "background" else f"{name}_1"], 3)
          for name in CONDITION_CLASSES}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  # configs/base.py's sizes by default.
  parser.add_argument("--image_size", type=int, default=32)
  parser.add_argument("--nf", type=int, default=16)
  parser.add_argument("--z_dim", type=int, default=100)
  parser.add_argument("--text_stem", action="store_true",
                      help="G's 4x4 stem reads the condition too (model.text_stem)")
  parser.add_argument("--steps", type=int, default=3000)
  parser.add_argument("--every", type=int, default=500)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--train", type=int, default=20000)
  parser.add_argument("--test", type=int, default=1000)
  parser.add_argument("--lr", type=float, default=1e-3)
  parser.add_argument("--object_weight", type=float, default=20.0,
                      help="extra L1 weight of the object's pixels (those that differ "
                           "from the background colour); 0: plain L1")
  parser.add_argument("--grid", default="",
                      help="PNG: G's images of the first 8 held-out combinations above "
                           "their real renders, at the end")
  args = parser.parse_args()

  probe = probe_lib.load_probe(args.image_size, log=print)
  g = Generator(nf=args.nf, image_size=args.image_size, text_stem=args.text_stem)
  train_images, train_attributes = render("train", args.image_size, args.train, 0)
  train_condition = condition(train_attributes)
  # Unseen renders of the training combinations, and the held-out split's
  # (shape, colour) pairs, which training never saw together.
  tests = {"train": render("train", args.image_size, args.test, args.train),
           "holdout": render("holdout", args.image_size, args.test, 0)}
  ceiling = {split: pick(probe.evaluate(*test)) for split, test in tests.items()}

  key = jax.random.key(0)
  params = g.init(key, jnp.zeros((1, args.z_dim)), jnp.asarray(train_condition[:1]))["params"]
  tx = optax.adam(args.lr)
  opt_state = tx.init(params)

  def loss_fn(params, z, cond, images, weights):
    fake = g.apply({"params": params}, z, cond)
    return jnp.sum(weights * jnp.abs(fake - images_to_float(images))) / jnp.sum(weights) / 3

  @jax.jit
  def train_step(params, opt_state, key, cond, images, weights):
    z = jax.random.normal(key, (cond.shape[0], args.z_dim))
    loss, grads = jax.value_and_grad(loss_fn)(params, z, cond, images, weights)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  @jax.jit
  def generate(params, key, cond):
    z = jax.random.normal(key, (cond.shape[0], args.z_dim))
    return g.apply({"params": params}, z, cond)

  def read_back(params, attributes):
    cond = condition(attributes)
    images = np.concatenate([np.asarray(generate(params, jax.random.key(i), cond[i:i + 250]))
                             for i in range(0, len(cond), 250)])
    return pick(probe.evaluate(images, attributes))

  # An object covers 1-9% of the image: with every pixel alike, the median
  # image G regresses to first is the bare background, and the objects' share
  # of the gradient is too small to leave it (seen: no object drawn in 3,000
  # steps). The object's pixels are found by colour, a render's only other one.
  background = shapes.BACKGROUND_RGB[train_attributes["background"]][:, None, None]
  is_object = np.any(train_images != background, axis=-1, keepdims=True)
  train_weights = (1 + args.object_weight * is_object).astype(np.float32)

  rng = np.random.default_rng(0)
  start = time.time()
  for step in range(1, args.steps + 1):
    batch = rng.integers(0, len(train_images), args.batch_size)
    params, opt_state, loss = train_step(params, opt_state, jax.random.key(10**6 + step),
                                         train_condition[batch], train_images[batch],
                                         train_weights[batch])
    if step % args.every == 0 or step == args.steps:
      print(json.dumps({"nf": args.nf, "image_size": args.image_size,
                        "text_stem": args.text_stem,
                        "object_weight": args.object_weight, "step": step,
                        "seconds": round(time.time() - start),
                        "l1": round(float(loss), 4),
                        "probe_reads_g": {split: read_back(params, test[1])
                                          for split, test in tests.items()},
                        "probe_reads_real": ceiling}), flush=True)

  if args.grid:
    images, attributes = tests["holdout"]
    fake = np.asarray(generate(params, jax.random.key(0), condition(attributes)[:8]))
    fake = np.clip(np.round((fake + 1) * 127.5), 0, 255).astype(np.uint8)
    grid = np.concatenate([np.concatenate(list(fake), axis=1),
                           np.concatenate(list(images[:8]), axis=1)], axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * 4, grid.shape[0] * 4),
                                 Image.NEAREST).save(args.grid)


if __name__ == "__main__":
  main()
