"""Captioned images stored as files: the source behind ``imagefolder``, ``cub`` and ``coco``.

Each layout (see :mod:`jaxgan.data.imagefolder`, :mod:`jaxgan.data.dfgan_layout`)
only lists its examples once at start: a path, its captions, an optional crop
box. :class:`FileSource` then serves the raw file bytes by index; decoding,
cropping and resizing happen later in the grain workers
(:mod:`jaxgan.data.decode`), so listing 80,000 COCO images takes seconds and
a corrupt file costs one skipped example, not the run.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import os
import re
from typing import Any, Sequence

import numpy as np

_log = logging.getLogger("jaxgan")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class DataError(ValueError):
  """A data set cannot be read as configured: a missing path, file or column."""


def clean_caption(text: str) -> str:
  """Strips and collapses whitespace (newlines and tabs included)."""
  return re.sub(r"\s+", " ", text).strip()


def clean_captions(texts: Sequence[str]) -> list[str]:
  """Cleaned captions with the empty ones dropped."""
  cleaned = (clean_caption(t) for t in texts if isinstance(t, str))
  return [t for t in cleaned if t]


def read_caption_file(path: str) -> list[str]:
  """One caption per non-empty line of a text file (UTF-8, undecodable bytes replaced)."""
  with open(path, encoding="utf-8", errors="replace") as f:
    return clean_captions(f.read().splitlines())


def require_dir(path: str, what: str) -> str:
  """``path`` as an absolute directory, or DataError naming it."""
  if not path:
    raise DataError(f"{what}: no path given; set --config.data.path=DIR.")
  path = os.path.abspath(os.path.expanduser(path))
  if not os.path.isdir(path):
    raise DataError(f"{what}: {path!r} is not a directory.")
  return path


def require_file(path: str, what: str) -> str:
  if not os.path.isfile(path):
    raise DataError(f"{what}: {path!r} does not exist.")
  return path


@dataclasses.dataclass(frozen=True)
class FileExample:
  """One listed example: where its image is, what it says, what part to keep."""
  path: str
  captions: list[str]
  box: tuple[float, float, float, float] | None = None


class FileSource:
  """Random access to captioned image files, a grain ``RandomAccessDataSource``.

  Item ``i`` is a dict ``encoded`` (the file's bytes), ``captions`` (list of
  str), ``name`` (the path relative to the data set's root, for messages) and,
  for CUB, ``box`` (float32 [4], left/top/right/bottom in pixels).
  """

  def __init__(self, root: str, examples: Sequence[FileExample], *, description: str,
               uncaptioned: int = 0):
    """Creates the source.

    Args:
      root: the data set's directory (names in messages are relative to it).
      examples: the listed examples, in a fixed order.
      description: what it is, e.g. "imagefolder /data/birds (train)".
      uncaptioned: images the listing skipped for want of a caption (reported).

    Raises:
      DataError: when there is no example at all.
    """
    if not examples:
      raise DataError(f"{description}: no captioned image found.")
    self.root = root
    self.description = description
    self._examples = list(examples)
    self.uncaptioned = uncaptioned

  def __len__(self) -> int:
    return len(self._examples)

  def __repr__(self) -> str:
    return f"FileSource({self.description}, {len(self)} examples)"

  def _example(self, index: Any) -> FileExample:
    return self._examples[operator.index(index)]

  def name(self, index: int) -> str:
    """The example's image path relative to the root."""
    return os.path.relpath(self._example(index).path, self.root)

  def captions(self, index: int) -> list[str]:
    return list(self._example(index).captions)

  def __getitem__(self, index: Any) -> dict[str, Any]:
    example = self._example(index)
    try:
      with open(example.path, "rb") as f:
        encoded = f.read()
    except OSError as error:  # removed or unreadable since listing: skipped later
      _log.warning("cannot read %s: %s", example.path, error)
      encoded = b""
    item = {"encoded": encoded, "captions": list(example.captions),
            "name": self.name(index)}
    if example.box is not None:
      item["box"] = np.asarray(example.box, np.float32)
    return item
