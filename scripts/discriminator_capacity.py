"""Can D's image path read the ``shapes`` attributes when it is asked to?

    python scripts/discriminator_capacity.py [--image_size 32] [--nf 16]
        [--residual_init 0] [--steps 1500]

Trains a fresh DF-GAN discriminator image path, by default of
``configs/base.py``'s size, with one linear softmax head per attribute on its
[4, 4, C] features (what every head of D reads), supervised on rendered
one-object ``shapes`` images, and prints the held-out accuracy per attribute (chance: 1/8 shape, 1/10 colour,
1/3 size, 1/9 position) every ``--every`` steps.

``scripts/feature_probes.py`` measures what a GAN-trained D's features carry;
this measures what the same architecture can carry, so a low reading there is
told apart: the network (too narrow, too coarse) or its training objective
(nothing asks it to). The attributes are labels here only; training runs never
see them.
"""

import argparse
import json

from jaxgan import xla_flags

xla_flags.set_entry_point_defaults()

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan.data import shapes
from jaxgan.models.dfgan import Discriminator
from jaxgan.train.step import images_to_float

ATTRIBUTE_CLASSES = {"shape": len(shapes.SHAPES), "colour": len(shapes.COLOURS),
                     "size": len(shapes.SIZES), "position": len(shapes.POSITIONS)}
DATA_SEED = 20261130  # other examples than evaluate.py's and feature_probes.py's


def render(image_size: int, count: int, offset: int,
           max_objects: int) -> tuple[np.ndarray, dict]:
  """``count`` rendered images (uint8) from ``offset`` on, and their labels."""
  source = shapes.ShapesSource("train", image_size=image_size, num_examples=offset + count,
                               seed=DATA_SEED, max_objects=max_objects)
  indices = range(offset, offset + count)
  images = np.stack([source[i]["image"] for i in indices])
  labels = {name: np.array([int(source.attributes(i)[name][0]) for i in indices])
            for name in ATTRIBUTE_CLASSES}
  return images, labels


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  # configs/base.py's sizes by default.
  parser.add_argument("--image_size", type=int, default=32)
  parser.add_argument("--nf", type=int, default=16)
  parser.add_argument("--residual_init", type=float, default=0.0,
                      help="where D's residual gammas start (DF-GAN: 0)")
  # One object: the image alone says which object is "the first", so each
  # attribute can be read perfectly (the probe's ceiling is 1).
  parser.add_argument("--max_objects", type=int, default=1)
  parser.add_argument("--steps", type=int, default=1500)
  parser.add_argument("--every", type=int, default=500)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--train", type=int, default=20000)
  parser.add_argument("--test", type=int, default=1000)
  parser.add_argument("--lr", type=float, default=1e-3)
  args = parser.parse_args()

  d = Discriminator(nf=args.nf, image_size=args.image_size,
                    residual_init=args.residual_init)
  train_images, train_labels = render(args.image_size, args.train, 0, args.max_objects)
  test_images, test_labels = render(args.image_size, args.test, args.train,
                                    args.max_objects)

  key = jax.random.key(0)
  d_params = d.init(key, images_to_float(jnp.asarray(train_images[:1])),
                    jnp.zeros((1, 1)))["params"]
  dim = int(np.prod(jax.eval_shape(
      lambda p: d.apply({"params": p}, jnp.zeros((1,) + train_images.shape[1:]),
                        method="features"), d_params).shape))
  heads = {name: {"w": jnp.zeros((dim, classes)), "b": jnp.zeros((classes,))}
           for name, classes in ATTRIBUTE_CLASSES.items()}
  params = {"d": d_params, "heads": heads}
  tx = optax.adam(args.lr)
  opt_state = tx.init(params)

  def logits(params, images):
    features = d.apply({"params": params["d"]}, images_to_float(images), method="features")
    flat = features.reshape(features.shape[0], -1)
    return {name: flat @ h["w"] + h["b"] for name, h in params["heads"].items()}

  def loss_fn(params, images, labels):
    out = logits(params, images)
    return sum(optax.softmax_cross_entropy_with_integer_labels(out[n], labels[n]).mean()
               for n in ATTRIBUTE_CLASSES)

  @jax.jit
  def train_step(params, opt_state, images, labels):
    loss, grads = jax.value_and_grad(loss_fn)(params, images, labels)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  predict = jax.jit(lambda p, x: {n: jnp.argmax(l, -1) for n, l in logits(p, x).items()})

  def accuracy(params):
    predictions = [predict(params, test_images[i:i + 250])
                   for i in range(0, len(test_images), 250)]
    return {n: round(float(np.mean(np.concatenate([p[n] for p in predictions])
                                   == test_labels[n])), 3) for n in ATTRIBUTE_CLASSES}

  rng = np.random.default_rng(0)
  for step in range(1, args.steps + 1):
    batch = rng.integers(0, len(train_images), args.batch_size)
    params, opt_state, loss = train_step(
        params, opt_state, train_images[batch],
        {n: train_labels[n][batch] for n in ATTRIBUTE_CLASSES})
    if step % args.every == 0 or step == args.steps:
      print(json.dumps({"nf": args.nf, "image_size": args.image_size,
                        "residual_init": args.residual_init, "step": step,
                        "loss": round(float(loss), 4),
                        "held_out_accuracy": accuracy(params)}), flush=True)


if __name__ == "__main__":
  main()
