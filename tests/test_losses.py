"""Tests of the GAN losses and gradient penalties (jaxgan.losses)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import losses
from jaxgan.models import Discriminator


def test_hinge_known_values():
  real = jnp.array([2.0, 0.5])  # relu(1 - x): 0, 0.5 -> 0.25
  fake = jnp.array([-2.0, 0.0])  # relu(1 + x): 0, 1 -> 0.5
  mis = jnp.array([0.5, -1.0])  # relu(1 + x): 1.5, 0 -> 0.75
  d = losses.hinge_d_loss(real, fake, mis)
  assert d.dtype == jnp.float32 and d.shape == ()
  np.testing.assert_allclose(d, 0.25 + (0.5 + 0.75) / 2, rtol=1e-6)
  np.testing.assert_allclose(losses.hinge_g_loss(jnp.array([1.0, 2.0, 3.0])),
                             -2.0)


@pytest.mark.parametrize("kind, per_example", [
    ("hinge", lambda x: np.maximum(1.0 + x, 0.0)),
    ("bce", lambda x: np.log1p(np.exp(x))),
])
def test_mismatched_loss_counts_valid_examples_only(kind, per_example):
  logits = np.array([0.5, -3.0, 2.0, -0.2], np.float32)
  valid = np.array([True, True, False, True])
  loss = losses.mismatched_loss(kind, jnp.asarray(logits), jnp.asarray(valid))
  assert loss.dtype == jnp.float32 and loss.shape == ()
  # Half, as DF-GAN's mismatched term in the D loss.
  np.testing.assert_allclose(loss, 0.5 * np.mean(per_example(logits[valid])), rtol=1e-6)
  assert losses.mismatched_loss(kind, jnp.asarray(logits), jnp.zeros(4, bool)) == 0.0
  with pytest.raises(ValueError, match="unknown loss"):
    losses.mismatched_loss("wasserstein", jnp.asarray(logits), jnp.asarray(valid))


def test_hinge_is_zero_beyond_margin():
  d = losses.hinge_d_loss(jnp.full(4, 3.0), jnp.full(4, -3.0),
                          jnp.full(4, -1.0))
  assert d == 0.0


def test_bce_known_values():
  zeros = jnp.zeros(3)
  # Every sigmoid is 1/2: log 2 for real plus (log 2 + log 2) / 2.
  np.testing.assert_allclose(losses.bce_d_loss(zeros, zeros, zeros),
                             2 * math.log(2), rtol=1e-6)
  np.testing.assert_allclose(losses.bce_g_loss(zeros), math.log(2), rtol=1e-6)
  real, fake, mis = np.array([1.5, -0.3]), np.array([0.7]), np.array([-2.0])
  log_sig = lambda x: -np.log1p(np.exp(-x))
  want = (-log_sig(real).mean()
          + 0.5 * (-log_sig(-fake).mean() - log_sig(-mis).mean()))
  np.testing.assert_allclose(
      losses.bce_d_loss(jnp.array(real), jnp.array(fake), jnp.array(mis)),
      want, rtol=1e-5)
  np.testing.assert_allclose(losses.bce_g_loss(jnp.array(fake)),
                             -log_sig(fake).mean(), rtol=1e-5)


def test_bce_stable_at_large_logits():
  big, small = jnp.array([100.0]), jnp.array([-100.0])
  # Confidently right: ~0; confidently wrong: ~|logit| per term.
  np.testing.assert_allclose(losses.bce_d_loss(big, small, small), 0.0,
                             atol=1e-30)
  np.testing.assert_allclose(losses.bce_d_loss(small, big, big), 200.0,
                             rtol=1e-6)
  np.testing.assert_allclose(losses.bce_g_loss(small), 100.0, rtol=1e-6)
  np.testing.assert_allclose(losses.bce_g_loss(big), 0.0, atol=1e-30)
  grads = jax.grad(losses.bce_d_loss, argnums=(0, 1, 2))(small, big, big)
  np.testing.assert_allclose(np.concatenate(grads), [-1.0, 0.5, 0.5],
                             rtol=1e-6)
  assert np.isfinite(jax.grad(losses.bce_g_loss)(small)).all()


@pytest.mark.parametrize("kind", ["hinge", "bce"])
def test_bf16_logits_give_float32_losses(kind):
  d_loss, g_loss = losses.get_loss_fns(kind)
  x = jnp.array([0.3, -0.2], jnp.bfloat16)
  assert d_loss(x, x, x).dtype == jnp.float32
  assert g_loss(x).dtype == jnp.float32


def test_get_loss_fns():
  assert losses.get_loss_fns("hinge") == (losses.hinge_d_loss,
                                          losses.hinge_g_loss)
  assert losses.get_loss_fns("bce") == (losses.bce_d_loss, losses.bce_g_loss)
  with pytest.raises(ValueError, match="bce, hinge"):
    losses.get_loss_fns("wgan")


def _linear_d(w, v):
  """logits = <w, x> + <v, s>: the gradient is (w, v) for every example."""
  return lambda x, s: x.reshape(x.shape[0], -1) @ w + s @ v


@pytest.mark.parametrize("k,p", [(2.0, 6.0), (1.0, 2.0), (0.5, 3.0)])
def test_ma_gp_linear_closed_form(k, p):
  kw, kv, kx, ks = jax.random.split(jax.random.key(0), 4)
  w = jax.random.normal(kw, (4 * 4 * 3,)) * 0.3
  v = jax.random.normal(kv, (5,)) * 0.3
  x = jax.random.normal(kx, (3, 4, 4, 3))
  s = jax.random.normal(ks, (3, 5))
  norm = math.sqrt(float(w @ w + v @ v))
  got = losses.ma_gp(_linear_d(w, v), x, s, k=k, p=p)
  assert got.dtype == jnp.float32 and got.shape == ()
  np.testing.assert_allclose(got, k * norm**p, rtol=1e-5)


def test_ma_gp_defaults_are_dfgan():
  w, v = jnp.full((12,), 0.5), jnp.full((4,), 0.5)  # |(w, v)|^2 = 16 * 0.25
  got = losses.ma_gp(_linear_d(w, v), jnp.ones((2, 2, 2, 3)), jnp.ones((2, 4)))
  np.testing.assert_allclose(got, 2.0 * 4.0**3, rtol=1e-6)


def _np_tiny_d(a, v, x, s):
  """A nonlinear per-example D in numpy float64: tanh(<a, x> + <v, s>)^2."""
  h = np.tanh(x.reshape(x.shape[0], -1) @ a + s @ v)
  return h**2 + 0.3 * h


def test_ma_gp_matches_finite_differences():
  rng = np.random.default_rng(0)
  a, v = rng.normal(size=12) * 0.4, rng.normal(size=3) * 0.4
  x, s = rng.normal(size=(2, 2, 2, 3)), rng.normal(size=(2, 3))

  def logits_fn(x, s):
    h = jnp.tanh(x.reshape(x.shape[0], -1) @ a.astype(np.float32)
                 + s @ v.astype(np.float32))
    return h**2 + 0.3 * h

  # Central differences of each example's logit over its own inputs.
  eps = 1e-6
  flat = np.concatenate([x.reshape(2, -1), s], axis=1)
  grads = np.zeros_like(flat)
  for j in range(flat.shape[1]):
    up, down = flat.copy(), flat.copy()
    up[:, j] += eps
    down[:, j] -= eps
    f = lambda z: _np_tiny_d(a, v, z[:, :12].reshape(x.shape), z[:, 12:])
    grads[:, j] = (f(up) - f(down)) / (2 * eps)
  want = 2.0 * np.mean(np.linalg.norm(grads, axis=1) ** 6)
  got = losses.ma_gp(logits_fn, jnp.asarray(x, jnp.float32),
                     jnp.asarray(s, jnp.float32))
  np.testing.assert_allclose(got, want, rtol=1e-4)


def test_ma_gp_param_gradient_finite_when_d_is_flat():
  x, s = jnp.ones((2, 2, 2, 3)), jnp.ones((2, 4))

  def penalty(params):
    return losses.ma_gp(_linear_d(*params), x, s)

  zero = (jnp.zeros(12), jnp.zeros(4))
  assert penalty(zero) == 0.0
  for g in jax.grad(penalty)(zero):
    np.testing.assert_array_equal(g, 0.0)  # not NaN from sqrt at 0


def test_r1_closed_forms():
  w = jnp.arange(12.0) / 10.0
  x = jax.random.normal(jax.random.key(1), (3, 2, 2, 3))
  linear = lambda x: x.reshape(x.shape[0], -1) @ w
  got = losses.r1_penalty(linear, x, gamma=10.0)
  assert got.dtype == jnp.float32 and got.shape == ()
  np.testing.assert_allclose(got, 5.0 * float(w @ w), rtol=1e-5)
  # D = sum(x^2) per example: gradient 2x, so gamma/2 * mean(4 |x_b|^2).
  quad = lambda x: jnp.sum(x**2, axis=(1, 2, 3))
  want = 0.5 * 1.0 * np.mean(4 * np.sum(np.asarray(x) ** 2, axis=(1, 2, 3)))
  np.testing.assert_allclose(losses.r1_penalty(quad, x, gamma=1.0), want,
                             rtol=1e-5)


def test_penalties_on_dfgan_discriminator():
  d = Discriminator(nf=4, image_size=16)
  x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3), minval=-1.0)
  s = jax.random.normal(jax.random.key(1), (2, 6))

  @jax.jit
  def run(x, s):
    params = d.init(jax.random.key(2), x, s)
    fn = lambda xx, ss: d.apply(params, xx, ss)
    gp, gp_grads = jax.value_and_grad(
        lambda p: losses.ma_gp(lambda xx, ss: d.apply(p, xx, ss), x, s))(params)
    r1 = losses.r1_penalty(lambda xx: fn(xx, s), x, gamma=1.0)
    return gp, gp_grads, r1

  gp, gp_grads, r1 = run(x, s)
  assert np.isfinite(gp) and gp > 0 and np.isfinite(r1) and r1 > 0
  assert all(np.isfinite(g).all() for g in jax.tree.leaves(gp_grads))


def test_ma_gp_from_the_pullbacks_of_d_matches_ma_gp():
  # The training step takes the MA-GP's input gradients from the pullbacks of
  # D's forward pass on the real batch: same penalty, same gradient for D.
  d = Discriminator(nf=4, image_size=16)
  x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3), minval=-1.0)
  s = jax.random.normal(jax.random.key(1), (2, 6))
  params = d.init(jax.random.key(2), x, s)

  def from_pullbacks(p):
    features, features_pullback = jax.vjp(
        lambda xx: d.apply(p, xx, method="features"), x)
    logits, logits_pullback = jax.vjp(
        lambda f, ss: d.apply(p, f, ss, method="logits"), features, s)
    features_grads, sentence_grads = logits_pullback(jnp.ones_like(logits))
    (image_grads,) = features_pullback(features_grads)
    return losses.ma_gp_from_grads(image_grads, sentence_grads, k=2.0, p=6.0)

  def direct(p):
    return losses.ma_gp(lambda xx, ss: d.apply(p, xx, ss), x, s, k=2.0, p=6.0)

  want, want_grads = jax.jit(jax.value_and_grad(direct))(params)
  got, got_grads = jax.jit(jax.value_and_grad(from_pullbacks))(params)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  for g, w in zip(jax.tree.leaves(got_grads), jax.tree.leaves(want_grads)):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-7)


def test_hard_negatives_are_drawn_by_closeness_never_own_or_invalid():
  images = jnp.asarray([[1.0, 0.0], [0.0, 1.0]])
  angles = jnp.asarray([0.0, 1.6, 0.3, 0.9, 0.1])
  candidates = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)
  valid = jnp.asarray([True, True, True, True, False])
  temperature = 0.5
  draws = jax.vmap(lambda k: losses.hard_negative_indices(
      k, images, candidates, valid, temperature))(
          jax.random.split(jax.random.key(0), 20000))
  draws = np.asarray(draws)
  scores = np.asarray(images @ candidates.T) / temperature
  for i in range(2):
    allowed = [j for j in range(5) if j != i and bool(valid[j])]
    expected = np.exp(scores[i, allowed]) / np.exp(scores[i, allowed]).sum()
    counts = np.bincount(draws[:, i], minlength=5) / len(draws)
    assert counts[i] == 0 and counts[4] == 0
    np.testing.assert_allclose(counts[allowed], expected, atol=0.015)
