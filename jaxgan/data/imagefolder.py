"""``imagefolder``: a user's own captioned images, in the Hugging Face convention.

A directory of images (subfolders allowed) with the captions in one of:

* ``metadata.jsonl``: one JSON object per line, ``{"file_name": "a/b.jpg",
  "text": "a caption"}``; ``text`` may also be a list of captions;
* ``metadata.csv``: columns ``file_name`` and ``text``;
* without a metadata file, same-name ``.txt`` sidecars (``a/b.jpg`` and
  ``a/b.txt``), one caption per non-empty line.

``file_name`` is relative to the metadata file. The caption column can be
renamed with ``data.caption_column``; other columns are ignored, except
``split``. Splits come from ``train/`` and ``test/`` subfolders (each laid out
as above), or from a ``split`` column; otherwise everything is ``train``.
Images without any caption are skipped and counted at start.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from typing import Any

from jaxgan.data.files import (IMAGE_EXTENSIONS, DataError, FileExample, FileSource,
                               clean_captions, read_caption_file, require_dir)

_log = logging.getLogger("jaxgan")

METADATA_FILES = ("metadata.jsonl", "metadata.csv")
# Names a split may have on disk, per split jaxgan asks for.
SPLIT_NAMES = {"train": ("train",), "test": ("test", "validation", "val")}


def _read_metadata(path: str) -> list[dict[str, Any]]:
  """The rows of a metadata.jsonl or metadata.csv file."""
  rows = []
  if path.endswith(".jsonl"):
    with open(path, encoding="utf-8") as f:
      for number, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          row = json.loads(line)
        except json.JSONDecodeError as error:
          raise DataError(f"{path}:{number}: not valid JSON ({error.msg}).") from None
        if not isinstance(row, dict):
          raise DataError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}.")
        rows.append(row)
  else:
    with open(path, encoding="utf-8", newline="") as f:
      rows = list(csv.DictReader(f))
  return rows


def _from_metadata(directory: str, metadata: str, split: str | None,
                   caption_column: str) -> tuple[list[FileExample], int]:
  """Examples listed by a metadata file; ``split`` filters on its ``split`` column."""
  rows = _read_metadata(metadata)
  if not rows:
    raise DataError(f"{metadata}: no rows.")
  columns = set().union(*(row.keys() for row in rows))
  for column in ("file_name", caption_column):
    if column not in columns:
      raise DataError(
          f"{metadata}: no {column!r} column (columns: {', '.join(sorted(columns))}). "
          f"Name the image column 'file_name' and the caption column "
          f"{caption_column!r}, or set --config.data.caption_column.")
  if "split" in columns and split is not None:
    rows = [r for r in rows if str(r.get("split", "")).strip() in SPLIT_NAMES[split]]
    if not rows:
      raise DataError(f"{metadata}: no row has split in {SPLIT_NAMES[split]}.")
  elif split not in (None, "train"):
    raise DataError(f"{metadata}: asked for the {split!r} split, but the metadata has "
                    f"no 'split' column and there is no {split}/ subfolder.")
  examples, uncaptioned, missing = [], 0, []
  for row in rows:
    path = os.path.normpath(os.path.join(directory, str(row["file_name"])))
    if not os.path.isfile(path):
      missing.append(str(row["file_name"]))
      continue
    text = row.get(caption_column)
    captions = clean_captions(text if isinstance(text, list) else [text or ""])
    if not captions:
      uncaptioned += 1
      continue
    examples.append(FileExample(path, captions))
  if missing:
    shown = ", ".join(repr(m) for m in missing[:3])
    raise DataError(f"{metadata}: {len(missing)} file_name(s) point to no file under "
                    f"{directory!r}, first {shown}.")
  return examples, uncaptioned


def _from_sidecars(directory: str) -> tuple[list[FileExample], int]:
  """Every image under ``directory`` with its same-name ``.txt``."""
  examples, uncaptioned = [], 0
  for folder, subfolders, files in os.walk(directory):
    subfolders.sort()  # a fixed order on every machine
    for name in sorted(files):
      stem, extension = os.path.splitext(name)
      if extension.lower() not in IMAGE_EXTENSIONS:
        continue
      sidecar = os.path.join(folder, stem + ".txt")
      captions = read_caption_file(sidecar) if os.path.isfile(sidecar) else []
      if not captions:
        uncaptioned += 1
        continue
      examples.append(FileExample(os.path.join(folder, name), captions))
  return examples, uncaptioned


def _list(directory: str, split: str | None,
          caption_column: str) -> tuple[list[FileExample], int]:
  """The examples of one folder laid out as in the module docstring."""
  for name in METADATA_FILES:
    metadata = os.path.join(directory, name)
    if os.path.isfile(metadata):
      return _from_metadata(directory, metadata, split, caption_column)
  if split not in (None, "train"):
    raise DataError(f"{directory}: asked for the {split!r} split, but there is no "
                    f"{split}/ subfolder and no metadata file with a 'split' column.")
  return _from_sidecars(directory)


def imagefolder_source(path: str, split: str = "train",
                       caption_column: str = "text") -> FileSource:
  """Lists an image folder's ``split`` (see the module docstring).

  Args:
    path: the folder.
    split: "train" or "test".
    caption_column: the metadata column holding the captions.

  Returns:
    A :class:`FileSource`.

  Raises:
    DataError: a missing folder or split, a malformed metadata file, a missing
      column, a ``file_name`` that points nowhere, or no captioned image.
  """
  root = require_dir(path, "imagefolder")
  if split not in SPLIT_NAMES:
    raise DataError(f"imagefolder: unknown split {split!r}; valid: {tuple(SPLIT_NAMES)}.")
  split_dir = next((os.path.join(root, n) for n in SPLIT_NAMES[split]
                    if os.path.isdir(os.path.join(root, n))), None)
  if split_dir is not None:
    examples, uncaptioned = _list(split_dir, None, caption_column)
  elif os.path.isdir(os.path.join(root, "train")):
    raise DataError(f"imagefolder {root!r} has a train/ subfolder but no "
                    f"{'/ or '.join(SPLIT_NAMES[split])}/ for the {split!r} split.")
  else:
    examples, uncaptioned = _list(root, split, caption_column)
  description = f"imagefolder {root} ({split})"
  if uncaptioned:
    _log.warning("%s: skipped %d image(s) without a caption.", description, uncaptioned)
  return FileSource(root, examples, description=description, uncaptioned=uncaptioned)
