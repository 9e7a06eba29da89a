"""A learned head on a frozen pretrained encoder's token states.

MiniLM's sentence vector (the mean of its token states, unit-normalised) was
trained to say what a sentence is about, not where things are: on shapes
captions, the position of the first object explains 1.5% of the variance of
its sentence vectors and a linear read-out gets it right 68% of the time
(shape: 22%, 86%). A GAN conditioned on it learns backgrounds and colours but
hardly positions. The token states still hold every word in context ("left"
in "top left" is not "left" in "bottom left"), so a small Transformer trained
with the discriminator on top of them can put what the images need into the
sentence, while the frozen encoder keeps its language knowledge.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxgan.text.base import TextEncoding
from jaxgan.text.transformer import EncoderBlock


class TokenAdapter(nn.Module):
  """LayerNorm + projection of the frozen token states, pre-LN blocks, pooling.

  The sentence is the mean of the adapted token states over the real tokens,
  projected and layer-normalised: its entries have about unit variance, like
  the learned encoders' sentences, whatever the scale of the frozen states.

  Attributes:
    embed_dim: width of the adapted token states.
    out_dim: size of the sentence embedding.
    num_layers: Transformer blocks on top of the frozen states (0: a per-token
      projection and pooling only).
    num_heads: attention heads per block (must divide embed_dim).
    mlp_dim: hidden width of the blocks' feed-forward layers.
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """

  embed_dim: int = 256
  out_dim: int = 256
  num_layers: int = 1
  num_heads: int = 4
  mlp_dim: int = 512
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, encoding: TextEncoding) -> TextEncoding:
    """Adapts a frozen encoding.

    Args:
      encoding: the frozen encoder's output; ``words`` [B, L, Dw] and ``mask``
        are read, its ``sentence`` is not.

    Returns:
      sentence [B, out_dim] float32, words [B, L, embed_dim] (zero at padding),
      mask as given.

    Raises:
      ValueError: embed_dim not divisible by num_heads.
    """
    if self.embed_dim % self.num_heads:
      raise ValueError(f"adapter embed_dim={self.embed_dim} is not divisible by "
                       f"num_heads={self.num_heads}")
    mask = encoding.mask.astype(bool)
    dense = lambda size, name: nn.Dense(size, dtype=self.dtype,
                                        param_dtype=self.param_dtype, name=name)
    norm = lambda name: nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype,
                                     name=name)
    x = dense(self.embed_dim, "input")(norm("input_norm")(encoding.words))
    attention_mask = mask[:, None, None, :]  # keys only, as in TransformerEncoder
    for i in range(self.num_layers):
      x = EncoderBlock(self.num_heads, self.mlp_dim, 0.0, self.dtype, self.param_dtype,
                       name=f"block_{i}")(x, attention_mask, True)
    x = norm("final_norm")(x)
    words = jnp.where(mask[..., None], x, jnp.zeros((), x.dtype))
    count = jnp.sum(mask, axis=1, keepdims=True).astype(jnp.float32)
    pooled = jnp.sum(words.astype(jnp.float32), axis=1) / jnp.maximum(count, 1.0)
    sentence = norm("sentence_norm")(dense(self.out_dim, "project")(pooled))
    return TextEncoding(sentence=sentence.astype(jnp.float32), words=words, mask=mask)
