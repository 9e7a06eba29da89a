"""Negatives made from the caption text: which words move or are replaced, which never are."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from configs import tiny
from jaxgan import data
from jaxgan import text
from jaxgan.data import caption_swaps, shapes
from jaxgan.data.shapes import ShapesSource


def _swap(caption: str, seed: int = 0) -> str | None:
  return caption_swaps.swap_attribute_words(caption, np.random.default_rng(seed))


@pytest.mark.parametrize("caption, expected", [
    # Two colours, one per object: the only swap.
    ("a red circle left of a blue square", "a blue circle left of a red square"),
    # Two sizes (one colour word, on both): sizes swap; case and punctuation stay.
    ("A Tiny green star; a HUGE green ring.", "A HUGE green star; a Tiny green ring."),
    # A phrase moves whole ("navy blue", "blue-green"), modifiers stay ("dark").
    ("a navy blue circle on a dark red background", "a red circle on a dark navy blue background"),
    ("a blue-green bird with a yellow beak", "a yellow bird with a blue-green beak"),
    # The articles follow the words after them.
    ("An orange cat and a black dog", "A black cat and an orange dog"),
])
def test_swaps_exchange_two_phrases_of_one_class(caption, expected):
  assert _swap(caption) == expected


@pytest.mark.parametrize("caption", [
    "a red circle on the left",                    # one colour named
    "a red circle and a crimson square",           # two words, one colour
    "a grey square above a gray ring",             # spellings of one colour
    "a navy circle and a blue square",             # navy is a blue
    "a large block and a big hoop",                # two words, one size
    # Coordinated: swapping them says the same.
    "a bird with black and white wings",
    "a small to medium sized bird",
    "stripes: red, white",
    "an orangeish blob beside a bluish one",       # no lexicon word whole
    "",
])
def test_nothing_to_swap_gives_none(caption):
  assert _swap(caption) is None


@pytest.mark.parametrize("caption, allowed", [
    # One phrase replaced by a word of its class whose basic term is not
    # named: never a synonym ("scarlet"), never the other object's colour.
    ("a red circle left of a blue square",
     {"a red circle left of a blue triangle", "an orange circle left of a blue square",
      "a red circle left of a green square"}),
    # Case follows the word replaced; "a"/"an" follow the new word.
    ("A Tiny disc", {"A Huge disc", "A Tiny hexagon"}),
    ("a red disc", {"an orange disc", "an amber disc", "a blue disc", "a red oval"}),
])
def test_replacements_change_one_phrase_to_another_term_of_its_class(caption, allowed):
  rng = np.random.default_rng(0)
  edits = {caption_swaps.replace_attribute_word(caption, rng) for _ in range(2000)}
  assert allowed <= edits
  for edit in edits:
    changed = [(a, b) for a, b in zip(caption.split(), edit.split()) if a != b]
    assert len(edit.split()) == len(caption.split())
    changed_words = [(a, b) for a, b in changed if a.lower() not in ("a", "an")]
    assert len(changed_words) == 1, edit
    old, new = (word.lower() for word in changed_words[0])
    for terms in caption_swaps.REPLACED_CLASSES.values():
      if old in terms:
        assert new in terms and terms[new] != terms[old], edit
        named = {terms[w.lower()] for w in caption.split() if w.lower() in terms}
        assert terms[new] not in named, edit


def test_replacements_need_a_lexicon_word_and_known_word_pairs():
  rng = np.random.default_rng(0)
  assert caption_swaps.replace_attribute_word("a bird on a branch", rng) is None
  known = caption_swaps.known_bigrams(["a red circle", "a blue square", "a red square"])
  # Only "red" <-> "blue" and "circle" <-> "square" make known pairs here:
  # "a blue circle" has ("blue", "circle"), never seen, so only the shape moves.
  edits = {caption_swaps.replace_attribute_word("a red circle", rng, known) for _ in range(50)}
  assert edits == {"a red square"}


def test_caption_edits_draw_either_kind_and_swaps_alone_as_before():
  caption = "a red circle left of a blue square"
  both = caption_swaps.CaptionEdits(None, ("swap", "replace"))
  rng = np.random.default_rng(1)
  edits = [both(caption, rng) for _ in range(400)]
  swapped = "a blue circle left of a red square"
  assert 0.35 < edits.count(swapped) / len(edits) < 0.65
  assert len(set(edits)) > 20
  # Swaps alone draw exactly what swap_attribute_words draws, number for number.
  swaps = caption_swaps.CaptionEdits(None, ("swap",))
  first, second = np.random.default_rng(2), np.random.default_rng(2)
  for text in (caption, "A Tiny green star; a HUGE green ring.", "a red circle"):
    assert swaps(text, first) == caption_swaps.swap_attribute_words(text, second)
  assert first.integers(1 << 30) == second.integers(1 << 30)
  # With no swap to make, "both" falls back to a replacement.
  assert both("a red circle", rng) not in (None, "a red circle")
  with pytest.raises(ValueError, match="non-empty subset"):
    caption_swaps.CaptionEdits(None, ("shuffle",))


@pytest.fixture(scope="module")
def shapes_captions():
  """Training captions to learn the word pairs from, and others to swap."""
  source = ShapesSource("train", image_size=16, num_examples=100_000, seed=3)
  known = caption_swaps.known_bigrams(data.vocabulary_captions(source, 5000))
  return source, known


def test_swaps_of_shapes_captions_read_like_captions_and_bind_other_things(shapes_captions):
  source, known = shapes_captions
  rng = np.random.default_rng(0)
  counts = collections.Counter()
  for index in range(5000, 5300):
    attributes = source.attributes(index)
    two_colours = (int(attributes["num_objects"]) == 2
                   and attributes["colour"][0] != attributes["colour"][1])
    for caption in source.captions(index):
      swapped = caption_swaps.swap_attribute_words(caption, rng, known)
      counts[two_colours, swapped is not None] += 1
      if swapped is None:
        continue
      assert swapped != caption
      # The same words in another order, and only word pairs the data's
      # captions have: nothing in the text tells it from a true caption.
      assert sorted(swapped.split()) == sorted(caption.split())
      assert caption_swaps.bigrams(swapped) <= known
      # No held-out (shape, colour) pair is ever written, even as a negative.
      assert not _writes_a_holdout_pair(swapped)
  # Most two-colour captions get a swap; an object and the background rarely
  # can (backgrounds and objects take different colours, except white, black).
  assert counts[True, True] > 0.6 * (counts[True, True] + counts[True, False]), counts
  unfiltered = sum(caption_swaps.swap_attribute_words(c, rng) is not None
                   for i in range(5000, 5300) for c in source.captions(i))
  assert unfiltered > counts[True, True] + counts[False, True]


def _writes_a_holdout_pair(caption: str) -> bool:
  for shape, colour in shapes.HOLDOUT_PAIRS:
    for colour_word in shapes.COLOUR_WORDS[colour]:
      for shape_word in shapes.SHAPE_WORDS[shape]:
        if f" {colour_word} {shape_word}" in f" {caption} ":
          return True
  return False


def test_replacements_of_shapes_captions_read_like_captions_and_reach_every_class(
    shapes_captions):
  source, known = shapes_captions
  rng = np.random.default_rng(0)
  classes = collections.Counter()
  for index in range(5000, 5200):
    for caption in source.captions(index):
      edit = caption_swaps.replace_attribute_word(caption, rng, known)
      classes["none"] += edit is None
      if edit is None:
        # Every caption names a colour; the few with a word pair that the
        # vocabulary's captions lack get no edit, as with swaps.
        assert not caption_swaps.bigrams(caption) <= known
        continue
      assert edit != caption
      assert caption_swaps.bigrams(edit) <= known
      assert not _writes_a_holdout_pair(edit)
      new_words = set(caption_swaps.split(edit.lower())) - set(caption_swaps.split(caption.lower()))
      for name, terms in caption_swaps.REPLACED_CLASSES.items():
        classes[name] += bool(new_words & set(terms))
  # A phrase is drawn uniformly: shapes captions name one or two colours per
  # object plus the background's, a size and a shape per object.
  assert classes["none"] < 0.1 * 1000, classes
  total = classes["colour"] + classes["size"] + classes["shape"]
  assert total == 1000 - classes["none"], classes
  assert classes["shape"] > 0.15 * total and classes["size"] > 0.15 * total, classes


@pytest.mark.parametrize("kinds", [("swap",), ("swap", "replace")])
def test_the_pipeline_tokenizes_the_edit_beside_the_caption_and_draws_nothing_else(kinds):
  config = tiny.get_config()
  source = data.build_source(config)
  tokenizer = text.build_tokenizer(config.text, data.vocabulary_captions(source, 200))

  known = caption_swaps.known_bigrams(data.vocabulary_captions(source, 200))

  def first_batches(caption_edits):
    dataset = data.make_dataset(source, tokenizer, global_batch_size=8, seed=5,
                                num_threads=1, caption_edits=caption_edits)
    iterator = iter(dataset)
    return [next(iterator) for _ in range(2)]

  plain, edited = first_batches(None), first_batches(caption_swaps.CaptionEdits(known, kinds))
  assert set(plain[0]) == {"image", "ids", "mask", "skipped"}
  replaced = 0
  for without, batch in zip(plain, edited):
    # Turning edits on changes none of the other draws.
    for key in without:
      np.testing.assert_array_equal(batch[key], without[key], err_msg=key)
    assert batch["swap_ids"].shape == batch["ids"].shape == (8, config.text.max_length)
    assert batch["swap_mask"].dtype == bool and batch["has_swap"].dtype == bool
    assert batch["has_swap"].any()
    for row in range(8):
      caption_tokens = batch["ids"][row][batch["mask"][row]]
      swap_tokens = batch["swap_ids"][row][batch["swap_mask"][row]]
      if not batch["has_swap"][row]:
        np.testing.assert_array_equal(swap_tokens, caption_tokens)
        continue
      assert list(swap_tokens) != list(caption_tokens)
      if sorted(swap_tokens) == sorted(caption_tokens):
        continue  # word-level tokens: a swap is the same multiset, another order
      # Otherwise a replacement: one word (and maybe its article) changed.
      assert "replace" in kinds
      assert len(swap_tokens) == len(caption_tokens)
      assert 1 <= np.sum(swap_tokens != caption_tokens) <= 2
      replaced += 1
  assert ("replace" in kinds) == (replaced > 0)
