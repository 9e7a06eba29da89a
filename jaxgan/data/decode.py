"""Image decoding and the geometric part of augmentation, on numpy arrays.

Everything here runs inside grain workers (processes when ``data.workers`` > 0),
one example at a time: decode any format PIL reads into uint8 RGB, crop to a
box (CUB's bird), resize, take a square crop, flip. Random choices are made by
the caller from the example's grain RNG and passed in, so these functions are
pure and a resumed run decodes exactly the same pixels.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

# DF-GAN loads images at 76/64 of the training size and takes a random crop of
# the training size: small shifts of the framing, a cheap augmentation.
CROP_SCALE = 76 / 64


class BadImageError(ValueError):
  """The bytes are not a readable image (corrupt, truncated, empty, unknown format)."""


def _to_rgb(image: Image.Image) -> Image.Image:
  """Any PIL mode to RGB: transparency over white, 16-bit and float scaled down."""
  if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
    # PIL's own conversion of 16-bit/32-bit greys clips at 255 instead of scaling.
    values = np.asarray(image, dtype=np.float64)
    peak = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
    if image.mode == "F" and values.max() <= 1.0:
      peak = 1.0
    grey = np.clip(np.round(values * (255.0 / peak)), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")
  if image.mode == "P" and "transparency" in image.info:
    image = image.convert("RGBA")
  if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
    # What is behind a transparent pixel is arbitrary; a white page is what a
    # viewer shows.
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")
  return image.convert("RGB")


def load_rgb(data: bytes) -> np.ndarray:
  """Decodes an encoded image into uint8 RGB ``[H, W, 3]``.

  Any mode PIL reads (L, P, RGBA, CMYK, 16-bit, ...) becomes RGB, and the EXIF
  orientation is applied so a phone photo stands the right way up.

  Args:
    data: the file's bytes.

  Returns:
    uint8 array ``[H, W, 3]``.

  Raises:
    BadImageError: the bytes are empty, truncated, corrupt or not an image.
  """
  if not data:
    raise BadImageError("empty file")
  try:
    with warnings.catch_warnings():
      # A decompression-bomb warning on huge images is PIL's, not the user's fault.
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
      with Image.open(io.BytesIO(data)) as image:
        image = ImageOps.exif_transpose(image)
        image.load()  # decodes now: a truncated file fails here, not later
        rgb = _to_rgb(image)
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
          EOFError) as error:  # PIL raises all of these for bad files
    raise BadImageError(f"{type(error).__name__}: {error}") from None
  array = np.asarray(rgb, dtype=np.uint8)
  if array.ndim != 3 or array.shape[0] < 1 or array.shape[1] < 1:
    raise BadImageError(f"decoded to an unusable shape {array.shape}")
  return array


def crop_to_box(image: np.ndarray, box: np.ndarray) -> np.ndarray:
  """The part of ``image`` inside ``box`` = (left, top, right, bottom), clipped to it."""
  height, width = image.shape[:2]
  left, top, right, bottom = (int(round(v)) for v in box)
  left, top = max(0, left), max(0, top)
  right, bottom = min(width, right), min(height, bottom)
  if right <= left or bottom <= top:
    return image  # a box outside the image: keep the whole picture
  return image[top:bottom, left:right]


def resize_short_side(image: np.ndarray, size: int) -> np.ndarray:
  """Resizes so the shorter side is ``size`` pixels, keeping the aspect ratio."""
  height, width = image.shape[:2]
  scale = size / min(height, width)
  new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
  if (new_h, new_w) == (height, width):
    return image
  # Bicubic, as torchvision's Resize does for DF-GAN; with PIL's antialiasing
  # filter support so downsizing a large photo does not alias.
  resized = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BICUBIC)
  return np.asarray(resized)


def crop_square(image: np.ndarray, size: int, u_top: float, u_left: float) -> np.ndarray:
  """A ``size`` x ``size`` crop whose offset is the fraction ``u`` in [0, 1] of the slack."""
  height, width = image.shape[:2]
  top = min(int(u_top * (height - size + 1)), height - size)
  left = min(int(u_left * (width - size + 1)), width - size)
  return image[top:top + size, left:left + size]


def prepare_image(image: np.ndarray, size: int, *, box: np.ndarray | None = None,
                  random_crop: bool = False, u_top: float = 0.5, u_left: float = 0.5,
                  flip: bool = False) -> np.ndarray:
  """Box crop, resize, square crop and flip: a decoded image to training input.

  Args:
    image: uint8 ``[H, W, 3]``.
    size: the output side.
    box: optional (left, top, right, bottom) crop applied first (CUB's bird).
    random_crop: resize the short side to ``CROP_SCALE * size`` and crop at
      (``u_top``, ``u_left``); otherwise resize it to ``size`` and crop the centre.
    u_top, u_left: the crop's offsets as fractions of the slack, in [0, 1].
    flip: mirror left-right.

  Returns:
    uint8 ``[size, size, 3]``, C-contiguous.
  """
  if box is not None:
    image = crop_to_box(image, box)
  if random_crop:
    image = crop_square(resize_short_side(image, int(size * CROP_SCALE)), size, u_top, u_left)
  else:
    image = crop_square(resize_short_side(image, size), size, 0.5, 0.5)
  if flip:
    image = image[:, ::-1]
  return np.ascontiguousarray(image)
