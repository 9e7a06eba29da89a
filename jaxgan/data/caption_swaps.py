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

A second kind of edit, a replacement, makes attribute negatives: one colour,
size or shape word replaced by a word of its class with another basic term
that the caption does not already name ("a red circle" -> "a red triangle";
SugarCrepe's replace-att / replace-obj negatives, made from a lexicon instead
of a language model), under the same word-pair rule. Random captions seldom
differ from an image's own in one attribute alone (a shape, say), so they never
make D read it; a replacement does. :class:`CaptionEdits` draws either kind.
"""

from __future__ import annotations

import dataclasses
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
# Nouns of plane shapes, for replacements only: swapping two of them in "a red
# circle and a red square" says the same thing, where swapping colours never
# does between two phrases that differ.
SHAPE_TERMS = {
    **dict.fromkeys(("circle", "disc", "disk"), "circle"),
    **dict.fromkeys(("oval", "ellipse"), "oval"),
    **dict.fromkeys(("square", "block"), "square"),
    "rectangle": "rectangle",
    "triangle": "triangle",
    **dict.fromkeys(("diamond", "rhombus", "lozenge"), "diamond"),
    "star": "star",
    "pentagon": "pentagon",
    "hexagon": "hexagon",
    "octagon": "octagon",
    **dict.fromkeys(("cross", "plus"), "cross"),
    **dict.fromkeys(("ring", "hoop", "donut", "doughnut"), "ring"),
    "heart": "heart",
    "crescent": "crescent",
}
# What swaps exchange, and what replacements replace.
WORD_CLASSES = {"colour": COLOUR_TERMS, "size": SIZE_TERMS}
REPLACED_CLASSES = {"colour": COLOUR_TERMS, "size": SIZE_TERMS, "shape": SHAPE_TERMS}
EDIT_KINDS = ("swap", "replace")
# ``loss.swap_edits`` -> the kinds of edit drawn.
_EDIT_SPECS = {"swap": ("swap",), "replace": ("replace",), "both": EDIT_KINDS}

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


def _fix_articles(pieces: list[str], starts: Iterable[int]) -> list[str]:
  """"a"/"an" before each of ``starts`` made to fit the word there (in place)."""
  for start in starts:
    if _article_before(pieces, start):
      article = "an" if pieces[start][0].lower() in "aeiou" else "a"
      old = pieces[start - 2]
      pieces[start - 2] = article.capitalize() if old[0].isupper() else article
  return pieces


def _swapped(pieces: list[str], span_a: tuple[int, int], span_b: tuple[int, int]) -> list[str]:
  """``pieces`` with the two spans exchanged, and "a"/"an" before each fixed."""
  (start_a, end_a), (start_b, end_b) = span_a, span_b
  moved_b, moved_a = pieces[start_b:end_b], pieces[start_a:end_a]
  result = (pieces[:start_a] + moved_b + pieces[end_a:start_b] + moved_a + pieces[end_b:])
  new_b_start = start_a + len(moved_b) + (start_b - end_a)
  return _fix_articles(result, (start_a, new_b_start))


def _in_case_of(word: str, model: str) -> str:
  """``word`` written in the case of ``model`` ("HUGE", "Tiny", "red")."""
  if model.isupper() and len(model) > 1:
    return word.upper()
  return word.capitalize() if model[0].isupper() else word


def edit_kinds(spec: str) -> tuple[str, ...]:
  """``loss.swap_edits`` ("swap", "replace" or "both") as :class:`CaptionEdits` kinds."""
  if spec not in _EDIT_SPECS:
    raise ValueError(f"config.loss.swap_edits={spec!r} must be one of {sorted(_EDIT_SPECS)}: "
                     f"'swap' exchanges two attribute words of a caption, 'replace' "
                     f"replaces one, 'both' draws either.")
  return _EDIT_SPECS[spec]


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


def _swaps(caption: str, known: frozenset[tuple[str, str]] | None) -> list[str]:
  """Every qualifying swap of ``caption`` (see :func:`swap_attribute_words`)."""
  pieces = split(caption)
  swapped = ("".join(_swapped(pieces, span_a, span_b))
             for span_a, span_b in swap_candidates(pieces))
  return [edit for edit in swapped if known is None or bigrams(edit) <= known]


def _article_before(pieces: list[str], start: int) -> bool:
  """Whether an "a"/"an" stands right before the word at ``start``."""
  return start >= 2 and pieces[start - 1] == " " and pieces[start - 2].lower() in _ARTICLES


def _replacements(caption: str, known: frozenset[tuple[str, str]] | None) -> list[list[str]]:
  """The qualifying replacements of ``caption``, one list per phrase that has any.

  With ``known``, the caption's own word pairs must be known and so must those
  a replacement makes (with the word before and after it, and its article's):
  together, every pair of the edit. Only the changed pairs are looked up per
  candidate word, which keeps this cheap enough for the input pipeline.
  """
  pieces = split(caption)
  if known is not None and not bigrams(caption) <= known:
    return []
  word_indices = [i for i, piece in enumerate(pieces) if piece[0].isalpha()]
  per_phrase = []
  for terms in REPLACED_CLASSES.values():
    phrases = _phrases(pieces, terms)
    named = {term for _, _, term in phrases}
    # Only a term the caption does not name: "a blue circle on a blue
    # background" would be told apart by its text where colours never repeat.
    words = sorted(word for word, term in terms.items() if term not in named)
    for start, end, _ in phrases:
      before = [pieces[i].lower() for i in word_indices if i < start][-2:]
      after = [pieces[i].lower() for i in word_indices if i >= end][:1]
      article = _article_before(pieces, start)
      edits = []
      for word in words:
        if known is not None:
          if article:
            before[-1] = "an" if word[0] in "aeiou" else "a"
          context = before + [word] + after
          if not set(zip(context, context[1:])) <= known:
            continue
        replaced = pieces[:start] + [_in_case_of(word, pieces[start])] + pieces[end:]
        edits.append("".join(_fix_articles(replaced, (start,))))
      if edits:
        per_phrase.append(edits)
  return per_phrase


def replace_attribute_word(caption: str, rng: np.random.Generator,
                           known: frozenset[tuple[str, str]] | None = None) -> str | None:
  """The caption with one colour, size or shape phrase replaced, or None if none can be.

  The phrase is drawn uniformly among those that have a qualifying
  replacement, then the word among those: a word of the phrase's class whose
  basic term the caption does not name (so "crimson" never replaces "red",
  and no colour is named twice), and with ``known`` only edits whose every
  pair of neighbouring words occurs in the data's captions (see
  :func:`swap_attribute_words`).

  Returns:
    E.g. "a red triangle left of a blue square" for "a red circle left of a
    blue square"; None when no replacement qualifies.
  """
  return CaptionEdits(known, ("replace",))(caption, rng)


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
  results = _swaps(caption, known)
  if not results:
    return None
  return results[rng.integers(len(results))]


@dataclasses.dataclass(frozen=True)
class CaptionEdits:
  """Draws one edited caption, D's negative for the image of the caption.

  Attributes:
    known: the data's pairs of neighbouring words (:func:`known_bigrams`);
      only edits made of them qualify. None: any edit does.
    kinds: which edits to draw from, of :data:`EDIT_KINDS`. With both, the
      kind is drawn uniformly among those the caption has an edit of, then
      the edit as :func:`swap_attribute_words` / :func:`replace_attribute_word` do.
  """
  known: frozenset[tuple[str, str]] | None
  kinds: tuple[str, ...] = ("swap",)

  def __post_init__(self):
    unknown = set(self.kinds) - set(EDIT_KINDS)
    if not self.kinds or unknown:
      raise ValueError(f"caption edit kinds must be a non-empty subset of {EDIT_KINDS}, "
                       f"got {self.kinds!r}")

  def __call__(self, caption: str, rng: np.random.Generator) -> str | None:
    """An edit of ``caption``, or None if it has none."""
    options = []
    if "swap" in self.kinds:
      swaps = _swaps(caption, self.known)
      if swaps:
        options.append([swaps])
    if "replace" in self.kinds:
      per_phrase = _replacements(caption, self.known)
      if per_phrase:
        options.append(per_phrase)
    if not options:
      return None
    # A choice is drawn only where there is one, so that swaps alone draw
    # what they drew before replacements existed (runs resume alike).
    groups = options[rng.integers(len(options))] if len(options) > 1 else options[0]
    edits = groups[rng.integers(len(groups))] if len(groups) > 1 else groups[0]
    return edits[rng.integers(len(edits))]
