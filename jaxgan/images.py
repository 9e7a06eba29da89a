"""Image arrays to pixels and files: conversion, grids, and atomic writes.

Everything here is plain numpy + Pillow so that training (sample grids),
sampling (``sample.py``) and notebooks share one implementation.

Every writer goes through :func:`_atomic_write`: the bytes land in a temporary
file in the destination directory, are flushed to disk, then ``os.replace``
swaps it in. A crash or an encoder error therefore leaves either the old file or
the new one, never a truncated mix, and a reader polling the path (TensorBoard,
a notebook, a web page) never sees a half-written image.
"""

from __future__ import annotations

import errno
import json
import math
import os
import uuid
from typing import Any, BinaryIO, Callable, Sequence

import numpy as np
from PIL import Image

# Extensions we promise to handle; Pillow's own table is larger but these are
# the formats that make sense for samples.
_IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_ANIMATION_FORMATS = {".gif": "GIF", ".webp": "WEBP"}
# Lossy encoders default to quality 75, visibly blocky on small samples.
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}


def to_uint8(images: Any) -> np.ndarray:
  """Converts float images in [-1, 1] to uint8 pixels in [0, 255].

  Values are mapped with ``(x + 1) * 127.5``, clipped to [0, 255] and rounded
  to the nearest integer (ties to even). NaN becomes 0, +inf 255, -inf 0, so a
  diverged generator still produces a viewable (black) image instead of an
  exception in the middle of a long run.

  Args:
    images: any array-like of floats (numpy, jax, lists), e.g. [..., H, W, 3].

  Returns:
    A numpy uint8 array of the same shape.

  Raises:
    TypeError: if ``images`` is already uint8 (converting twice is a bug).
  """
  if getattr(images, "dtype", None) == np.uint8:
    raise TypeError("to_uint8 expects float images in [-1, 1], got uint8 "
                    "(already converted?)")
  x = np.asarray(images, dtype=np.float32)
  y = (x + 1.0) * 127.5
  y = np.nan_to_num(y, nan=0.0, posinf=255.0, neginf=0.0)
  np.clip(y, 0.0, 255.0, out=y)
  np.rint(y, out=y)
  return y.astype(np.uint8)


