"""The random views of D's self-supervised loss (its head and config checks are
in test_contrastive.py, its place in the step in test_train_step.py)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.train.views import random_views


def _images(b=6, size=8, seed=0):
  return jax.random.uniform(jax.random.key(seed), (b, size, size, 3), minval=-1.0, maxval=1.0)


def test_views_are_shifted_and_recoloured_copies_within_the_limits():
  images = _images()
  views = random_views(jax.random.key(1), images, max_shift=0.25, max_gain=0.0,
                       max_offset=0.0)
  assert views.shape == images.shape and views.dtype == images.dtype
  # Without gains and offsets a view is exactly a circular shift of at most
  # 2 pixels (a quarter of 8) with the channels in some order.
  for image, view in zip(np.asarray(images), np.asarray(views)):
    matches = [(dy, dx, order)
               for dy, dx in itertools.product(range(-2, 3), repeat=2)
               for order in itertools.permutations(range(3))
               if np.array_equal(np.roll(image, (dy, dx), axis=(0, 1))[..., order], view)]
    assert len(matches) == 1, matches
  # Drawn per image: the six views are not all moved or recoloured alike.
  found = [next((dy, dx, order) for dy, dx in itertools.product(range(-2, 3), repeat=2)
                for order in itertools.permutations(range(3))
                if np.array_equal(np.roll(np.asarray(i), (dy, dx), axis=(0, 1))[..., order],
                                  np.asarray(v)))
           for i, v in zip(images, views)]
  assert len(set(found)) > 1


def test_views_gains_offsets_range_and_key():
  images = _images()
  views = random_views(jax.random.key(1), images)
  assert float(jnp.min(views)) >= -1.0 and float(jnp.max(views)) <= 1.0
  np.testing.assert_array_equal(views, random_views(jax.random.key(1), images))
  assert not np.array_equal(views, random_views(jax.random.key(2), images))
  with pytest.raises(ValueError, match="RGB images; got 1 channels"):
    random_views(jax.random.key(1), images[..., :1])
