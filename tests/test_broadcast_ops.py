"""The matmul-reduced bias and modulation equal the plain expressions, in value,
gradient and the gradient of an input gradient (the MA-GP's second order)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import dfgan
from jaxgan.models.broadcast_ops import add_bias, modulate


def _plain_add_bias(x, bias):
  return x + bias


def _plain_modulate(x, scale, shift):
  return scale[:, None, None, :] * x + shift[:, None, None, :]


def _inputs(*shapes):
  keys = jax.random.split(jax.random.key(0), len(shapes))
  return [jax.random.normal(k, s) for k, s in zip(keys, shapes)]


@pytest.mark.parametrize("fn,plain,shapes", [
    (add_bias, _plain_add_bias, [(3, 5, 4, 6), (6,)]),
    (modulate, _plain_modulate, [(3, 5, 4, 6), (3, 6), (3, 6)]),
])
def test_values_gradients_and_second_order_match_the_plain_expression(fn, plain, shapes):
  args = _inputs(*shapes)
  weights = jax.random.normal(jax.random.key(1), shapes[0])

  def loss(f, *a):
    return jnp.sum(jnp.sin(f(*a)) * weights)

  def input_grad_penalty(f, *a):
    # Like the MA-GP: the norm of the gradient w.r.t. the input, then its
    # gradient w.r.t. the other arguments.
    g = jax.grad(lambda x: loss(f, x, *a[1:]))(a[0])
    return jnp.sum(g ** 2)

  np.testing.assert_allclose(fn(*args), plain(*args), rtol=1e-6)
  argnums = tuple(range(len(args)))
  for got, want in zip(jax.grad(lambda *a: loss(fn, *a), argnums)(*args),
                       jax.grad(lambda *a: loss(plain, *a), argnums)(*args)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  for got, want in zip(jax.grad(lambda *a: input_grad_penalty(fn, *a), argnums)(*args),
                       jax.grad(lambda *a: input_grad_penalty(plain, *a), argnums)(*args)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_gradient_dtypes_follow_the_arguments():
  x = jnp.ones((2, 3, 3, 4), jnp.bfloat16)
  grads = jax.grad(lambda b: jnp.sum(add_bias(x, b).astype(jnp.float32)))(
      jnp.ones((4,), jnp.bfloat16))
  assert grads.dtype == jnp.bfloat16
  np.testing.assert_array_equal(grads, 18.0)


@pytest.mark.parametrize("kernel_size,padding", [((3, 3), "SAME"), ((1, 1), "SAME"),
                                                 ((4, 4), "VALID")])
def test_conv_is_flax_conv(kernel_size, padding):
  x = jax.random.normal(jax.random.key(2), (2, 8, 8, 5))
  ours = dfgan.Conv(7, kernel_size, padding=padding)
  flax_conv = nn.Conv(7, kernel_size, padding=padding)
  params = ours.init(jax.random.key(3), x)
  reference_params = flax_conv.init(jax.random.key(3), x)
  # Same tree, same initialisation (a non-zero bias to compare the add).
  jax.tree.map(np.testing.assert_array_equal, params, reference_params)
  params = jax.tree.map(lambda p: p + 0.5, params)
  np.testing.assert_allclose(ours.apply(params, x), flax_conv.apply(params, x),
                             rtol=1e-5, atol=1e-5)
  got = jax.grad(lambda p: jnp.sum(ours.apply(p, x) ** 2))(params)
  want = jax.grad(lambda p: jnp.sum(flax_conv.apply(p, x) ** 2))(params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), got, want)
