"""The small MLP GAN of the original description, kept as a baseline.

The generator is a stack of Dense -> BatchNorm -> ReLU layers on
``concat(z, sentence)``; the discriminator is linear in the flattened image
and the sentence. Both expose the same interface as the DF-GAN modules
(``G(z, sentence, train)``, ``D.features`` / ``D.logits`` / ``D(image,
sentence)``), so training and sampling code need not know which one it runs.
Unlike DF-GAN, the generator carries a ``batch_stats`` collection.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


def _check_image_size(image_size: int) -> None:
  if not isinstance(image_size, int) or image_size <= 0:
    raise ValueError(f"image_size must be a positive int, got {image_size!r}")


class MLPGenerator(nn.Module):
  """``(z, sentence) -> image``: Dense/BatchNorm/ReLU stack, then tanh.

  Attributes:
    image_size: output side S.
    hidden: widths of the hidden layers.
    momentum: BatchNorm running-average momentum (0.9 ~ PyTorch's 0.1).
    dtype: compute dtype.
    param_dtype: parameter dtype.

  Parameters (top level): ``dense_i`` and ``bn_i`` per hidden layer, ``out``;
  ``batch_stats`` holds ``bn_i``.
  """

  image_size: int = 64
  hidden: Sequence[int] = (256, 512, 1024)
  momentum: float = 0.9
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def __post_init__(self):
    _check_image_size(self.image_size)
    super().__post_init__()

  @nn.compact
  def __call__(self, z: jax.Array, sentence: jax.Array,
               train: bool = False) -> jax.Array:
    """Generates images.

    Args:
      z: [B, Z] noise.
      sentence: [B, D] sentence embedding.
      train: use batch statistics and update the running averages (call
        ``apply`` with ``mutable=["batch_stats"]``); otherwise use the running
        averages.

    Returns:
      [B, S, S, 3] float32 images in [-1, 1].
    """
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = jnp.concatenate(
        [z.astype(self.dtype), sentence.astype(self.dtype)], axis=-1)
    for i, width in enumerate(self.hidden):
      # The bias would be cancelled by the BatchNorm mean.
      x = nn.Dense(width, use_bias=False, name=f"dense_{i}", **kw)(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                       name=f"bn_{i}", **kw)(x)
      x = nn.relu(x)
    s = self.image_size
    x = nn.Dense(s * s * 3, name="out", **kw)(x)
    # tanh in float32: bf16 would quantise the image before it is returned.
    x = jnp.tanh(x.astype(jnp.float32))
    return x.reshape(z.shape[0], s, s, 3)


class MLPDiscriminator(nn.Module):
  """Linear discriminator: one Dense on ``concat(flatten(image), sentence)``.

  Attributes:
    image_size: input side S (checked against the images).
    dtype: compute dtype.
    param_dtype: parameter dtype.

  Parameters (top level): ``out``.
  """

  image_size: int = 64
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def __post_init__(self):
    _check_image_size(self.image_size)
    super().__post_init__()

  def setup(self):
    self.out = nn.Dense(1, dtype=self.dtype, param_dtype=self.param_dtype)

  def features(self, image: jax.Array) -> jax.Array:
    """Flattens [B, S, S, 3] images to [B, S*S*3] in the compute dtype."""
    s = self.image_size
    if image.shape[1:] != (s, s, 3):
      raise ValueError(
          f"expected images of shape [B, {s}, {s}, 3], got {image.shape}")
    return image.reshape(image.shape[0], -1).astype(self.dtype)

  def logits(self, features: jax.Array, sentence: jax.Array) -> jax.Array:
    """[B] float32 logits of flattened images against sentences."""
    x = jnp.concatenate(
        [features.astype(self.dtype), sentence.astype(self.dtype)], axis=-1)
    return self.out(x).reshape(features.shape[0]).astype(jnp.float32)

  def __call__(self, image: jax.Array, sentence: jax.Array) -> jax.Array:
    """``logits(features(image), sentence)``: [B] float32 logits."""
    return self.logits(self.features(image), sentence)
