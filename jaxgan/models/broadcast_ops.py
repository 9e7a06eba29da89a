"""Per-channel bias and modulation whose gradients reduce with matmuls, and a
matmul whose weight gradient is contracted in the order XLA's CPU runs best.

The gradient of a value broadcast over an image (a bias over ``[B, H, W]``, a
per-sample scale or shift over ``[H, W]``) is a sum over those axes. XLA's CPU
backend emits such a sum as a loop fusion with few outputs (one per channel),
folds the chain that produces the summand into it, and merges a sum of sums
into one (a Dense layer's bias gradient summed over the batch from a
modulation's gradient summed over the image): in the 64x64 training step 136
of them took 0.64 s of 1.7 s (``benchmarks/README.md``, "A new machine, and
the bias and modulation gradients as matmuls"). Here the sums are matmuls
with a vector of ones, which XLA neither fuses into nor merges, over the
summand written out once. The functions are the plain expressions in value,
and in gradient up to the order in which float32 terms are added. :func:`rows_matmul` (D's strided convolution as
patches times kernel) computes its weight gradient as [F, K] and transposes
that, where autodiff's [K, F] made XLA transpose the [N, F] activation
gradient first. All three differentiate to any order in reverse mode (the
matching-aware gradient penalty differentiates D's input gradient).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


# A sum must not round its terms: at default precision a float32 matmul runs
# in TF32 on recent GPUs and in bf16 passes on TPUs (on CPU it changes nothing).
_EXACT = jax.lax.Precision.HIGHEST


def _check_dtypes(x: jax.Array, *per_channel: jax.Array) -> None:
  # The custom gradients hand x's cotangent back in the dtype of what it was
  # multiplied with; callers promote first (as flax's layers do).
  if any(p.dtype != x.dtype for p in per_channel):
    raise TypeError(f"dtypes differ: {x.dtype} and "
                    f"{', '.join(str(p.dtype) for p in per_channel)}; promote them first")


def _sum_leading(x: jax.Array) -> jax.Array:
  """Sums ``x`` [..., C] over every axis but the last: [C], as a matmul."""
  rows = x.reshape(-1, x.shape[-1])
  ones = jnp.ones((rows.shape[0],), x.dtype)
  return jnp.tensordot(ones, rows, axes=1, precision=_EXACT,
                       preferred_element_type=jnp.float32)


def _sum_spatial(x: jax.Array) -> jax.Array:
  """Sums ``x`` [B, H, W, C] over H and W: [B, C], as a batched matmul."""
  b, c = x.shape[0], x.shape[-1]
  rows = x.reshape(b, -1, c)
  # Ones per sample ([B, HW], not one [HW] vector): B is then a batch
  # dimension of the dot, and each sample's [HW, C] rows are read in place;
  # with a shared vector XLA transposed the summand to [HW, B C] first (2.3x
  # slower alone at [32, 64, 64, 32]; the 64x64 step 8% faster).
  ones = jnp.ones(rows.shape[:2], x.dtype)
  return jnp.einsum("bn,bnc->bc", ones, rows, precision=_EXACT,
                    preferred_element_type=jnp.float32)


@jax.custom_vjp
def add_bias(x: jax.Array, bias: jax.Array) -> jax.Array:
  """``x + bias``: ``bias`` [C] broadcast over every axis of ``x`` [..., C] but the last."""
  _check_dtypes(x, bias)
  return x + bias


# The forward rules call the functions themselves, not their expressions: under
# a second derivative (the MA-GP's), the outer one differentiates the forward
# rule, and would otherwise sum the plain way again.
def _add_bias_fwd(x, bias):
  return add_bias(x, bias), bias


def _add_bias_bwd(bias, grad):
  return grad, _sum_leading(grad).astype(bias.dtype)


add_bias.defvjp(_add_bias_fwd, _add_bias_bwd)


@jax.custom_vjp
def modulate(x: jax.Array, scale: jax.Array, shift: jax.Array) -> jax.Array:
  """``scale * x + shift`` per sample and channel: ``x`` [B, H, W, C], ``scale``
  and ``shift`` [B, C] (DF-GAN's text-conditioned affine)."""
  _check_dtypes(x, scale, shift)
  return scale[:, None, None, :] * x + shift[:, None, None, :]


def _modulate_fwd(x, scale, shift):
  return modulate(x, scale, shift), (x, scale)


def _modulate_bwd(residuals, grad):
  x, scale = residuals
  # x's gradient through modulate itself, so that a second derivative (w.r.t.
  # the scale) sums with a matmul too.
  return (modulate(grad, scale, jnp.zeros_like(scale)),
          _sum_spatial(grad * x).astype(scale.dtype),
          _sum_spatial(grad).astype(scale.dtype))


modulate.defvjp(_modulate_fwd, _modulate_bwd)


@jax.custom_vjp
def rows_matmul(rows: jax.Array, weights: jax.Array) -> jax.Array:
  """``rows @ weights``: ``rows`` [..., K], ``weights`` [K, F]."""
  _check_dtypes(rows, weights)
  return rows @ weights


def _rows_matmul_fwd(rows, weights):
  return rows_matmul(rows, weights), (rows, weights)


def _rows_matmul_bwd(residuals, grad):
  rows, weights = residuals
  flat_rows = rows.reshape(-1, rows.shape[-1])
  flat_grad = grad.reshape(-1, grad.shape[-1])
  # [F, K] then transposed: contracting the rows with the gradient first
  # spares XLA a transpose of the [N, F] gradient (measured alone: 13.7
  # against 19.5 ms for N 32768, K 512, F 64).
  weights_grad = jnp.einsum("nf,nk->fk", flat_grad, flat_rows).T
  return rows_matmul(grad, weights.T), weights_grad.astype(weights.dtype)


rows_matmul.defvjp(_rows_matmul_fwd, _rows_matmul_bwd)


__all__ = ["add_bias", "modulate", "rows_matmul"]
