"""A small Transformer text encoder, learned together with the GAN."""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.text.base import TextEncoding


class _MlpBlock(nn.Module):
  """Dense, GELU, Dense: the feed-forward half of a Transformer block."""

  mlp_dim: int
  dropout_rate: float
  dtype: jnp.dtype
  param_dtype: jnp.dtype

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    out_dim = x.shape[-1]
    x = nn.Dense(self.mlp_dim, dtype=self.dtype, param_dtype=self.param_dtype)(x)
    x = nn.gelu(x)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    x = nn.Dense(out_dim, dtype=self.dtype, param_dtype=self.param_dtype)(x)
    return nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)


class EncoderBlock(nn.Module):
  """Pre-LayerNorm block: x + attention(LN(x)), then x + MLP(LN(x))."""

  num_heads: int
  mlp_dim: int
  dropout_rate: float
  dtype: jnp.dtype
  param_dtype: jnp.dtype

  @nn.compact
  def __call__(
      self, x: jax.Array, attention_mask: jax.Array, deterministic: bool
  ) -> jax.Array:
    y = nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype)(x)
    y = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        dropout_rate=self.dropout_rate,
        # bf16 logits next to the -inf-like fill of masked keys lose the small
        # differences between real keys; fp32 softmax keeps them.
        force_fp32_for_softmax=True,
    )(y, mask=attention_mask, deterministic=deterministic)
    y = nn.Dropout(self.dropout_rate)(y, deterministic=deterministic)
    x = x + y
    y = nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype)(x)
    y = _MlpBlock(
        self.mlp_dim, self.dropout_rate, self.dtype, self.param_dtype
    )(y, deterministic)
    return x + y


class TransformerEncoder(nn.Module):
  """Token and learned position embeddings, pre-LN blocks, final LayerNorm.

  The sentence is the mean of the final token states over the real tokens (not a
  ``<cls>`` token): it needs no extra position, and like the bag of words it is
  invariant to padding by construction. Attention only looks at real keys, so a
  padded position's id never reaches a real token; padded positions of ``words``
  are set to zero. A text without words attends uniformly (finite, never 0/0)
  and gets a zero mean before the projection.

  Attributes:
    vocab_size: number of token ids.
    max_length: number of learned positions; inputs may be shorter.
    embed_dim: width of the token states (and of ``words``).
    num_layers: number of Transformer blocks.
    num_heads: attention heads per block (must divide embed_dim).
    mlp_dim: hidden width of the feed-forward layers.
    out_dim: if set, the sentence is projected by a Dense layer to this size.
    dropout_rate: dropout on embeddings, attention and MLP when not
      deterministic (needs a 'dropout' rng then).
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """

  vocab_size: int
  max_length: int
  embed_dim: int = 128
  num_layers: int = 2
  num_heads: int = 4
  mlp_dim: int = 256
  out_dim: Optional[int] = None
  dropout_rate: float = 0.0
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(
      self, ids: jax.Array, mask: jax.Array, deterministic: bool = True
  ) -> TextEncoding:
    """Encodes a batch.

    Args:
      ids: [B, L] int token ids, L <= max_length.
      mask: [B, L] bool, True on real tokens.
      deterministic: turns dropout off.

    Returns:
      sentence [B, out_dim or embed_dim] float32, words [B, L, embed_dim] in
      ``dtype`` (zero at padding), mask as given (bool).

    Raises:
      ValueError: L > max_length, or embed_dim not divisible by num_heads.
    """
    length = ids.shape[-1]
    if length > self.max_length:
      raise ValueError(
          f"got {length} tokens but the encoder has {self.max_length} positions"
      )
    if self.embed_dim % self.num_heads:
      raise ValueError(
          f"embed_dim={self.embed_dim} is not divisible by "
          f"num_heads={self.num_heads}"
      )
    mask = mask.astype(bool)
    x = nn.Embed(
        self.vocab_size,
        self.embed_dim,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        embedding_init=nn.initializers.normal(stddev=0.02),
        name="token_embed",
    )(ids)
    positions = self.param(
        "pos_embed",
        nn.initializers.normal(stddev=0.02),
        (self.max_length, self.embed_dim),
        self.param_dtype,
    )
    x = x + jnp.asarray(positions[:length], self.dtype)[None]
    x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)

    # Mask keys only: [B, 1 head, 1 query, L keys] broadcasts over heads and
    # queries. Padded queries still get (ignored) outputs, which is harmless
    # because no real query reads them.
    attention_mask = mask[:, None, None, :]
    for i in range(self.num_layers):
      x = EncoderBlock(
          self.num_heads,
          self.mlp_dim,
          self.dropout_rate,
          self.dtype,
          self.param_dtype,
          name=f"block_{i}",
      )(x, attention_mask, deterministic)
    x = nn.LayerNorm(
        dtype=self.dtype, param_dtype=self.param_dtype, name="final_norm"
    )(x)
    words = jnp.where(mask[..., None], x, jnp.zeros((), x.dtype))

    # Average in float32; max(count, 1) keeps a text without words at 0.
    count = jnp.sum(mask, axis=1, keepdims=True).astype(jnp.float32)
    sentence = jnp.sum(words.astype(jnp.float32), axis=1) / jnp.maximum(count, 1.0)
    if self.out_dim is not None:
      sentence = nn.Dense(
          self.out_dim,
          dtype=self.dtype,
          param_dtype=self.param_dtype,
          name="project",
      )(sentence)
    return TextEncoding(
        sentence=sentence.astype(jnp.float32), words=words, mask=mask
    )
