"""The classic bag-of-words text encoder: a sentence is the sum of its word vectors."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.text.base import TextEncoding


class BowEncoder(nn.Module):
  """Sum of learned word vectors over the real tokens.

  The sum is divided by sqrt(number of words). Random unit-variance word vectors
  then give a sentence of unit variance per feature whatever the length, so a
  long caption does not drive the generator's conditioning layers harder than a
  short one, while the result is still a fixed multiple of the plain sum (order
  free, and every word counts). A text without words gives the zero vector.

  Attributes:
    vocab_size: number of token ids.
    embed_dim: size of a word vector and of the sentence embedding.
    dtype: compute dtype of the word vectors.
    param_dtype: dtype of the embedding table.
  """

  vocab_size: int
  embed_dim: int = 256
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(
      self, ids: jax.Array, mask: jax.Array, deterministic: bool = True
  ) -> TextEncoding:
    """Encodes a batch.

    Args:
      ids: [B, L] int token ids.
      mask: [B, L] bool, True on real tokens.
      deterministic: unused; here so every encoder is called the same way.

    Returns:
      sentence [B, embed_dim] float32, words [B, L, embed_dim] in ``dtype``
      (zero at padding), mask as given (bool).
    """
    del deterministic
    mask = mask.astype(bool)
    words = nn.Embed(
        self.vocab_size,
        self.embed_dim,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        embedding_init=nn.initializers.normal(stddev=1.0),
        name="embed",
    )(ids)
    words = jnp.where(mask[..., None], words, jnp.zeros((), words.dtype))
    # Sum in float32: bf16 loses words of a long sum to rounding.
    total = jnp.sum(words.astype(jnp.float32), axis=1)
    count = jnp.sum(mask, axis=1, keepdims=True).astype(jnp.float32)
    # max(count, 1) keeps an empty text at 0 instead of 0/0.
    sentence = total / jnp.sqrt(jnp.maximum(count, 1.0))
    return TextEncoding(sentence=sentence, words=words, mask=mask)
