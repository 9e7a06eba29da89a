"""``arrayrecord``: shards of pre-resized images and captions (``scripts/prepare_data.py``).

The fast path for large data: each image is decoded, cropped to its box and
resized once, at conversion, instead of at every epoch. A prepared directory
holds, per split::

    DIR/<split>-00000-of-00004.array_record   # one record per example
    DIR/<split>-captions.json                  # names and captions, in record order
    DIR/info.json                              # format, sizes, counts, source, skipped files

A record is the example's name and captions as a small JSON header, then the
encoded image (JPEG or PNG): ``uint32 little-endian header length | header |
image bytes``. The captions are also kept in the side file so that building a
vocabulary or picking the fixed prompts reads no image.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any, Sequence

from jaxgan.data.files import DataError, require_dir

FORMAT = "jaxgan-arrayrecord"
FORMAT_VERSION = 1
INFO_FILE = "info.json"
_HEADER_LENGTH = struct.Struct("<I")


def shard_name(split: str, index: int, count: int) -> str:
  return f"{split}-{index:05d}-of-{count:05d}.array_record"


def captions_name(split: str) -> str:
  return f"{split}-captions.json"


def pack_record(name: str, captions: Sequence[str], encoded: bytes) -> bytes:
  """One example as a record: header length, JSON header (name, captions), image bytes."""
  header = json.dumps({"name": name, "captions": list(captions)},
                      ensure_ascii=False).encode("utf-8")
  return _HEADER_LENGTH.pack(len(header)) + header + encoded


def unpack_record(record: bytes) -> dict[str, Any]:
  """The inverse of :func:`pack_record`: ``{"encoded", "captions", "name"}``."""
  (length,) = _HEADER_LENGTH.unpack_from(record)
  start = _HEADER_LENGTH.size
  header = json.loads(record[start:start + length].decode("utf-8"))
  return {"encoded": bytes(record[start + length:]), "captions": header["captions"],
          "name": header["name"]}


def read_info(path: str) -> dict[str, Any]:
  """The ``info.json`` of a prepared directory, checked for format and version.

  Raises:
    DataError: a missing directory or info file, or a format this code does not read.
  """
  root = require_dir(path, "arrayrecord")
  info_path = os.path.join(root, INFO_FILE)
  if not os.path.isfile(info_path):
    raise DataError(f"arrayrecord: {root!r} has no {INFO_FILE}: not a directory written "
                    f"by scripts/prepare_data.py, or the conversion did not finish.")
  try:
    with open(info_path, encoding="utf-8") as f:
      info = json.load(f)
  except json.JSONDecodeError as error:
    raise DataError(f"arrayrecord: {info_path!r} is not valid JSON ({error.msg}).") from None
  if not isinstance(info, dict) or info.get("format") != FORMAT:
    raise DataError(f"arrayrecord: {info_path!r} is not a {FORMAT} info file.")
  if info.get("version") != FORMAT_VERSION:
    raise DataError(f"arrayrecord: {info_path!r} has format version {info.get('version')!r}; "
                    f"this jaxgan reads version {FORMAT_VERSION}. Convert the data again "
                    f"with scripts/prepare_data.py.")
  return info


class ArrayRecordSource:
  """Random access to a prepared split, a grain ``RandomAccessDataSource``.

  Item ``i`` is a dict ``encoded`` (JPEG or PNG bytes, already resized so the
  short side is ``load_size``), ``captions`` (list of str) and ``name``, as
  :class:`jaxgan.data.files.FileSource` serves (the crop box, if any, was
  applied at conversion).
  """

  def __init__(self, path: str, split: str = "train", image_size: int | None = None):
    """Opens ``split`` of the directory ``path``.

    Args:
      path: a directory written by ``scripts/prepare_data.py``.
      split: "train" or "test" (any split the conversion wrote).
      image_size: the training size, when known: refused if larger than the
        size the data was prepared for (its images would be upscaled).

    Raises:
      DataError: a missing directory, info file, split or shard, an unknown
        format version, or data prepared for a smaller ``image_size``.
    """
    import grain  # pylint: disable=g-import-not-at-top
    info = read_info(path)
    self.root = os.path.abspath(os.path.expanduser(path))
    splits = info.get("splits", {})
    if split not in splits:
      raise DataError(f"arrayrecord {self.root!r} has no {split!r} split (it has: "
                      f"{', '.join(sorted(splits)) or 'none'}); convert it with "
                      f"scripts/prepare_data.py --splits {split}.")
    entry = splits[split]
    shards = [os.path.join(self.root, name) for name in entry["shards"]]
    missing = [s for s in shards if not os.path.isfile(s)]
    if missing:
      raise DataError(f"arrayrecord: {len(missing)} shard(s) of the {split!r} split are "
                      f"missing, first {missing[0]!r}.")
    with open(os.path.join(self.root, entry["captions_file"]), encoding="utf-8") as f:
      side = json.load(f)
    self._names: list[str] = side["names"]
    self._captions: list[list[str]] = side["captions"]
    self._records = grain.sources.ArrayRecordDataSource(shards)
    if len(self._records) != len(self._names):
      raise DataError(f"arrayrecord {self.root!r} ({split}): the shards hold "
                      f"{len(self._records)} records, the captions file "
                      f"{len(self._names)}; convert the data again.")
    if not self._names:
      raise DataError(f"arrayrecord {self.root!r} ({split}): no example.")
    if image_size is not None and image_size > info["image_size"]:
      raise DataError(f"arrayrecord {self.root!r} was prepared for image_size "
                      f"{info['image_size']}, smaller than {image_size}; convert the data "
                      f"again with scripts/prepare_data.py --size {image_size}.")
    self.info = info
    self.image_size: int = info["image_size"]
    self.load_size: int = info["load_size"]
    self.description = f"arrayrecord {self.root} ({split}) of {info.get('source', '?')}"

  def __len__(self) -> int:
    return len(self._names)

  def __repr__(self) -> str:
    return f"ArrayRecordSource({self.description}, {len(self)} examples)"

  def name(self, index: int) -> str:
    return self._names[index]

  def captions(self, index: int) -> list[str]:
    return list(self._captions[index])

  def __getitem__(self, index: Any) -> dict[str, Any]:
    return unpack_record(self._records[index])
