"""Which caption attributes a run's discriminator reads, on real ``shapes`` renders.

    python scripts/discriminator_reads.py --workdir runs/NAME [--step N] [--num 200] [--fakes] \
        [--split holdout]

Every real render of the evaluation prompts (``train`` split, or ``--split
holdout``: object 1's (shape, colour) pair never seen in training) is scored
against its own caption and against the same caption with one attribute of
its first object changed (another shape, colour, size or grid cell, drawn at
random), and, on the two-object images with two colours, against the caption
with the two objects' colours swapped ("colours_swapped": the same words, the
colours bound to the other places), and the same pair of captions scored
with another image ("colours_swapped_other_image", a control: D should not
prefer either there; if it does, it reads the text, not the image). Printed per attribute: how often D prefers the true caption, by its
matching logit, with a contrastive head by the head's cosine, and with a
caption-word head by how likely the head finds each caption's words (the
scores of :meth:`jaxgan.sampling.Pipeline.score`, which ``--best-of`` ranks
by: ``match``, ``contrastive``, ``words``). 0.5 is
chance; an attribute D does not read gives G no reason to draw it right.
The attributes are read here only, to build the changed captions: training
never sees them.

With ``--fakes`` the images are the run's own generator's (EMA weights, seed 0)
for the same captions instead of the real renders: whether D finds G's
images of a caption more like that caption than like the changed one. Where
D tells an attribute on real renders but not on G's images, G draws the
attribute too poorly for D to read; where it tells it as well on G's images
as on real ones, D is satisfied and gives G no reason to draw it better (a
shortcut: D reads the attribute from something G already gets right).
"""

import argparse
import json

from jaxgan import xla_flags

xla_flags.set_entry_point_defaults()

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import sampling
from jaxgan.data import shapes
from jaxgan.metrics import alignment
from jaxgan.models import gan
from jaxgan.train.step import images_to_float

ATTRIBUTE_VALUES = {"shape": len(shapes.SHAPES), "colour": len(shapes.COLOURS),
                    "size": len(shapes.SIZES), "position": len(shapes.POSITIONS)}


def changed(attributes, name, rng):
  """``attributes`` with object 1's ``name`` set to another value (a position
  not taken by object 2)."""
  new = {key: np.array(value, copy=True) for key, value in attributes.items()}
  taken = {int(new[name][0])}
  if name == "position":
    taken.add(int(new["position"][1]))
  new[name][0] = rng.choice([v for v in range(ATTRIBUTE_VALUES[name]) if v not in taken])
  return new


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--step", type=int, default=None, help="default: the latest")
  parser.add_argument("--num", type=int, default=200)
  parser.add_argument("--fakes", action="store_true",
                      help="score the run's EMA generator's images of the captions, "
                           "not the real renders")
  parser.add_argument("--split", default="train", choices=shapes.SPLITS,
                      help="the evaluation prompts' split (holdout: object 1's shape and "
                           "colour never drawn together in training)")
  args = parser.parse_args()

  config, tokenizer, models, frozen, step, saved = sampling.load_networks(args.workdir,
                                                                         args.step)
  if config.data.source != "shapes":
    raise SystemExit(f"{args.workdir} trained on {config.data.source!r}; this reads "
                     f"shapes attributes only.")
  d_params, text_params = saved["discriminator"], saved["text_encoder"]

  source = shapes.ShapesSource(args.split, image_size=config.image_size,
                               num_examples=args.num, seed=alignment.EVAL_SEED)
  attributes = [source.attributes(i) for i in range(args.num)]
  if args.fakes:
    # The networks already read: no second restore of the checkpoint.
    pipeline = sampling.Pipeline(
        config, tokenizer, models,
        {key: saved[key] for key in sampling.RESTORED_KEYS} | {"frozen_text": frozen}, step)
    images = jnp.asarray(pipeline.generate([shapes.describe(a) for a in attributes]))
  else:
    images = images_to_float(jnp.asarray(np.stack([source[i]["image"]
                                                   for i in range(args.num)])))
  # The report's names for the scores D's heads give (gan.make_score_fn).
  kinds = {"logit": "match"}
  if config.model.get("contrastive_dim", 0):
    kinds["cosine"] = "contrastive"
  if config.model.get("word_dim", 0):
    kinds["words"] = "words"
  score_fns = {kind: jax.jit(gan.make_score_fn(models, by)) for kind, by in kinds.items()}

  def scores(captions, image_shift=0):
    """D's scores of each caption with its image (or the one ``image_shift`` on)."""
    ids, mask = tokenizer.encode(captions)
    shifted = jnp.roll(images, image_shift, axis=0)
    return {kind: fn(d_params, text_params, frozen, shifted, ids, mask)
            for kind, fn in score_fns.items()}

  true_scores = scores([shapes.describe(a) for a in attributes])
  rng = np.random.default_rng(0)
  report = {}
  for name in ATTRIBUTE_VALUES:
    changed_scores = scores([shapes.describe(changed(a, name, rng)) for a in attributes])
    report[name] = {kind: round(float(jnp.mean(true_scores[kind] > changed_scores[kind])), 3)
                    for kind in true_scores}
  # Binding: the two objects' colours swapped, on the two-object images with
  # two colours (the same words, other pairs): does D read which colour is
  # where, or only which colours are there?
  two = np.array([a["num_objects"] == 2 and a["colour"][0] != a["colour"][1]
                  for a in attributes])
  if two.any():
    def swapped(a):
      new = {key: np.array(value, copy=True) for key, value in a.items()}
      new["colour"] = new["colour"][::-1].copy()
      return new
    swapped_captions = [shapes.describe(swapped(a) if pick else a)
                        for a, pick in zip(attributes, two)]
    swapped_scores = scores(swapped_captions)
    report["colours_swapped"] = {
        kind: round(float(jnp.mean((true_scores[kind] > swapped_scores[kind])[two])), 3)
        for kind in true_scores}
    report["colours_swapped"]["images"] = int(two.sum())
    # The control: the same two captions scored with another image, which
    # neither describes. A preference there comes from the text alone (a swap
    # that reads unlike a caption), not from looking at the image: 0.5 is
    # what reading the image gives.
    captions = [shapes.describe(a) for a in attributes]
    other_true, other_swapped = scores(captions, 1), scores(swapped_captions, 1)
    report["colours_swapped_other_image"] = {
        kind: round(float(jnp.mean((other_true[kind] > other_swapped[kind])[two])), 3)
        for kind in true_scores}
  print(json.dumps({"workdir": args.workdir, "step": step, "num": args.num, "split": args.split,
                    "images": "generator" if args.fakes else "real",
                    "true_caption_preferred": report}))


if __name__ == "__main__":
  main()
