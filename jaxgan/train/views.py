"""Random views of real images, for the discriminator's self-supervised loss.

The loss (``loss.view_contrastive_weight``) asks D to recognise each real
image among the batch's from another view of it. What the views change, D's
features are pushed to ignore for that task; what they keep, the features must
carry. Here a view moves the whole image (wrapping around) and recolours it,
so neither the place nor the colours of its content tell the images apart,
and what is left is what the content looks like: for the ``shapes`` data, the
objects' shapes, sizes and number, which random captions hardly ever make D
read (README, "Results"). Nothing but the images is used, so it applies to
any data set alike.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp

# The six orders of the RGB channels: a permutation maps every colour to
# another one (red to green or blue, ...) and keeps the image's contrast.
_CHANNEL_ORDERS = tuple(itertools.permutations(range(3)))


def random_views(key: jax.Array, images: jax.Array, *, max_shift: float = 0.25,
                 max_gain: float = 0.4, max_offset: float = 0.3) -> jax.Array:
  """One random view of every image.

  Per image, independently: a circular shift of up to ``max_shift`` of the
  side in each direction, a random order of the colour channels, then a
  per-channel gain in ``[1 - max_gain, 1 + max_gain]`` and offset in
  ``[-max_offset, max_offset]``, clipped to ``[-1, 1]``.

  Args:
    key: the draw's key.
    images: [B, H, W, 3] images in [-1, 1].
    max_shift: the largest shift, as a fraction of the side.
    max_gain: half-width of the channel gains' range around 1.
    max_offset: the largest channel offset.

  Returns:
    [B, H, W, 3] views, dtype of ``images``.
  """
  b, h, w, c = images.shape
  if c != 3:
    raise ValueError(f"random_views recolours RGB images; got {c} channels")
  shift_key, order_key, gain_key, offset_key = jax.random.split(key, 4)
  limits = jnp.array([int(max_shift * h), int(max_shift * w)])
  shifts = jax.random.randint(shift_key, (b, 2), -limits, limits + 1)
  moved = jax.vmap(lambda x, s: jnp.roll(x, (s[0], s[1]), axis=(0, 1)))(images, shifts)
  orders = jnp.asarray(_CHANNEL_ORDERS)[
      jax.random.randint(order_key, (b,), 0, len(_CHANNEL_ORDERS))]
  recoloured = jnp.take_along_axis(moved, orders[:, None, None, :], axis=-1)
  gains = 1.0 + jax.random.uniform(gain_key, (b, 1, 1, 3), minval=-max_gain, maxval=max_gain)
  offsets = jax.random.uniform(offset_key, (b, 1, 1, 3), minval=-max_offset,
                               maxval=max_offset)
  views = jnp.clip(recoloured * gains + offsets, -1.0, 1.0)
  return views.astype(images.dtype)
