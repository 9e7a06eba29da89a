"""Does a learned text encoder learn? A measure that needs no labels.

Each ``shapes`` image has several captions: synonyms ("crimson" for "red"),
other word orders, optional words. A text encoder that has learned what the
captions *mean* maps two phrasings of the same image close together and
captions of different images apart. :func:`paraphrase_separation` measures
exactly that, so it can be compared between a freshly initialised encoder and a
trained one (``scripts/text_encoder_learning.py``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def paraphrase_separation(encode: Callable[[Sequence[str]], np.ndarray],
                          captions: Sequence[Sequence[str]]) -> dict[str, float]:
  """Cosine similarity of paraphrases against that of unrelated captions.

  Args:
    encode: texts -> sentence embeddings [N, D].
    captions: for each image, at least two of its captions.

  Returns:
    ``same``: mean cosine between the first two captions of one image;
    ``different``: mean cosine between captions of neighbouring images;
    ``gap``: ``same - different`` (higher = the encoder separates meanings
    better than surface forms).
  """
  first = _unit(encode([c[0] for c in captions]))
  second = _unit(encode([c[1] for c in captions]))
  same = float(np.mean(np.sum(first * second, axis=-1)))
  different = float(np.mean(np.sum(first * np.roll(second, 1, axis=0), axis=-1)))
  return {"same": same, "different": different, "gap": same - different}
