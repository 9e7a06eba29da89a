"""Converts any captioned source into ArrayRecord shards (``scripts/prepare_data.py``).

Each image is decoded once, cropped to its box (CUB's bird), resized so its
short side is the load size the pipeline crops from (``ceil(size *
CROP_SCALE)``, the aspect ratio kept, so the random crop still has room),
re-encoded, and written with its captions and name; see
:mod:`jaxgan.data.arrayrecord` for the layout. Decoding and encoding run in
worker processes; the main process reads the source and writes the shards in
the source's order. Unreadable images are skipped and listed in ``info.json``.
"""

from __future__ import annotations

import collections
import glob
import io
import itertools
import json
import math
import multiprocessing
import os
import sys
import time
from typing import Any, Iterator, Mapping

import numpy as np
from PIL import Image

from jaxgan.data import arrayrecord, decode
from jaxgan.data.files import DataError

IMAGE_FORMATS = ("jpeg", "png")
# About 200 MB of 304px JPEGs per shard: few files, and still several per
# host on a multi-host run.
DEFAULT_SHARD_SIZE = 5000


def load_size(size: int) -> int:
  """The short side images are stored at, for training at ``size``."""
  return math.ceil(size * decode.CROP_SCALE)


def encode_image(image: np.ndarray, image_format: str = "jpeg", quality: int = 95) -> bytes:
  """uint8 RGB ``[H, W, 3]`` as JPEG (no chroma subsampling) or PNG bytes."""
  buffer = io.BytesIO()
  if image_format == "jpeg":
    # 4:4:4: halving the colour resolution shows at 64 px, where colours matter.
    Image.fromarray(image).save(buffer, "JPEG", quality=quality, subsampling=0)
  elif image_format == "png":
    Image.fromarray(image).save(buffer, "PNG", compress_level=6)
  else:
    raise ValueError(f"unknown image format {image_format!r}; valid: {IMAGE_FORMATS}")
  return buffer.getvalue()


def _convert(job: tuple[dict[str, Any], int, str, int]
             ) -> tuple[bytes | None, str, list[str], str]:
  """One example: ``(record, name, captions, "")``, or ``(None, name, [], why)``.

  Runs in a worker process: the item's bytes in, the record's bytes out.
  """
  item, side, image_format, quality = job
  name, captions = item["name"], list(item["captions"])
  if not captions:
    return None, name, [], "no caption"
  if "image" in item:  # rendered (shapes): already decoded
    image = np.asarray(item["image"], np.uint8)
  else:
    try:
      image = decode.load_rgb(item["encoded"])
    except decode.BadImageError as error:
      return None, name, [], str(error)
  if item.get("box") is not None:
    image = decode.crop_to_box(image, item["box"])
  image = decode.resize_short_side(image, side)
  record = arrayrecord.pack_record(name, captions, encode_image(image, image_format, quality))
  return record, name, captions, ""


def _jobs(source, side: int, image_format: str, quality: int) -> Iterator[tuple]:
  for index in range(len(source)):
    item = dict(source[index])
    item.setdefault("name", str(index))
    yield item, side, image_format, quality


def _ordered_results(jobs: Iterator[tuple], pool, block: int) -> Iterator[tuple]:
  """``_convert`` over ``jobs``, in order, with at most two blocks of items in memory.

  (``Pool.imap`` would read the whole source into its queue at once.)
  """
  if pool is None:
    yield from map(_convert, jobs)
    return
  pending = collections.deque()
  while True:
    chunk = list(itertools.islice(jobs, block))
    if chunk:
      pending.append(pool.map_async(_convert, chunk, chunksize=8))
    if pending and (len(pending) == 2 or not chunk):
      yield from pending.popleft().get()
    if not chunk and not pending:
      return


def _source_root(source) -> str | None:
  root = getattr(source, "root", None)
  return os.path.realpath(root) if root else None


def check_output(out: str, sources: Mapping[str, Any], overwrite: bool) -> str:
  """``out`` as an absolute path, once it is safe to write there.

  Raises:
    DataError: ``out`` is inside a source's data folder (never written), or
      already holds files and ``overwrite`` is off.
  """
  out = os.path.realpath(os.path.expanduser(out))
  for source in sources.values():
    root = _source_root(source)
    if root and os.path.commonpath([root, out]) == root:
      raise DataError(f"--out {out!r} is inside the source data folder {root!r}, "
                      f"which is never written; choose another directory.")
  if os.path.exists(out) and not os.path.isdir(out):
    raise DataError(f"--out {out!r} exists and is not a directory.")
  if os.path.isdir(out) and os.listdir(out) and not overwrite:
    raise DataError(f"--out {out!r} is not empty; pass --overwrite to replace a "
                    f"previous conversion there.")
  return out


def _remove_previous(out: str, split: str) -> None:
  for pattern in (f"{split}-*-of-*.array_record", f"{split}-*.array_record.partial",
                  arrayrecord.captions_name(split)):
    for path in glob.glob(os.path.join(glob.escape(out), pattern)):
      os.remove(path)


