"""The custom-gradient bias, modulation and matmul equal the plain expressions,
in value, gradient and the gradient of an input gradient (the MA-GP's second
order)."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import dfgan
from jaxgan.models.broadcast_ops import add_bias, modulate, rows_matmul


def _plain_add_bias(x, bias):
  return x + bias


def _plain_modulate(x, scale, shift):
  return scale[:, None, None, :] * x + shift[:, None, None, :]


def _plain_matmul(rows, weights):
  return rows @ weights


def _inputs(*shapes):
  keys = jax.random.split(jax.random.key(0), len(shapes))
  return [jax.random.normal(k, s) for k, s in zip(keys, shapes)]


@pytest.mark.parametrize("fn,plain,shapes", [
    (add_bias, _plain_add_bias, [(3, 5, 4, 6), (6,)]),
    (modulate, _plain_modulate, [(3, 5, 4, 6), (3, 6), (3, 6)]),
    (rows_matmul, _plain_matmul, [(3, 5, 4, 6), (6, 7)]),
])
def test_values_gradients_and_second_order_match_the_plain_expression(fn, plain, shapes):
  args = _inputs(*shapes)
  weights = jax.random.normal(jax.random.key(1), plain(*args).shape)

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


@pytest.mark.parametrize("fn,shapes", [
    (add_bias, [(3, 5, 4, 6), (6,)]),
    (modulate, [(3, 5, 4, 6), (3, 6), (3, 6)]),
])
def test_gradients_sum_with_matmuls_to_second_order(fn, shapes):
  # The point of these functions: no reduction over the activation in their
  # gradients, at first or second order (where XLA's CPU backend is slow).
  args = _inputs(*shapes)

  def penalty_grad(*a):
    def input_grad_penalty(*a):
      g = jax.grad(lambda x: jnp.sum(jnp.sin(fn(x, *a[1:]))))(a[0])
      return jnp.sum(g ** 2)
    return jax.grad(input_grad_penalty, tuple(range(len(a))))(*a)

  jaxpr = str(jax.make_jaxpr(penalty_grad)(*args))
  # The test's own losses are sums to scalars; any other sum would be a
  # gradient's.
  sums = re.findall(r"(\S+) = reduce_sum", jaxpr)
  assert sums and all(out.endswith("f32[]") for out in sums), sums
  assert "dot_general" in jaxpr


def test_mismatched_dtypes_are_refused():
  with pytest.raises(TypeError, match="dtypes differ"):
    add_bias(jnp.ones((2, 3), jnp.bfloat16), jnp.ones((3,), jnp.float32))