def make_grid(images: np.ndarray,
              ncols: int | None = None,
              padding: int = 2,
              pad_value: int = 0) -> np.ndarray:
  """Tiles N images into one, row by row.

  Cell ``i`` sits at row ``i // ncols``, column ``i % ncols``; its top-left
  pixel is at ``(padding + row * (H + padding), padding + col * (W + padding))``,
  so there are ``padding`` pixels around the border and between cells. Cells of
  the last row that have no image are filled with ``pad_value``.

  Args:
    images: [N, H, W, C] array (uint8 in practice; the dtype is kept).
    ncols: images per row; default ``ceil(sqrt(N))``. Clamped to N so a
      short batch does not produce empty columns.
    padding: pixels between cells and around the border (>= 0).
    pad_value: value of the padding and of empty cells.

  Returns:
    [rows * (H + padding) + padding, ncols * (W + padding) + padding, C] array.
  """
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"make_grid expects [N, H, W, C], got shape {images.shape}")
  n, h, w, c = images.shape
  if n == 0:
    raise ValueError("make_grid needs at least one image")
  if padding < 0:
    raise ValueError(f"padding must be >= 0, got {padding}")
  if ncols is None:
    ncols = math.ceil(math.sqrt(n))
  if ncols < 1:
    raise ValueError(f"ncols must be >= 1, got {ncols}")
  ncols = min(ncols, n)
  nrows = math.ceil(n / ncols)
  grid = np.full((nrows * (h + padding) + padding,
                  ncols * (w + padding) + padding, c),
                 pad_value, dtype=images.dtype)
  for i in range(n):
    top = padding + (i // ncols) * (h + padding)
    left = padding + (i % ncols) * (w + padding)
    grid[top:top + h, left:left + w] = images[i]
  return grid


def to_pil(array: np.ndarray) -> Image.Image:
  """Wraps a uint8 [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] array as PIL.

  Args:
    array: uint8 pixels (numpy or jax).

  Returns:
    A PIL image in mode L, RGB or RGBA.
  """
  array = np.asarray(array)
  if array.dtype != np.uint8:
    raise TypeError(f"to_pil expects uint8 pixels, got {array.dtype}; "
                    "convert float images with to_uint8 first")
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
    raise ValueError(
        f"to_pil expects [H, W], [H, W, 1|3|4], got shape {array.shape}")
  # Pillow infers L / RGB / RGBA from the shape of a uint8 array.
  return Image.fromarray(np.ascontiguousarray(array))


def _format_for(path: str, table: dict[str, str], what: str) -> str:
  ext = os.path.splitext(path)[1].lower()
  if ext not in table:
    raise ValueError(f"cannot write {what} to {path!r}: unsupported extension "
                     f"{ext!r}; use one of {sorted(table)}")
  return table[ext]


def _fsync_directory(directory: str) -> None:
  # Makes the rename itself durable; not possible on every OS, and losing it
  # only weakens durability, never atomicity, so failures are ignored.
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def _atomic_write(path: str, write: Callable[[BinaryIO], None]) -> None:
  """Calls ``write(file)`` on a temp file beside ``path``, then renames it.

  Args:
    path: destination; its parent directories are created.
    write: writes the whole content to the given binary file object.

  Raises:
    OSError: (or a subclass such as PermissionError) naming ``path`` when the
      directory cannot be created or written.
  """
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  try:
    os.makedirs(directory, exist_ok=True)
    # Same directory as the target, so os.replace never crosses filesystems.
    # Not tempfile.mkstemp: it creates mode 0600, and the final file should
    # get the usual permissions from the umask like any other new file.
    while True:
      tmp = os.path.join(
          directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
      try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        break
      except FileExistsError:
        continue
  except OSError as e:
    # OSError(errno, ...) returns the matching subclass (PermissionError...).
    raise OSError(e.errno or errno.EIO,
                  f"cannot write {path!r}: directory {directory!r} cannot be "
                  f"created or written to ({e.strerror or e})", path) from e
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    # Also on KeyboardInterrupt: never leave the temp file behind.
    try:
      os.unlink(tmp)
    except OSError:
      pass
    raise
  _fsync_directory(directory)


def save_image(array: np.ndarray, path: str) -> None:
  """Writes a uint8 image atomically; the format follows the extension.

  Args:
    array: uint8 [H, W, 3] (also [H, W], [H, W, 1], [H, W, 4] where the
      format supports it).
    path: destination ending in .png, .jpg/.jpeg or .webp. Parent directories
      are created. An existing file is replaced only once the new one is
      completely written.

  Raises:
    ValueError: unsupported extension or array shape.
    TypeError: the array is not uint8.
    OSError: the directory cannot be created or written (names the path).
  """
  fmt = _format_for(path, _IMAGE_FORMATS, "an image")
  image = to_pil(array)
  _atomic_write(path,
                lambda f: image.save(f, format=fmt, **_SAVE_OPTIONS.get(fmt, {})))


def save_animation(frames: Sequence[np.ndarray],
                   path: str,
                   duration_ms: int = 100,
                   loop: int = 0) -> None:
  """Writes frames as an animated GIF or WebP, atomically.

  GIF stores a 256-colour palette per frame, so WebP keeps colours better.
  Note that the GIF encoder merges consecutive identical frames (adding up
  their durations), so the file can hold fewer frames than given.

  Args:
    frames: uint8 [H, W, 3] arrays, all of the same shape.
    path: destination ending in .gif or .webp; parent directories are created.
    duration_ms: display time of each frame in milliseconds.
    loop: number of times to play; 0 loops forever.

  Raises:
    ValueError: no frames, frames of different shapes, or bad extension.
    OSError: the directory cannot be created or written (names the path).
  """
  fmt = _format_for(path, _ANIMATION_FORMATS, "an animation")
  frames = list(frames)
  if not frames:
    raise ValueError(f"cannot write {path!r}: no frames")
  shapes = {np.shape(frame) for frame in frames}
  if len(shapes) != 1:
    raise ValueError(f"all frames must have the same shape, got {shapes}")
  pil_frames = [to_pil(frame) for frame in frames]
  options = {"quality": 95} if fmt == "WEBP" else {}

  def write(f: BinaryIO) -> None:
    pil_frames[0].save(f, format=fmt, save_all=True,
                       append_images=pil_frames[1:], duration=duration_ms,
                       loop=loop, **options)

  _atomic_write(path, write)


def _json_default(obj: Any) -> Any:
  # Sidecars often carry numpy scalars/arrays (seeds, truncation, latents).
  if isinstance(obj, np.generic):
    return obj.item()
  if isinstance(obj, np.ndarray):
    return obj.tolist()
  raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_json_atomic(obj: Any, path: str) -> None:
  """Writes ``obj`` as indented UTF-8 JSON, atomically.

  The object is serialised before anything touches the disk, so an
  unserialisable value leaves an existing file as it was.

  Args:
    obj: JSON-serialisable value; numpy scalars and arrays are converted.
    path: destination; parent directories are created.

  Raises:
    TypeError: ``obj`` holds a value JSON cannot represent.
    OSError: the directory cannot be created or written (names the path).
  """
  data = (json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default)
          + "\n").encode("utf-8")
  _atomic_write(path, lambda f: f.write(data))
