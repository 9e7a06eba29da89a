"""Binding negatives from caption text alone: two attribute words swapped within a caption.

"a small red circle on the left and a large blue square on the right" becomes
"a small blue circle on the left and a large red square on the right": the
same words, bound to other things. A discriminator that has only ever seen
another example's caption as a mismatch (DF-GAN) tells those apart by which
colours appear at all, never by which object has which; a real image paired
with its own caption's swapped version is a mismatch that only binding
explains (NegCLIP's hard negatives, Yuksekgonul et al. 2023, made by word
swaps instead of a parser).

The swap reads nothing but the captions: a fixed English lexicon of colour
and size words (general words such as "crimson" or "navy", not a data set's
label names), so it applies to any captioned images (CUB: "a bird with a red
crown and black wings"). Each word has a basic term ("crimson" -> red) and
only words of one class with different basic terms are swapped, so "a red
circle and a crimson square" (one colour, two words) is never made a
negative; nor are coordinated words ("black and white wings"). Words of a
class joined by a space or hyphen form one phrase that moves whole ("navy
blue", "blue-green"); "a"/"an" follow the word after them.

A swap must also read like a caption: with the data's captions given, every
pair of neighbouring words it makes must occur in them. Otherwise the text
alone would give it away ("a pink background" where backgrounds are never
pink; "jet red"), and D could learn that instead of looking at the image.
That also keeps out word pairs the data never captions (the ``shapes``
held-out (shape, colour) pairs).
"""

from __future__ import annotations

import re
from typing import Iterable

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
    **dict.fromkeys(("blue", "cobalt", "azure", "indigo", "navy"), "blue"),
    **dict.fromkeys(("purple", "violet", "lavender", "lilac", "magenta"), "purple"),
    **dict.fromkeys(("pink", "fuchsia"), "pink"),
    **dict.fromkeys(("white", "ivory"), "white"),
    **dict.fromkeys(("black", "ebony"), "black"),
    **dict.fromkeys(("gray", "grey", "silver"), "gray"),
    **dict.fromkeys(("brown", "tan", "bronze"), "brown"),
    **dict.fromkeys(("beige", "cream", "khaki"), "beige"),
}
SIZE_TERMS = {
    **dict.fromkeys(("small", "little", "tiny", "short"), "small"),
    **dict.fromkeys(("medium", "mid"), "medium"),
    **dict.fromkeys(("large", "big", "huge", "giant", "long", "tall"), "large"),
}
WORD_CLASSES = {"colour": COLOUR_TERMS, "size": SIZE_TERMS}

# Words and the text between them; joining every piece gives the caption back.
_PIECES = re.compile(r"[A-Za-z]+|[^A-Za-z]+")
# Between two words of a phrase ("navy blue", "blue-green").
_JOINERS = (" ", "-")
# Text between two phrases that coordinates them ("black and white wings",
# "small to medium sized", "red, white"): swapping those changes nothing.
_COORDINATION = re.compile(r"(?:[\s,/&-]|\band\b|\bor\b|\bto\b)*", re.IGNORECASE)
_ARTICLES = ("a", "an")


def _phrases(pieces: list[str], terms: dict[str, str]) -> list[tuple[int, int, str]]:
  """Maximal runs of ``terms`` words, as (first piece, last piece + 1, basic term).

  Words of a run are joined by a space or a hyphen only: "red, blue" is two phrases.
  """
  phrases = []
  index = 0
  while index < len(pieces):
    if pieces[index].lower() not in terms:
      index += 1
      continue
    end = index + 1
    while (end + 1 < len(pieces) and pieces[end] in _JOINERS
           and pieces[end + 1].lower() in terms):
      end += 2
    phrases.append((index, end, terms[pieces[end - 1].lower()]))
    index = end
  return phrases


def swap_candidates(pieces: list[str]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
  """The swaps that can change a caption's meaning: pairs of piece spans.

  ``pieces``: the caption split by :func:`split`. Two phrases qualify when
  they are of one class, have different basic terms and are not coordinated
  (only commas, "and", "or", "to" between them).
  """
  candidates = []
  for terms in WORD_CLASSES.values():
    phrases = _phrases(pieces, terms)
    for i, (start_a, end_a, term_a) in enumerate(phrases):
      for start_b, end_b, term_b in phrases[i + 1:]:
        if term_a != term_b and not _COORDINATION.fullmatch("".join(pieces[end_a:start_b])):
          candidates.append(((start_a, end_a), (start_b, end_b)))
  return candidates


def split(caption: str) -> list[str]:
  """The caption as words and the text between them (joined, the caption again)."""
  return _PIECES.findall(caption)


def _swapped(pieces: list[str], span_a: tuple[int, int], span_b: tuple[int, int]) -> list[str]:
  """``pieces`` with the two spans exchanged, and "a"/"an" before each fixed."""
  (start_a, end_a), (start_b, end_b) = span_a, span_b
  moved_b, moved_a = pieces[start_b:end_b], pieces[start_a:end_a]
  result = (pieces[:start_a] + moved_b + pieces[end_a:start_b] + moved_a + pieces[end_b:])
  new_b_start = start_a + len(moved_b) + (start_b - end_a)
  for start in (start_a, new_b_start):
    if start >= 2 and result[start - 1] == " " and result[start - 2].lower() in _ARTICLES:
      article = "an" if result[start][0].lower() in "aeiou" else "a"
      old = result[start - 2]
      result[start - 2] = article.capitalize() if old[0].isupper() else article
  return result


def bigrams(caption: str) -> set[tuple[str, str]]:
  """The caption's pairs of neighbouring words, lower case."""
  words = [piece.lower() for piece in split(caption) if piece[0].isalpha()]
  return set(zip(words, words[1:]))


def known_bigrams(captions: Iterable[str]) -> frozenset[tuple[str, str]]:
  """Every pair of neighbouring words in ``captions``: what a swap may produce."""
  known: set[tuple[str, str]] = set()
  for caption in captions:
    known |= bigrams(caption)
  return frozenset(known)


def swap_attribute_words(caption: str, rng: np.random.Generator,
                         known: frozenset[tuple[str, str]] | None = None) -> str | None:
  """The caption with two attribute phrases of one class swapped, or None if none can be.

  Args:
    caption: any caption.
    rng: chooses among the possible swaps (uniformly).
    known: if given, only swaps whose every pair of neighbouring words occurs in
      the data's captions (:func:`known_bigrams`) qualify: a swap that reads
      unlike any caption ("a pink background" where backgrounds are never pink,
      "jet red", a (shape, colour) pair never captioned) could be told from
      the true caption by its text alone, without the image.

  Returns:
    E.g. "a blue circle left of a red square" for "a red circle left of a blue
    square"; None when no swap qualifies.
  """
  pieces = split(caption)
  results = []
  for span_a, span_b in swap_candidates(pieces):
    swapped = "".join(_swapped(pieces, span_a, span_b))
    if known is None or bigrams(swapped) <= known:
      results.append(swapped)
  if not results:
    return None
  return results[rng.integers(len(results))]
