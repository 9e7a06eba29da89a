"""Post-processing applied to generator output before it is saved.

A chain maps images in [-1, 1] (what the generator's tanh produces) to [0, 1],
runs a list of steps, then converts to uint8. Each step is a pure numpy
function ``f(x, **params) -> y`` on float32 RGB images in [0, 1], shaped
[N, H, W, 3] or [H, W, 3]; it never modifies its input.

Spec format (``build_postprocess``): a list whose items are either
  * a string ``"name"`` or ``"name:args"``, where ``args`` are separated by
    ``;`` and each is ``key=value`` or a bare value. Bare values fill the
    step's parameters in order, before any ``key=value``. A value is a number
    (``2``, ``0.5``), a size ``HxW`` (``64x48``), or comma-separated numbers
    (``1,0,0,0,1,0,0,0,1``). Examples::

      "auto_levels"                      "auto_levels:0.5;99.5"
      "denoise:sigma_color=0.08"         "resize:2"   "resize:size=64x64"
      "linear:W=1.1,0,0,0,1,0,0,0,0.9;b=0,0,0.02"

  * or a dict ``{"name": "resize", "scale": 2}``: the other keys are the
    parameters; string values are parsed as above.
A whole spec may also be one string of such items separated by whitespace
(``"auto_levels denoise resize:2"``), handy on the command line. The empty
spec ``[]`` (the default) only denormalises.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from jaxgan import images as images_lib


def _as_batch(x: Any) -> tuple[np.ndarray, bool]:
  """Returns float32 [N, H, W, C] and whether a batch axis was added."""
  x = np.asarray(x, dtype=np.float32)
  if x.ndim == 3:
    return x[None], True
  if x.ndim == 4:
    return x, False
  raise ValueError(f"expected [N, H, W, C] or [H, W, C] images, got shape "
                   f"{x.shape}")


def _unbatch(y: np.ndarray, squeeze: bool) -> np.ndarray:
  return y[0] if squeeze else y


def denormalize(images: Any) -> np.ndarray:
  """Float images in [-1, 1] to uint8 in [0, 255] (see images.to_uint8)."""
  return images_lib.to_uint8(images)


def auto_levels(x: Any, low_pct: float = 1.0,
                high_pct: float = 99.0) -> np.ndarray:
  """Stretches each channel of each image so its percentiles map to 0 and 1.

  Percentiles rather than min/max so a few outlier pixels (common in GAN
  output) do not cancel the stretch. A flat channel (high == low) has nothing
  to stretch and is left as it is.

  Args:
    x: float images in [0, 1], [N, H, W, C] or [H, W, C].
    low_pct: percentile mapped to 0.
    high_pct: percentile mapped to 1.

  Returns:
    float32 images of the same shape, clipped to [0, 1].
  """
  if not 0.0 <= low_pct < high_pct <= 100.0:
    raise ValueError(f"need 0 <= low_pct < high_pct <= 100, got "
                     f"{low_pct}, {high_pct}")
  x, squeeze = _as_batch(x)
  lo, hi = np.percentile(x, [low_pct, high_pct], axis=(1, 2), keepdims=True)
  span = hi - lo
  flat = span <= 1e-6
  y = np.where(flat, x, (x - lo) / np.where(flat, 1.0, span))
  return _unbatch(np.clip(y, 0.0, 1.0).astype(np.float32), squeeze)


def grey_world(x: Any) -> np.ndarray:
  """Grey-world white balance: equal channel means, per image.

  Each channel is scaled so that its mean becomes the mean over all channels,
  which removes a global colour cast. A channel whose mean is 0 cannot be
  scaled and is left as it is.

  Args:
    x: float images in [0, 1], [N, H, W, C] or [H, W, C].

  Returns:
    float32 images of the same shape, clipped to [0, 1] (so channel means are
    exactly equal only where nothing was clipped).
  """
  x, squeeze = _as_batch(x)
  channel_mean = x.mean(axis=(1, 2), keepdims=True, dtype=np.float64)
  overall = channel_mean.mean(axis=-1, keepdims=True)
  dark = channel_mean <= 1e-8
  gain = np.where(dark, 1.0, overall / np.where(dark, 1.0, channel_mean))
  y = np.clip(x * gain.astype(np.float32), 0.0, 1.0)
  return _unbatch(y.astype(np.float32), squeeze)


def denoise(x: Any, radius: int = 2, sigma_space: float = 1.5,
            sigma_color: float = 0.1) -> np.ndarray:
  """Edge-preserving smoothing with a bilateral filter.

  Each output pixel is a weighted mean of its (2 radius + 1)^2 neighbours; the
  weight is a Gaussian of the distance in pixels times a Gaussian of the colour
  difference. Neighbours across an edge differ in colour by much more than
  ``sigma_color`` and get ~0 weight, so edges stay sharp while noise on flat
  regions (differences of the order of sigma_color) is averaged away. A median
  filter would also keep edges but rounds corners and removes thin lines.

  The colour difference is the mean squared difference over channels, so one
  weight is shared by R, G and B: a colour edge is kept in all channels and no
  colour fringes appear. Borders are reflected.

  Args:
    x: float images in [0, 1], [N, H, W, C] or [H, W, C].
    radius: half-width of the window in pixels (cost grows as radius^2).
    sigma_space: spatial standard deviation in pixels.
    sigma_color: colour standard deviation, in [0, 1] intensity units.

  Returns:
    float32 images of the same shape, in [0, 1].
  """
  radius = int(radius)
  if radius < 0 or sigma_space <= 0 or sigma_color <= 0:
    raise ValueError(f"need radius >= 0 and positive sigmas, got radius="
                     f"{radius}, sigma_space={sigma_space}, sigma_color="
                     f"{sigma_color}")
  x, squeeze = _as_batch(x)
  _, h, w, _ = x.shape
  pad_mode = "reflect" if min(h, w) > radius else "edge"
  padded = np.pad(x, ((0, 0), (radius, radius), (radius, radius), (0, 0)),
                  mode=pad_mode)
  num = np.zeros_like(x)
  den = np.zeros(x.shape[:-1] + (1,), np.float32)
  # One vectorised pass per offset: (2r+1)^2 passes over the batch, memory
  # stays at a few copies of the input.
  for dy in range(-radius, radius + 1):
    for dx in range(-radius, radius + 1):
      shifted = padded[:, radius + dy:radius + dy + h,
                       radius + dx:radius + dx + w]
      d2 = np.mean((shifted - x) ** 2, axis=-1, keepdims=True)
      wgt = np.exp(-(dy * dy + dx * dx) / (2.0 * sigma_space ** 2)
                   - d2 / (2.0 * sigma_color ** 2)).astype(np.float32)
      num += wgt * shifted
      den += wgt
  # den >= 1: the centre pixel always has weight exp(0) = 1.
  y = np.clip(num / den, 0.0, 1.0)
  return _unbatch(y.astype(np.float32), squeeze)


def resize(x: Any, scale: float | None = None,
           size: Sequence[int] | None = None) -> np.ndarray:
  """Lanczos resampling (up or down) with Pillow, in float.

  Each channel goes through Pillow as a 32-bit float image, so no precision is
  lost to uint8 in between. Lanczos overshoots at edges; the result is clipped
  back to [0, 1].

  Args:
    x: float images in [0, 1], [N, H, W, C] or [H, W, C].
    scale: factor on both sides (e.g. 2 or 0.5); the output size is rounded
      and at least 1 pixel.
    size: (height, width) of the output. Give exactly one of scale and size.

  Returns:
    float32 images [N, H', W', C] (or [H', W', C]).
  """
  if (scale is None) == (size is None):
    raise ValueError("resize needs exactly one of scale and size")
  x, squeeze = _as_batch(x)
  n, h, w, c = x.shape
  if scale is not None:
    if scale <= 0:
      raise ValueError(f"scale must be positive, got {scale}")
    out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
  else:
    if len(size) != 2 or min(size) < 1:
      raise ValueError(f"size must be (height, width) >= 1, got {size}")
    out_h, out_w = int(size[0]), int(size[1])
  y = np.empty((n, out_h, out_w, c), np.float32)
  for i in range(n):
    for k in range(c):
      channel = Image.fromarray(np.ascontiguousarray(x[i, :, :, k]))  # mode F
      y[i, :, :, k] = np.asarray(
          channel.resize((out_w, out_h), Image.Resampling.LANCZOS))
  return _unbatch(np.clip(y, 0.0, 1.0), squeeze)


def linear_colour(x: Any, W: Any, b: Any = None) -> np.ndarray:  # noqa: N803
  """Per-pixel affine colour transform ``y = W x + b``, clipped to [0, 1].

  Args:
    x: float RGB images in [0, 1], [N, H, W, 3] or [H, W, 3].
    W: [3, 3] matrix (or its 9 entries, row-major); row i gives output
      channel i from the input (r, g, b).
    b: [3] offset; default zeros.

  Returns:
    float32 images of the same shape.
  """
  x, squeeze = _as_batch(x)
  if x.shape[-1] != 3:
    raise ValueError(f"linear_colour needs RGB images, got shape {x.shape}")
  w_mat = np.asarray(W, dtype=np.float32)
  if w_mat.size != 9 or w_mat.ndim not in (1, 2):
    raise ValueError(f"W must be [3, 3] or 9 numbers, got shape {w_mat.shape}")
  w_mat = w_mat.reshape(3, 3)
  offset = np.zeros(3, np.float32) if b is None else np.asarray(b, np.float32)
  if offset.shape != (3,):
    raise ValueError(f"b must have 3 entries, got shape {offset.shape}")
  # Pixels are row vectors here, so W x becomes x @ W^T.
  y = np.clip(x @ w_mat.T + offset, 0.0, 1.0)
  return _unbatch(y.astype(np.float32), squeeze)


STEPS: dict[str, Callable[..., np.ndarray]] = {
    "auto_levels": auto_levels,
    "grey_world": grey_world,
    "denoise": denoise,
    "resize": resize,
    "linear": linear_colour,
}

_SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def _parse_value(text: str) -> Any:
  """'2' -> 2, '0.5' -> 0.5, '64x48' -> (64, 48), '1,0,2' -> [1.0, 0.0, 2.0]."""
  text = text.strip()
  match = _SIZE_RE.match(text)
  if match:
    return (int(match.group(1)), int(match.group(2)))
  try:
    if "," in text:
      return [float(v) for v in text.split(",")]
    try:
      return int(text)
    except ValueError:
      return float(text)
  except ValueError:
    raise ValueError(f"cannot parse value {text!r}: expected a number, HxW or "
                     "comma-separated numbers") from None


def _parse_string_item(item: str) -> tuple[str, list[Any], dict[str, Any]]:
  name, _, arg_text = item.partition(":")
  args, kwargs = [], {}
  for part in filter(None, (p.strip() for p in arg_text.split(";"))):
    key, eq, value = part.partition("=")
    if eq:
      kwargs[key.strip()] = _parse_value(value)
    elif kwargs:
      raise ValueError(f"in {item!r}: bare value {part!r} after key=value")
    else:
      args.append(_parse_value(part))
  return name.strip(), args, kwargs


def _parse_item(item: Any) -> tuple[str, list[Any], dict[str, Any]]:
  if isinstance(item, str):
    return _parse_string_item(item)
  if isinstance(item, Mapping):
    if "name" not in item:
      raise ValueError(f"step {dict(item)!r} has no 'name'")
    kwargs = {k: _parse_value(v) if isinstance(v, str) else v
              for k, v in item.items() if k != "name"}
    return str(item["name"]), [], kwargs
  raise ValueError(f"a step is a string or a dict with 'name', got {item!r}")


@dataclasses.dataclass(frozen=True)
class Step:
  """One configured step: ``STEPS[name](x, **params)``."""

  name: str
  params: Mapping[str, Any]

  def __call__(self, x: np.ndarray) -> np.ndarray:
    return STEPS[self.name](x, **self.params)


@dataclasses.dataclass(frozen=True)
class Chain:
  """Generator output in [-1, 1] to uint8 pixels through a list of steps.

  Attributes:
    steps: the configured steps, applied in order.
  """

  steps: tuple[Step, ...] = ()

  def process(self, x: Any) -> np.ndarray:
    """Runs the steps on float images in [0, 1]; returns float32 in [0, 1]."""
    x = np.asarray(x, dtype=np.float32)
    for step in self.steps:
      x = step(x)
    return x

  def __call__(self, images: Any) -> np.ndarray:
    """Post-processes generator output.

    Args:
      images: float [N, H, W, 3] (or [H, W, 3]) in [-1, 1], numpy or jax.

    Returns:
      uint8 [N, H', W', 3] (or [H', W', 3]).
    """
    if not self.steps:
      # Straight through, so the default chain is bit-identical to
      # denormalize (a round trip via [0, 1] could flip a rounding tie).
      return denormalize(images)
    x = np.asarray(images, dtype=np.float32)
    # NaN would poison percentiles and filters; it ends up black as in to_uint8.
    x = np.clip(np.nan_to_num((x + 1.0) * 0.5, nan=0.0), 0.0, 1.0)
    return denormalize(self.process(x) * 2.0 - 1.0)

  def to_spec(self) -> list[dict[str, Any]]:
    """The chain as a JSON-friendly spec (for run and sample sidecars)."""
    def plain(v):
      return v.tolist() if isinstance(v, np.ndarray) else (
          list(v) if isinstance(v, tuple) else v)
    return [{"name": s.name, **{k: plain(v) for k, v in s.params.items()}}
            for s in self.steps]


def build_postprocess(spec: Any = None) -> Chain:
  """Builds a post-processing chain from a spec (format: module docstring).

  Parameters are checked against each step's signature here, so a typo fails
  when the run starts rather than after generating.

  Args:
    spec: list of step strings / dicts, one whitespace-separated string, or
      None / [] for denormalisation only.

  Returns:
    A :class:`Chain`: ``chain(images in [-1, 1]) -> uint8``.

  Raises:
    ValueError: unknown step name (the message lists the valid ones), unknown
      or missing parameters, or an unparsable value.
  """
  if spec is None:
    spec = []
  elif isinstance(spec, str):
    spec = spec.split()
  elif isinstance(spec, Mapping):
    spec = [spec]
  steps = []
  for item in spec:
    name, args, kwargs = _parse_item(item)
    if name not in STEPS:
      raise ValueError(f"unknown post-processing step {name!r}; valid steps: "
                       f"{', '.join(sorted(STEPS))}")
    fn = STEPS[name]
    signature = inspect.signature(fn)
    try:
      bound = signature.bind(None, *args, **kwargs)  # None stands for x.
    except TypeError as e:
      params = [p for p in signature.parameters if p != "x"]
      raise ValueError(f"bad parameters for step {name!r} ({e}); its "
                       f"parameters are {params}") from None
    params = dict(bound.arguments)
    params.pop("x")
    steps.append(Step(name, params))
  return Chain(tuple(steps))
