"""A word-level tokenizer with a vocabulary built from the training captions.

It is the tokenizer of the learned encoders (``bow`` and ``transformer``). Text is
cleaned to plain lower-case ASCII words, so "Café", "cafe" and "CAFE" share one id
and punctuation never becomes a token. The vocabulary, and therefore every id, is
a pure function of the captions, so two builds from the same data agree.
"""

from __future__ import annotations

import collections
import json
import os
import re
import unicodedata
from typing import Iterable, Sequence

import numpy as np

PAD, UNK, CLS = "<pad>", "<unk>", "<cls>"
PAD_ID, UNK_ID, CLS_ID = 0, 1, 2
# <cls> is always reserved, even though the encoders here pool by masked mean, so
# that a vocabulary stays valid for an encoder that prepends it.
SPECIAL_TOKENS = (PAD, UNK, CLS)

FILENAME = "tokenizer.json"
KIND = "word"
_FORMAT_VERSION = 1

_WORD_RE = re.compile(r"[a-z0-9]+")


def clean_text(text: str) -> list[str]:
  """Splits a caption into normalised lower-case ASCII words.

  Compatibility decomposition (NFKD) turns accented letters into a base letter
  plus a combining mark and full-width or ligature forms into plain ones; the
  marks and any other non-ASCII characters are then dropped. Everything that is
  not ``[a-z0-9]`` separates words, so hyphenated words split in two and
  punctuation disappears ("don't" gives "don", "t").

  Args:
    text: any Unicode string.

  Returns:
    The words, possibly none.
  """
  ascii_text = (
      unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
  )
  return _WORD_RE.findall(ascii_text.lower())


class WordTokenizer:
  """Whole words to fixed-length ids; implements the ``Tokenizer`` protocol.

  Ids 0, 1, 2 are ``<pad>``, ``<unk>``, ``<cls>``; words follow from id 3 in
  order of decreasing training count (ties broken alphabetically).

  Attributes:
    max_length: every encoded text has exactly this many positions.
    vocab: the token of each id.
  """

  kind = KIND
  # Its vocabulary is already the training captions' words (see the protocol).
  caption_ids = None

  def __init__(self, vocab: Sequence[str], max_length: int):
    """Wraps an existing vocabulary; use :meth:`build` to make one from captions.

    Args:
      vocab: the token of each id, starting with the special tokens.
      max_length: number of positions of every encoded text.

    Raises:
      ValueError: on a bad vocabulary or max_length.
    """
    vocab = list(vocab)
    if tuple(vocab[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
      raise ValueError(
          f"vocab must start with {SPECIAL_TOKENS}, got {vocab[:len(SPECIAL_TOKENS)]}"
      )
    if len(set(vocab)) != len(vocab):
      raise ValueError("vocab has duplicate tokens")
    if int(max_length) < 1:
      raise ValueError(f"max_length must be >= 1, got {max_length}")
    self.vocab = vocab
    self.max_length = int(max_length)
    self._ids = {word: i for i, word in enumerate(vocab)}

  @classmethod
  def build(
      cls, captions: Iterable[str], max_length: int, min_count: int = 1
  ) -> WordTokenizer:
    """Builds the vocabulary from training captions.

    Args:
      captions: the training captions (any iterable, read once).
      max_length: number of positions of every encoded text.
      min_count: words seen fewer times than this map to ``<unk>``.

    Returns:
      The tokenizer.
    """
    counts = collections.Counter()
    for caption in captions:
      counts.update(clean_text(caption))
    kept = [w for w, c in counts.items() if c >= min_count]
    # Count alone would leave ties in dict order, which depends on caption order;
    # the word as second key makes the ids a function of the counts only.
    kept.sort(key=lambda w: (-counts[w], w))
    return cls(list(SPECIAL_TOKENS) + kept, max_length)

  @property
  def vocab_size(self) -> int:
    return len(self.vocab)

  def token_ids(self, text: str) -> list[int]:
    """Ids of all words of ``text``, untruncated and unpadded."""
    return [self._ids.get(word, UNK_ID) for word in clean_text(text)]

  def num_tokens(self, text: str) -> int:
    """Number of tokens of ``text`` before truncation to ``max_length``."""
    return len(clean_text(text))

  def encode(
      self, texts: Sequence[str], return_truncated: bool = False
  ) -> tuple[np.ndarray, ...]:
    """Encodes a batch of texts.

    Args:
      texts: B strings (a list, not a single string).
      return_truncated: also return which texts lost words to truncation, so
        the caller can warn.

    Returns:
      ids [B, max_length] int32 (``<pad>`` after the last word) and mask
      [B, max_length] bool (True on real words; all False for a text without
      words); with ``return_truncated``, also truncated [B] bool.
    """
    if isinstance(texts, str):
      # A bare string is a sequence of characters: encoding each one would
      # silently give a batch of single letters.
      raise TypeError("encode expects a sequence of strings, got a single str")
    ids = np.full((len(texts), self.max_length), PAD_ID, dtype=np.int32)
    truncated = np.zeros((len(texts),), dtype=bool)
    for row, text in enumerate(texts):
      tokens = self.token_ids(text)
      truncated[row] = len(tokens) > self.max_length
      tokens = tokens[: self.max_length]
      ids[row, : len(tokens)] = tokens
    # Words never map to <pad>, so the mask follows from the ids.
    mask = ids != PAD_ID
    if return_truncated:
      return ids, mask, truncated
    return ids, mask

  def decode(self, ids: Sequence[int]) -> str:
    """Joins the words of ``ids`` with spaces, skipping ``<pad>`` (for display)."""
    return " ".join(self.vocab[int(i)] for i in ids if int(i) != PAD_ID)

  def save(self, directory: str) -> None:
    """Writes ``tokenizer.json`` (kind, max_length, vocab) into ``directory``."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, FILENAME)
    payload = {
        "kind": KIND,
        "version": _FORMAT_VERSION,
        "max_length": self.max_length,
        "vocab": self.vocab,
    }
    # Write then rename, so an interrupted save never leaves half a vocabulary
    # for a later sampling run to load.
    tmp_path = path + ".tmp"
    with open(tmp_path, "w", encoding="utf-8") as f:
      json.dump(payload, f, indent=1)
    os.replace(tmp_path, path)

  @classmethod
  def load(cls, directory: str) -> WordTokenizer:
    """Reads a tokenizer written by :meth:`save`.

    Raises:
      FileNotFoundError: no ``tokenizer.json`` in ``directory``.
      ValueError: the file holds another kind of tokenizer.
    """
    payload = read_tokenizer_file(directory)
    if payload.get("kind") != KIND:
      raise ValueError(
          f"{os.path.join(directory, FILENAME)} holds a tokenizer of kind "
          f"{payload.get('kind')!r}, not {KIND!r}"
      )
    return cls(payload["vocab"], payload["max_length"])

  def __repr__(self) -> str:
    return (
        f"WordTokenizer(vocab_size={self.vocab_size}, "
        f"max_length={self.max_length})"
    )


def read_tokenizer_file(directory: str) -> dict:
  """Reads ``directory/tokenizer.json`` with a clear error when it is missing."""
  path = os.path.join(directory, FILENAME)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"No {FILENAME} in {directory!r}: a trained run saves its tokenizer "
        "there; check that the directory is the run's workdir."
    )
  with open(path, encoding="utf-8") as f:
    return json.load(f)
