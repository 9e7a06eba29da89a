"""Can G's architecture draw the ``shapes`` attributes when it is told them?

    python scripts/generator_capacity.py [--image_size 32] [--nf 16]
        [--text_stem] [--coordinates] [--word_attention 64] [--max_objects 2]
        [--steps 3000]

The generator-side twin of ``scripts/discriminator_capacity.py``. Trains a
fresh DF-GAN generator, by default of ``configs/base.py``'s size, to redraw
rendered one-object ``shapes`` images from their attributes: its "sentence" is
the one-hot shape, colour, size, grid cell and background (36 numbers), its
noise is random, and the loss is the squared (``--loss l1``: absolute)
distance to the render, weighted ``--object_weight`` times more on the object
and ``--margin`` pixels around it. So G learns about the mean (median) image of
each attribute combination; the jitter of an object inside its cell (up to 2.3
pixels for a small one at 32x32, 0.2 for a large one) blurs it. Every
``--every`` steps it prints how often the shipped shapes probe reads each
attribute back from G's images of 1,000 unseen renders of the training
combinations and 1,000 of the held-out ones (chance: 1/8 shape, 1/10 colour,
1/3 size, 1/9 position, 1/6 background), and the probe's reading of the real
renders as the ceiling.

``--max_objects 2`` draws one- and two-object renders (object 2's attributes
join the "sentence", 66 numbers) and adds, over the two-object images, object
1's attributes and how often both objects have their own colours: whether
the architecture can bind a colour to a place, which the GAN-trained default
seldom does (README, "Where the misses are"). ``--word_attention`` gives G
the condition as "words" too, one per object and one for the background, for
its per-pixel attention (``Generator.word_attention``).

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

from jaxgan import images as image_io
from jaxgan.data import shapes
from jaxgan.metrics import probe as probe_lib
from jaxgan.models.dfgan import Generator
from jaxgan.train.step import images_to_float

# One-hot blocks of the condition, object 1's attributes then the background.
CONDITION_CLASSES = {"shape": len(shapes.SHAPES), "colour": len(shapes.COLOURS),
                     "size": len(shapes.SIZES), "position": len(shapes.POSITIONS),
                     "background": len(shapes.BACKGROUNDS)}
DATA_SEED = 20261203  # other examples than evaluate.py's and the probe's


OBJECT_CLASSES = {k: v for k, v in CONDITION_CLASSES.items() if k != "background"}


def render(split: str, image_size: int, count: int, offset: int,
           max_objects: int = 1) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """``count`` renders (uint8) from ``offset`` on, and their attributes."""
  return probe_lib.render_examples(split, image_size, offset, count, DATA_SEED,
                                   max_objects=max_objects)


def _one_hot(values: np.ndarray, classes: int) -> np.ndarray:
  """One-hot float32; -1 (no such object) gives zeros."""
  return np.eye(classes + 1, dtype=np.float32)[np.where(values < 0, classes, values)][..., :-1]


def _object(attributes: dict[str, np.ndarray], slot: int) -> np.ndarray:
  """[N, 30]: one object's one-hot shape, colour, size and grid cell (zeros if absent)."""
  return np.concatenate([_one_hot(attributes[name][:, slot], classes)
                         for name, classes in OBJECT_CLASSES.items()], axis=-1)


def condition(attributes: dict[str, np.ndarray], max_objects: int = 1) -> np.ndarray:
  """[N, 36] (one object) or [N, 66] float32: the objects' one-hot
  attributes, then the background's."""
  blocks = [_object(attributes, slot) for slot in range(max_objects)]
  blocks.append(_one_hot(attributes["background"], CONDITION_CLASSES["background"]))
  return np.concatenate(blocks, axis=-1)


