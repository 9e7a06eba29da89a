"""The one interface every text encoder implements.

A text encoder is split in two, as in every Transformer code base:
  * a *tokenizer* (plain Python, runs in the input pipeline) turns strings into
    fixed-length int32 ids and a boolean mask;
  * an *encoder* (a Flax linen module, runs inside the jitted step) turns ids and
    mask into a :class:`TextEncoding`.
The generator and discriminator only ever see a :class:`TextEncoding`.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import flax.struct
import jax
import numpy as np


@flax.struct.dataclass
class TextEncoding:
  """What a text encoder returns for a batch of B sentences of L tokens.

  Attributes:
    sentence: [B, D] sentence embedding (the condition of G and D).
    words: [B, L, Dw] per-token embeddings (for attention-based models).
    mask: [B, L] bool, True where a real token is.
  """

  sentence: jax.Array
  words: jax.Array
  mask: jax.Array


class Tokenizer(Protocol):
  """Strings to fixed-length ids; saved with a run so sampling reproduces it.

  ``caption_ids``: the ids the training captions use, when the tokenizer's
  vocabulary is not already made of them (a pretrained one's); None otherwise.
  """

  max_length: int
  caption_ids: tuple[int, ...] | None

  @property
  def vocab_size(self) -> int:
    ...

  def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Returns ids [B, max_length] int32 and mask [B, max_length] bool."""
    ...

  def save(self, directory: str) -> None:
    ...
