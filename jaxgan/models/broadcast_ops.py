"""Per-channel bias and modulation whose gradients reduce with matmuls.

The gradient of a value broadcast over an image (a bias over ``[B, H, W]``, a
per-sample scale or shift over ``[H, W]``) is a sum over those axes. XLA's CPU
backend emits such a sum as a loop fusion with few outputs (one per channel),
folds the chain that produces the summand into it, and merges a sum of sums
into one (a Dense layer's bias gradient summed over the batch from a
modulation's gradient summed over the image): in the 64x64 training step 136
of them took 0.64 s of 1.7 s (``benchmarks/README.md``, "Reductions as
matmuls"). Here the sums are matmuls with a vector of ones, which XLA neither
fuses into nor merges, over the summand written out once. The functions are
the plain expressions in value, and in gradient up to the order in which
float32 terms are added; they differentiate to any order in reverse mode (the
matching-aware gradient penalty differentiates D's input gradient).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _sum_leading(x: jax.Array, keep: int) -> jax.Array:
  """Sums ``x`` [..., *x.shape[-keep:]] over every leading axis, as a matmul."""
  rows = x.reshape(-1, *x.shape[x.ndim - keep:])
  ones = jnp.ones((rows.shape[0],), x.dtype)
  return jnp.tensordot(ones, rows, axes=1, preferred_element_type=jnp.float32)


def _sum_spatial(x: jax.Array) -> jax.Array:
  """Sums ``x`` [B, H, W, C] over H and W: [B, C], as a batched matmul."""
  b, c = x.shape[0], x.shape[-1]
  rows = x.reshape(b, -1, c)
  ones = jnp.ones((rows.shape[1],), x.dtype)
  return jnp.einsum("n,bnc->bc", ones, rows, preferred_element_type=jnp.float32)


@jax.custom_vjp
def add_bias(x: jax.Array, bias: jax.Array) -> jax.Array:
  """``x + bias``: ``bias`` [C] broadcast over every axis of ``x`` [..., C] but the last."""
  return x + bias


# The forward rules call the functions themselves, not their expressions: under
# a second derivative (the MA-GP's), the outer one differentiates the forward
# rule, and would otherwise sum the plain way again.
def _add_bias_fwd(x, bias):
  return add_bias(x, bias), bias


def _add_bias_bwd(bias, grad):
  return grad, _sum_leading(grad, 1).astype(bias.dtype)


add_bias.defvjp(_add_bias_fwd, _add_bias_bwd)


@jax.custom_vjp
def modulate(x: jax.Array, scale: jax.Array, shift: jax.Array) -> jax.Array:
  """``scale * x + shift`` per sample and channel: ``x`` [B, H, W, C], ``scale``
  and ``shift`` [B, C] (DF-GAN's text-conditioned affine)."""
  return scale[:, None, None, :] * x + shift[:, None, None, :]


def _modulate_fwd(x, scale, shift):
  return modulate(x, scale, shift), (x, scale)


def _modulate_bwd(residuals, grad):
  x, scale = residuals
  return (grad * scale[:, None, None, :],
          _sum_spatial(grad * x).astype(scale.dtype),
          _sum_spatial(grad).astype(scale.dtype))


modulate.defvjp(_modulate_fwd, _modulate_bwd)


__all__ = ["add_bias", "modulate"]