class _ShardWriter:
  """Writes records into numbered shards; renamed ``-of-N`` once N is known."""

  def __init__(self, out: str, split: str, per_shard: int):
    self._out, self._split, self._per_shard = out, split, per_shard
    self._writer = None
    self._in_shard = 0
    self.partial: list[str] = []

  def write(self, record: bytes) -> None:
    from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
    if self._writer is None or self._in_shard == self._per_shard:
      self._close()
      path = os.path.join(self._out, f"{self._split}-{len(self.partial):05d}"
                                     f".array_record.partial")
      # group_size:1: every record its own chunk, so a random read decodes one.
      self._writer = array_record_module.ArrayRecordWriter(path, "group_size:1")
      self.partial.append(path)
      self._in_shard = 0
    self._writer.write(record)
    self._in_shard += 1

  def _close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None

  def finish(self) -> list[str]:
    """Closes the last shard; returns the final shard names."""
    self._close()
    names = []
    for index, path in enumerate(self.partial):
      name = arrayrecord.shard_name(self._split, index, len(self.partial))
      os.replace(path, os.path.join(self._out, name))
      names.append(name)
    return names


def _convert_split(source, split: str, out: str, *, size: int, image_format: str,
                   quality: int, pool, block: int, shard_size: int,
                   progress: bool) -> dict[str, Any]:
  count = len(source)
  num_shards = max(1, math.ceil(count / shard_size))
  writer = _ShardWriter(out, split, math.ceil(count / num_shards))
  jobs = _jobs(source, load_size(size), image_format, quality)
  results = _ordered_results(jobs, pool, block)
  names: list[str] = []
  captions: list[list[str]] = []
  skipped: list[dict[str, str]] = []
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  bar = tqdm(total=count, desc=f"{split}", unit="img", file=sys.stderr,
             disable=not progress, dynamic_ncols=True)
  with bar:
    for record, name, texts, why in results:
      bar.update(1)
      if record is None:
        skipped.append({"name": name, "error": why})
        continue
      writer.write(record)
      names.append(name)
      captions.append(texts)
  if not names:
    raise DataError(f"{split}: none of the {count} images could be read.")
  shards = writer.finish()
  with open(os.path.join(out, arrayrecord.captions_name(split)), "w", encoding="utf-8") as f:
    json.dump({"names": names, "captions": captions}, f, ensure_ascii=False)
  return {"count": len(names), "source_examples": count, "shards": shards,
          "captions_file": arrayrecord.captions_name(split), "skipped": skipped,
          "uncaptioned_at_listing": int(getattr(source, "uncaptioned", 0))}


def prepare(sources: Mapping[str, Any], out: str, *, size: int, description: str,
            image_format: str = "jpeg", quality: int = 95, workers: int = 0,
            shard_size: int = DEFAULT_SHARD_SIZE, overwrite: bool = False,
            progress: bool = True) -> dict[str, Any]:
  """Writes ``sources`` (split name -> captioned source) as ArrayRecord shards in ``out``.

  Args:
    sources: the splits to convert, each a :class:`jaxgan.data.pipeline.CaptionedSource`.
    out: the output directory (created; refused if not empty unless ``overwrite``).
    size: the training image size the data is prepared for.
    description: what the data is, kept in ``info.json``.
    image_format: "jpeg" or "png".
    quality: JPEG quality.
    workers: decoding processes (0: this process).
    shard_size: at most this many records per shard.
    overwrite: replace a previous conversion in ``out``.
    progress: show a progress bar on stderr.

  Returns:
    The ``info.json`` contents.

  Raises:
    DataError: ``out`` is not writable as asked, or a split has no readable image.
  """
  if image_format not in IMAGE_FORMATS:
    raise DataError(f"unknown image format {image_format!r}; valid: {IMAGE_FORMATS}.")
  if size < 1:
    raise DataError(f"--size must be positive, got {size}.")
  out = check_output(out, sources, overwrite)
  os.makedirs(out, exist_ok=True)
  info_path = os.path.join(out, arrayrecord.INFO_FILE)
  if os.path.exists(info_path):
    # Gone first: an interrupted overwrite must not look like a finished conversion.
    os.remove(info_path)
  info: dict[str, Any] = {
      "format": arrayrecord.FORMAT, "version": arrayrecord.FORMAT_VERSION,
      "image_size": size, "load_size": load_size(size), "image_format": image_format,
      "quality": quality if image_format == "jpeg" else None, "source": description,
      "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "splits": {}}
  # spawn: the parent may hold JAX or grain threads, which fork would copy half-way.
  pool = (multiprocessing.get_context("spawn").Pool(workers) if workers > 0 else None)
  try:
    for split, source in sources.items():
      _remove_previous(out, split)
      info["splits"][split] = _convert_split(
          source, split, out, size=size, image_format=image_format, quality=quality,
          pool=pool, block=64 * max(1, workers), shard_size=shard_size, progress=progress)
  finally:
    if pool is not None:
      pool.terminate()
  with open(info_path + ".partial", "w", encoding="utf-8") as f:
    json.dump(info, f, indent=1, ensure_ascii=False)
  os.replace(info_path + ".partial", info_path)
  return info
