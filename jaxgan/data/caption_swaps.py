"""Binding negatives from caption text alone: two attribute words swapped within a caption.

"a small red circle on the left and a large blue square on the right" becomes
"a small blue circle on the left and a large red square on the right": the
same words, bound to other things. A discriminator that has only ever seen
another example's caption as a mismatch (DF-GAN) tells those apart by which
colours appear at all, never by which object has which; a real image paired
with its own caption's swapped version is a mismatch that only binding
explains (NegCLIP's hard negatives, Yuksekgonul et al. 2023, made by word
swaps instead of a parser).

The swap reads nothing but the caption: a fixed English lexicon of colour and
size words (general words such as "crimson" or "navy", not a data set's label
names), so it works on any captioned images (CUB: "a bird with a red crown and
black wings"). Each word has a basic term ("crimson" -> red) and only words of
one class with different basic terms are swapped, so "a red circle and a
crimson square" (one colour, two words) is never made a negative. Adjacent
words of a class form one phrase ("navy blue", "jet black") that moves whole.
"""

from __future__ import annotations

import re

import numpy as np

# Word -> basic term, per class. A phrase's basic term is its last word's
# ("navy blue" is blue). Words that only modify ("dark", "light", "pale") are
# left out: "dark blue" keeps "dark" where it stands; so are colours that are
# mostly nouns in captions ("snow", "jet", "lime", "salmon"): "jet black"
# moves as "black".
COLOUR_TERMS = {
    **dict.fromkeys(("red", "crimson", "scarlet", "maroon"), "red"),
    **dict.fromkeys(("orange", "tangerine", "amber"), "orange"),
    **dict.fromkeys(("yellow", "golden"), "yellow"),
    **dict.fromkeys(("green", "emerald"), "green"),
    **dict.fromkeys(("cyan", "turquoise", "aqua", "teal"), "cyan"),
    **dict.fromkeys(("blue", "cobalt", "azure", "indigo"), "blue"),
    **dict.fromkeys(("purple", "violet", "lavender", "lilac", "magenta"), "purple"),
    **dict.fromkeys(("pink", "fuchsia"), "pink"),
    **dict.fromkeys(("white", "ivory"), "white"),
    **dict.fromkeys(("black", "ebony"), "black"),
    **dict.fromkeys(("gray", "grey", "silver"), "gray"),
    **dict.fromkeys(("brown", "tan", "bronze"), "brown"),
    **dict.fromkeys(("beige", "cream", "khaki"), "beige"),
    "navy": "navy",
}
SIZE_TERMS = {
    **dict.fromkeys(("small", "little", "tiny", "short"), "small"),
    **dict.fromkeys(("medium", "mid"), "medium"),
    **dict.fromkeys(("large", "big", "huge", "giant", "long", "tall"), "large"),
}
WORD_CLASSES = {"colour": COLOUR_TERMS, "size": SIZE_TERMS}

# Words and the text between them; joining every piece gives the caption back.
_PIECES = re.compile(r"[A-Za-z]+|[^A-Za-z]+")


def _phrases(pieces: list[str], terms: dict[str, str]) -> list[tuple[int, int, str]]:
  """Maximal runs of ``terms`` words, as (first piece, last piece + 1, basic term).

  Words of a run are separated by single spaces only: "red, blue" is two phrases.
  """
  phrases = []
  index = 0
  while index < len(pieces):
    if pieces[index].lower() not in terms:
      index += 1
      continue
    end = index + 1
    while (end + 1 < len(pieces) and pieces[end] == " "
           and pieces[end + 1].lower() in terms):
      end += 2
    phrases.append((index, end, terms[pieces[end - 1].lower()]))
    index = end
  return phrases


def swap_candidates(caption: str) -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
  """Every swap that changes the caption's meaning: (class, piece span, piece span).

  The spans index the caption split into words and the text between them.
  """
  pieces = _PIECES.findall(caption)
  candidates = []
  for name, terms in WORD_CLASSES.items():
    phrases = _phrases(pieces, terms)
    for i, (start_a, end_a, term_a) in enumerate(phrases):
      for start_b, end_b, term_b in phrases[i + 1:]:
        if term_a != term_b:
          candidates.append((name, (start_a, end_a), (start_b, end_b)))
  return candidates


def swap_attribute_words(caption: str, rng: np.random.Generator) -> str | None:
  """The caption with two attribute phrases of one class swapped, or None if none can be.

  Args:
    caption: any caption.
    rng: chooses among the possible swaps (uniformly).

  Returns:
    E.g. "a blue circle left of a red square" for "a red circle left of a blue
    square"; None when no two phrases of a class differ (one colour named).
  """
  candidates = swap_candidates(caption)
  if not candidates:
    return None
  _, (start_a, end_a), (start_b, end_b) = candidates[rng.integers(len(candidates))]
  pieces = _PIECES.findall(caption)
  return "".join(pieces[:start_a] + pieces[start_b:end_b] + pieces[end_a:start_b]
                 + pieces[start_a:end_a] + pieces[end_b:])
