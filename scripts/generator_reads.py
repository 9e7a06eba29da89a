"""What a run's generator draws when one word of the caption changes (``shapes`` runs).

    python scripts/generator_reads.py --workdir runs/NAME [--step N] [--attribute shape]
        [--num 24] [--noises 6] [--size large] [--grid words.png]

The twin of ``discriminator_reads.py`` on G's side. For each of ``--num``
one-object captions of the evaluation prompts (``train`` split), object 1's
``--attribute`` takes every value in turn (colours too close to the
background are skipped, as the data never has them) under the same
``--noises`` noise vectors (:meth:`Pipeline.generate_from_noise`, the EMA
generator), and the shapes probe reads the images. Printed as JSON: the
probe's table of the value asked (rows) against the value read (columns),
its accuracy, and how much the pixels move when only the word changes
against when only the noise does (the mean over pixels of the standard
deviation across values, and across noises). A word G ignores moves the
pixels no more than the noise; a word G follows moves them and is read
back; a word that moves them without being read back is drawn, but not as
the probe (trained on real renders) knows it. ``--grid`` writes the images
of the first captions: one row per value, one column per noise, upscaled 3x.

The attributes are read here only, to build the captions: training never
sees them.
"""

import argparse
import json

from jaxgan import xla_flags

xla_flags.set_entry_point_defaults()

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
from PIL import Image

from jaxgan import sampling
from jaxgan.data import shapes
from jaxgan.metrics import alignment
from jaxgan.metrics import probe as probe_lib

VALUES = {"shape": shapes.SHAPES, "colour": shapes.COLOURS, "size": shapes.SIZES,
          "position": shapes.POSITIONS}
GRID_COLUMNS = 8
GRID_SCALE = 3


def one_object_bases(num: int, size: str | None) -> list[dict[str, np.ndarray]]:
  """The first ``num`` one-object attribute sets of the train evaluation prompts."""
  source = shapes.ShapesSource("train", image_size=shapes.MIN_IMAGE_SIZE,
                               num_examples=20 * num, seed=alignment.EVAL_SEED)
  bases = []
  for i in range(len(source)):
    attributes = source.attributes(i)
    if int(attributes["num_objects"]) != 1:
      continue
    if size is not None:
      attributes["size"][0] = shapes.SIZES.index(size)
    bases.append(attributes)
    if len(bases) == num:
      return bases
  raise SystemExit(f"only {len(bases)} one-object prompts among {len(source)}")


def variants(base: dict[str, np.ndarray], attribute: str) -> list[tuple[int, str]]:
  """(value, caption) for every value of ``attribute`` the data allows here."""
  out = []
  for value in range(len(VALUES[attribute])):
    attributes = {key: np.array(v, copy=True) for key, v in base.items()}
    attributes[attribute][0] = value
    if (attribute == "colour" and int(attributes["background"])
        not in shapes.allowed_backgrounds([value])):
      continue
    out.append((value, shapes.describe(attributes)))
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--step", type=int, default=None, help="default: the latest")
  parser.add_argument("--attribute", choices=sorted(VALUES), default="shape")
  parser.add_argument("--num", type=int, default=24, help="one-object captions")
  parser.add_argument("--noises", type=int, default=6, help="noise vectors per caption")
  parser.add_argument("--size", choices=shapes.SIZES, default=None,
                      help="set object 1's size in every caption (default: the prompt's)")
  parser.add_argument("--grid", default=None, help="write the first captions' images here")
  args = parser.parse_args()
  if args.num < 1 or args.noises < 2:
    parser.error("--num must be >= 1 and --noises >= 2")
  if args.size is not None and args.attribute == "size":
    parser.error("--size fixes the size; it cannot be the --attribute too")

  pipeline = sampling.load_pipeline(args.workdir, args.step)
  if pipeline.config.data.source != "shapes":
    raise SystemExit(f"{args.workdir} trained on {pipeline.config.data.source!r}; this "
                     f"reads shapes attributes only.")
  probe = probe_lib.load_probe(pipeline.config.image_size)
  names = VALUES[args.attribute]
  table = np.zeros((len(names), len(names)), np.int64)
  across_words, across_noises, grid_columns = [], [], []
  for i, base in enumerate(one_object_bases(args.num, args.size)):
    values, captions = zip(*variants(base, args.attribute))
    noise = pipeline.noise([captions[0]], args.noises, seed=i)
    prompts = [c for c in captions for _ in range(args.noises)]
    images = pipeline.generate_from_noise(prompts, np.tile(noise, (len(captions), 1)))
    read = probe.predict(images)[args.attribute][:, 0].reshape(len(values), args.noises)
    for value, row in zip(values, read):
      for r in row[row >= 0]:
        table[value, r] += 1
    images = images.reshape(len(values), args.noises, *images.shape[1:])
    across_words.append(float(np.mean(np.std(images, axis=0))))
    across_noises.append(float(np.mean(np.std(images, axis=1))))
    if args.grid and len(values) == len(names) and len(grid_columns) < GRID_COLUMNS:
      grid_columns.extend(images[:, n] for n in range(args.noises))
  if args.grid:
    if not grid_columns:
      raise SystemExit("--grid: no caption took every value (another --attribute?)")
    columns = np.stack(grid_columns[:GRID_COLUMNS], axis=1)  # [values, columns, H, W, 3]
    rows, cols, h, w, _ = columns.shape
    pixels = np.clip((columns + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    pixels = pixels.transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, 3)
    Image.fromarray(pixels).resize((cols * w * GRID_SCALE, rows * h * GRID_SCALE),
                                   Image.NEAREST).save(args.grid)
  print(json.dumps({
      "workdir": args.workdir, "step": pipeline.step, "attribute": args.attribute,
      "size": args.size, "captions": args.num, "noises": args.noises,
      "accuracy": round(float(np.trace(table) / max(table.sum(), 1)), 3),
      "chance": round(1.0 / len(names), 3),
      "pixel_std_across_words": round(float(np.mean(across_words)), 4),
      "pixel_std_across_noises": round(float(np.mean(across_noises)), 4),
      "values": list(names),
      "asked_by_read": table.tolist(),
  }))


if __name__ == "__main__":
  main()
