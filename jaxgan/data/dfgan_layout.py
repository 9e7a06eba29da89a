"""``cub`` and ``coco``: the layouts DF-GAN and AttnGAN users already have on disk.

CUB-200-2011 (``data.path`` is the ``birds`` directory)::

    birds/CUB_200_2011/images/<class>/<image>.jpg
    birds/CUB_200_2011/images.txt              # "<id> <class>/<image>.jpg"
    birds/CUB_200_2011/bounding_boxes.txt      # "<id> <x> <y> <width> <height>"
    birds/text/<class>/<image>.txt             # 10 captions, one a line
    birds/train/filenames.pickle               # ["<class>/<image>", ...]
    birds/test/filenames.pickle

Each bird is cropped as DF-GAN crops it: a square of 1.5 times the larger side
of its bounding box, centred on the box, clipped to the image.

COCO-2014 (``data.path`` is the ``coco`` directory)::

    coco/images/<key>.jpg   (or images/train2014/, images/val2014/, jpg/)
    coco/text/<key>.txt                        # 5 captions, one a line
    coco/train/filenames.pickle                # ["COCO_train2014_000000000009", ...]
    coco/test/filenames.pickle

Everything is listed and checked at start: a missing file is one clear error
naming it, before any training.
"""

from __future__ import annotations

import os
import pickle
from typing import Sequence

from jaxgan.data.files import (DataError, FileExample, FileSource, read_caption_file,
                               require_dir, require_file)

SPLITS = ("train", "test")
COCO_IMAGE_DIRS = ("images", "images/train2014", "images/val2014", "jpg",
                   "jpg/train2014", "jpg/val2014")


def _filenames(root: str, split: str, what: str) -> list[str]:
  if split not in SPLITS:
    raise DataError(f"{what}: unknown split {split!r}; valid: {SPLITS}.")
  path = require_file(os.path.join(root, split, "filenames.pickle"), what)
  try:
    with open(path, "rb") as f:
      # DF-GAN's pickles were written by Python 2: latin1 reads their str.
      names = pickle.load(f, encoding="latin1")
  except (pickle.UnpicklingError, EOFError, ValueError) as error:
    raise DataError(f"{what}: {path!r} is not a readable pickle ({error}).") from None
  if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
    raise DataError(f"{what}: {path!r} should hold a list of file keys.")
  if not names:
    raise DataError(f"{what}: {path!r} lists no file.")
  return [n[:-4] if n.endswith(".jpg") else n for n in names]


def _check_missing(missing: Sequence[str], what: str, listing: str) -> None:
  if missing:
    shown = ", ".join(repr(m) for m in missing[:3])
    raise DataError(f"{what}: {len(missing)} file(s) named by {listing} are missing, "
                    f"first {shown}.")


def _captions(root: str, keys: Sequence[str], what: str,
              listing: str) -> dict[str, list[str]]:
  paths = {key: os.path.join(root, "text", key + ".txt") for key in keys}
  _check_missing([p for p in paths.values() if not os.path.isfile(p)], what, listing)
  return {key: read_caption_file(path) for key, path in paths.items()}


def dfgan_box(x: float, y: float, width: float, height: float) -> tuple[float, ...]:
  """DF-GAN's crop of a CUB bird: a square of 1.5 x the larger box side, centred on it.

  The square may reach past the image; :func:`jaxgan.data.decode.crop_to_box`
  clips it to the picture, as DF-GAN's ``get_imgs`` does.
  """
  radius = int(max(width, height) * 0.75)
  centre_x, centre_y = int((2 * x + width) / 2), int((2 * y + height) / 2)
  return (centre_x - radius, centre_y - radius, centre_x + radius, centre_y + radius)


def _cub_boxes(root: str, what: str) -> dict[str, tuple[float, ...]]:
  base = os.path.join(root, "CUB_200_2011")
  images = require_file(os.path.join(base, "images.txt"), what)
  boxes = require_file(os.path.join(base, "bounding_boxes.txt"), what)
  with open(images) as f:
    key_of = {}
    for line in f:
      if line.strip():
        image_id, name = line.split()
        key_of[image_id] = name[:-4] if name.endswith(".jpg") else name
  result = {}
  with open(boxes) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      fields = line.split()
      try:
        result[key_of[fields[0]]] = dfgan_box(*map(float, fields[1:5]))
      except (KeyError, ValueError, TypeError):
        raise DataError(f"{what}: {boxes}:{number}: expected '<id> <x> <y> <width> "
                        f"<height>' with an id from images.txt, got {line.strip()!r}.") from None
  return result


def cub_source(path: str, split: str = "train") -> FileSource:
  """CUB-200-2011 birds in DF-GAN's layout, each cropped around its bird.

  Args:
    path: the ``birds`` directory.
    split: "train" or "test" (DF-GAN's split: 8,855 and 2,933 images).

  Returns:
    A :class:`FileSource` whose items carry the crop ``box``.

  Raises:
    DataError: a missing directory, pickle, image, caption file or box.
  """
  root = require_dir(path, "cub")
  what = f"cub {root}"
  keys = _filenames(root, split, what)
  listing = f"{split}/filenames.pickle"
  image_dir = os.path.join(root, "CUB_200_2011", "images")
  paths = {key: os.path.join(image_dir, key + ".jpg") for key in keys}
  _check_missing([p for p in paths.values() if not os.path.isfile(p)], what, listing)
  captions = _captions(root, keys, what, listing)
  boxes = _cub_boxes(root, what)
  _check_missing([k for k in keys if k not in boxes], what + " bounding_boxes.txt", listing)
  examples = [FileExample(paths[k], captions[k], boxes[k]) for k in keys if captions[k]]
  return FileSource(root, examples, description=f"{what} ({split})",
                    uncaptioned=len(keys) - len(examples))


def coco_source(path: str, split: str = "train") -> FileSource:
  """COCO-2014 in DF-GAN's layout (its train and test lists).

  Args:
    path: the ``coco`` directory.
    split: "train" or "test" (DF-GAN: 82,783 and 40,470 images).

  Returns:
    A :class:`FileSource`.

  Raises:
    DataError: a missing directory, pickle, image or caption file.
  """
  root = require_dir(path, "coco")
  what = f"coco {root}"
  keys = _filenames(root, split, what)
  listing = f"{split}/filenames.pickle"
  # One listing per candidate folder instead of up to six stat calls per image.
  present = {}
  for folder in COCO_IMAGE_DIRS:
    directory = os.path.join(root, folder)
    if os.path.isdir(directory):
      present[directory] = set(os.listdir(directory))
  paths, missing = {}, []
  for key in keys:
    name = key + ".jpg"
    found = next((d for d, names in present.items() if name in names), None)
    if found is None:
      missing.append(name)
    else:
      paths[key] = os.path.join(found, name)
  _check_missing(missing, f"{what} (looked in {', '.join(COCO_IMAGE_DIRS)})", listing)
  captions = _captions(root, keys, what, listing)
  examples = [FileExample(paths[k], captions[k]) for k in keys if captions[k]]
  return FileSource(root, examples, description=f"{what} ({split})",
                    uncaptioned=len(keys) - len(examples))
