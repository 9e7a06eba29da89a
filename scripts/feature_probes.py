"""What a run's discriminator features and sentence embeddings carry, by linear probes.

    python scripts/feature_probes.py --workdir runs/NAME [--step N] [--train 3000] [--test 1000]

Real ``shapes`` renders go through D's image path (its [4, 4, C] features,
what D's matching and contrastive heads read) and one caption of each
through the text encoder (the sentence that G and D are conditioned on). Per
attribute of the first object, a softmax regression is fitted on ``--train``
of them and scored on ``--test`` others; likewise for the same networks at
the run's initialisation (its own init key), as the reference. Printed:
held-out accuracy (chance: 1/8 shape, 1/10 colour, 1/3 size, 1/9 position).

An attribute that D's features do not carry, D's heads cannot score, so G
gets no gradient towards it; one the sentence does not carry cannot reach G
at all. The attributes are read here only, as the probes' labels: training
never sees them.
"""

import argparse
import json

from jaxgan import xla_flags

xla_flags.set_entry_point_defaults()

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp
import numpy as np

from jaxgan import run as run_lib, sampling
from jaxgan.data import shapes
from jaxgan.metrics.linear_probe import probe_accuracy
from jaxgan.train.step import images_to_float

ATTRIBUTE_CLASSES = {"shape": len(shapes.SHAPES), "colour": len(shapes.COLOURS),
                     "size": len(shapes.SIZES), "position": len(shapes.POSITIONS)}
# Other examples than evaluate.py's prompts (metrics.alignment.EVAL_SEED).
PROBE_DATA_SEED = 20261129
_CHUNK = 250


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--step", type=int, default=None, help="default: the latest")
  parser.add_argument("--train", type=int, default=3000, help="examples that fit each probe")
  parser.add_argument("--test", type=int, default=1000, help="examples that score it")
  args = parser.parse_args()

  config, tokenizer, models, frozen, step, saved = sampling.load_networks(args.workdir,
                                                                         args.step)
  if config.data.source != "shapes":
    raise SystemExit(f"{args.workdir} trained on {config.data.source!r}; the probes' "
                     f"labels are shapes attributes.")
  initial = models.init(run_lib.run_keys(config).init, image_size=config.image_size,
                        max_length=config.text.max_length, frozen_text=frozen)

  total = args.train + args.test
  source = shapes.ShapesSource("train", image_size=config.image_size,
                               num_examples=total, seed=PROBE_DATA_SEED)
  rng = np.random.default_rng(0)
  examples = [source[i] for i in range(total)]
  labels = {name: np.array([int(source.attributes(i)[name][0]) for i in range(total)])
            for name in ATTRIBUTE_CLASSES}
  images = np.stack([e["image"] for e in examples])
  captions = [str(rng.choice(e["captions"])) for e in examples]

  def d_features(d_params):
    return np.concatenate([
        np.asarray(models.d_features(d_params, images_to_float(jnp.asarray(images[i:i + _CHUNK]))))
        for i in range(0, total, _CHUNK)])

  def sentences(text_params):
    chunks = []
    for i in range(0, total, _CHUNK):
      ids, mask = tokenizer.encode(captions[i:i + _CHUNK])
      chunks.append(np.asarray(models.encode_text(text_params, ids, mask, frozen)))
    return np.concatenate(chunks)

  representations = {
      f"D features, step {step}": lambda: d_features(saved["discriminator"]),
      "D features, initialisation": lambda: d_features(initial["discriminator"]),
      f"sentence, step {step}": lambda: sentences(saved["text_encoder"]),
      "sentence, initialisation": lambda: sentences(initial["text_encoder"]),
  }
  report = {}
  for name, compute in representations.items():
    features = compute()
    report[name] = {
        attribute: round(probe_accuracy(features, labels[attribute], args.train, classes), 3)
        for attribute, classes in ATTRIBUTE_CLASSES.items()}
  print(json.dumps({"workdir": args.workdir, "step": step, "train": args.train,
                    "test": args.test, "held_out_accuracy": report}))


if __name__ == "__main__":
  main()