def words(attributes: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """The condition as "words" for G's word attention: one per object and one
  for the background, each [slot one-hot (3), object attributes (30),
  background (6)]; [N, 3, 39] and a mask [N, 3] (False: no second object)."""
  n = len(attributes["background"])
  background = _one_hot(attributes["background"], CONDITION_CLASSES["background"])
  tokens = []
  for slot in range(3):
    slot_code = np.broadcast_to(np.eye(3, dtype=np.float32)[slot], (n, 3))
    if slot < 2:
      parts = [slot_code, _object(attributes, slot), np.zeros_like(background)]
    else:
      parts = [slot_code, np.zeros((n, 30), np.float32), background]
    tokens.append(np.concatenate(parts, axis=-1))
  mask = np.stack([np.ones(n, bool), attributes["num_objects"] == 2, np.ones(n, bool)], axis=1)
  return np.stack(tokens, axis=1), mask


def object_weights(images: np.ndarray, attributes: dict[str, np.ndarray], weight: float,
                   margin: int) -> np.ndarray:
  """[N, S, S, 1] float32: 1 + ``weight`` on the object and the ``margin``
  pixels around it, 1 elsewhere.

  The object's pixels are those that differ from the background colour (a
  render's only other one), grown by ``margin`` (a square neighbourhood).
  """
  background = shapes.BACKGROUND_RGB[attributes["background"]][:, None, None]
  mask = np.any(images != background, axis=-1)
  padded = np.pad(mask, ((0, 0), (margin, margin), (margin, margin)))
  size = mask.shape[1]
  grown = np.zeros_like(mask)
  for dy in range(2 * margin + 1):
    for dx in range(2 * margin + 1):
      grown |= padded[:, dy:dy + size, dx:dx + size]
  return (1 + weight * grown[..., None]).astype(np.float32)


def scores(probe, images: np.ndarray, attributes: dict[str, np.ndarray]) -> dict:
  """How often the probe reads each conditioned attribute (object 1's, the
  background) back from ``images``, the shape per object size, and with two
  objects: object 1's attributes on the two-object images, and how often both
  objects have their own colour where they differ."""
  predicted = probe.predict(images)
  table = probe_lib.correct_table(predicted, attributes)
  result = {name: round(float(np.mean(table[name if name == "background" else f"{name}_1"])), 3)
            for name in CONDITION_CLASSES}
  sizes = attributes["size"][:, 0]
  result["shape_by_size"] = {size: round(float(np.mean(table["shape_1"][sizes == i])), 3)
                             for i, size in enumerate(shapes.SIZES)}
  two = attributes["num_objects"] == 2
  if two.any():
    result["two_objects"] = {name: round(float(np.mean(table[f"{name}_1"][two])), 3)
                             for name in OBJECT_CLASSES}
    colours = attributes["colour"]
    asked = two & (colours[:, 0] != colours[:, 1])
    if asked.any():
      aligned = probe_lib.align_slots(predicted, attributes)["colour"]
      result["two_objects"]["both_colours"] = round(
          float(np.mean(np.all(aligned[asked] == colours[asked], axis=1))), 3)
  return result


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  # configs/base.py's sizes by default.
  parser.add_argument("--image_size", type=int, default=32)
  parser.add_argument("--nf", type=int, default=16)
  parser.add_argument("--z_dim", type=int, default=100)
  parser.add_argument("--text_stem", action="store_true",
                      help="G's 4x4 stem reads the condition too (model.text_stem)")
  parser.add_argument("--coordinates", action="store_true",
                      help="G's fusions see each pixel's row and column (model.coordinates)")
  parser.add_argument("--word_attention", type=int, default=0,
                      help="G's per-pixel attention over the condition's 'words' (one per "
                           "object, one for the background) of this width "
                           "(Generator.word_attention); 0: none")
  parser.add_argument("--max_objects", type=int, default=1, choices=(1, 2),
                      help="2: one- and two-object renders (object 2's attributes join "
                           "the condition), to test binding each colour to its place")
  parser.add_argument("--steps", type=int, default=3000)
  parser.add_argument("--every", type=int, default=500)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--train", type=int, default=20000)
  parser.add_argument("--test", type=int, default=1000)
  parser.add_argument("--lr", type=float, default=1e-3)
  parser.add_argument("--object_weight", type=float, default=20.0,
                      help="extra weight of the error on the object and --margin pixels "
                           "around it; 0: every pixel alike")
  parser.add_argument("--margin", type=int, default=2)
  parser.add_argument("--loss", default="l2", choices=("l1", "l2"),
                      help="l2 regresses to the mean image, l1 to the median")
  parser.add_argument("--grid", default="",
                      help="PNG: G's images of the first 8 held-out combinations above "
                           "their real renders, at the end")
  args = parser.parse_args()

  probe = probe_lib.load_probe(args.image_size, log=print)
  g = Generator(nf=args.nf, image_size=args.image_size, text_stem=args.text_stem,
                coordinates=args.coordinates, word_attention=args.word_attention)
  train_images, train_attributes = render("train", args.image_size, args.train, 0,
                                          args.max_objects)
  train_condition = condition(train_attributes, args.max_objects)
  train_words, train_word_mask = words(train_attributes)
  # Unseen renders of the training combinations, and the held-out split's
  # (shape, colour) pairs, which training never saw together.
  tests = {"train": render("train", args.image_size, args.test, args.train, args.max_objects),
           "holdout": render("holdout", args.image_size, args.test, 0, args.max_objects)}
  ceiling = {split: scores(probe, *test) for split, test in tests.items()}

  key = jax.random.key(0)
  params = g.init(key, jnp.zeros((1, args.z_dim)), jnp.asarray(train_condition[:1]),
                  words=train_words[:1], word_mask=train_word_mask[:1])["params"]
  tx = optax.adam(args.lr)
  opt_state = tx.init(params)

  def loss_fn(params, z, cond, tokens, token_mask, images, weights):
    fake = g.apply({"params": params}, z, cond, words=tokens, word_mask=token_mask)
    error = fake - images_to_float(images)
    # L1's gradient has full size at any error, however small: the (already
    # right) background pixels around an object pull as hard as the object's
    # own, and G drew no object in 3,000 steps with a margin weighted (seen).
    error = jnp.abs(error) if args.loss == "l1" else jnp.square(error)
    return jnp.sum(weights * error) / jnp.sum(weights) / 3

  @jax.jit
  def train_step(params, opt_state, key, cond, tokens, token_mask, images, weights):
    z = jax.random.normal(key, (cond.shape[0], args.z_dim))
    loss, grads = jax.value_and_grad(loss_fn)(params, z, cond, tokens, token_mask, images,
                                              weights)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  @jax.jit
  def generate(params, key, cond, tokens, token_mask):
    z = jax.random.normal(key, (cond.shape[0], args.z_dim))
    return g.apply({"params": params}, z, cond, words=tokens, word_mask=token_mask)

  def generate_for(params, key, attributes):
    return generate(params, key, condition(attributes, args.max_objects), *words(attributes))

  def read_back(params, attributes):
    n = len(attributes["background"])
    images = np.concatenate([
        np.asarray(generate_for(params, jax.random.key(i),
                                {k: v[i:i + 250] for k, v in attributes.items()}))
        for i in range(0, n, 250)])
    return scores(probe, images, attributes)

  # An object covers 1-9% of the image: with every pixel alike, the median
  # image G regresses to first is the bare background, and the objects' share
  # of the gradient is too small to leave it (seen: no object drawn in 3,000
  # steps; nor with the whole grid cell weighted 10x). So the object's pixels
  # and a margin around them count object_weight times more: with the object's
  # pixels alone, drawing too much costs less than too little, and G drew round
  # blobs over every shape (seen).
  train_weights = object_weights(train_images, train_attributes, args.object_weight,
                                 args.margin)

  rng = np.random.default_rng(0)
  start = time.time()
  for step in range(1, args.steps + 1):
    batch = rng.integers(0, len(train_images), args.batch_size)
    params, opt_state, loss = train_step(params, opt_state, jax.random.key(10**6 + step),
                                         train_condition[batch], train_words[batch],
                                         train_word_mask[batch], train_images[batch],
                                         train_weights[batch])
    if step % args.every == 0 or step == args.steps:
      print(json.dumps({"nf": args.nf, "image_size": args.image_size,
                        "text_stem": args.text_stem,
                        "coordinates": args.coordinates,
                        "word_attention": args.word_attention,
                        "max_objects": args.max_objects,
                        "object_weight": args.object_weight, "margin": args.margin,
                        "step": step,
                        "seconds": round(time.time() - start),
                        "loss": args.loss, "value": round(float(loss), 4),
                        "probe_reads_g": {split: read_back(params, test[1])
                                          for split, test in tests.items()},
                        "probe_reads_real": ceiling}), flush=True)

  if args.grid:
    real, attributes = tests["holdout"]
    fake = image_io.to_uint8(generate_for(params, jax.random.key(0),
                                          {k: v[:8] for k, v in attributes.items()}))
    grid = image_io.make_grid(np.concatenate([fake, real[:8]]), ncols=8, padding=0)
    image_io.save_image(grid.repeat(4, axis=0).repeat(4, axis=1), args.grid)


if __name__ == "__main__":
  main()
