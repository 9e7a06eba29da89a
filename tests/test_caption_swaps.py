"""Binding negatives made from the caption text: which words move, which never do."""

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
      for shape, colour in shapes.HOLDOUT_PAIRS:
        for colour_word in shapes.COLOUR_WORDS[colour]:
          for shape_word in shapes.SHAPE_WORDS[shape]:
            assert f" {colour_word} {shape_word}" not in f" {swapped} "
  # Most two-colour captions get a swap; an object and the background rarely
  # can (backgrounds and objects take different colours, except white, black).
  assert counts[True, True] > 0.6 * (counts[True, True] + counts[True, False]), counts
  unfiltered = sum(caption_swaps.swap_attribute_words(c, rng) is not None
                   for i in range(5000, 5300) for c in source.captions(i))
  assert unfiltered > counts[True, True] + counts[False, True]


def test_the_pipeline_tokenizes_the_swap_beside_the_caption_and_draws_nothing_else():
  config = tiny.get_config()
  source = data.build_source(config)
  tokenizer = text.build_tokenizer(config.text, data.vocabulary_captions(source, 200))

  known = caption_swaps.known_bigrams(data.vocabulary_captions(source, 200))

  def first_batches(swap_bigrams):
    dataset = data.make_dataset(source, tokenizer, global_batch_size=8, seed=5,
                                num_threads=1, swap_bigrams=swap_bigrams)
    iterator = iter(dataset)
    return [next(iterator) for _ in range(2)]

  plain, swapped = first_batches(None), first_batches(known)
  assert set(plain[0]) == {"image", "ids", "mask", "skipped"}
  for without, batch in zip(plain, swapped):
    # Turning swaps on changes none of the other draws.
    for key in without:
      np.testing.assert_array_equal(batch[key], without[key], err_msg=key)
    assert batch["swap_ids"].shape == batch["ids"].shape == (8, config.text.max_length)
    assert batch["swap_mask"].dtype == bool and batch["has_swap"].dtype == bool
    assert batch["has_swap"].any()
    for row in range(8):
      caption_tokens = batch["ids"][row][batch["mask"][row]]
      swap_tokens = batch["swap_ids"][row][batch["swap_mask"][row]]
      if batch["has_swap"][row]:
        # Word-level tokens: the same multiset, another order.
        assert sorted(swap_tokens) == sorted(caption_tokens)
        assert list(swap_tokens) != list(caption_tokens)
      else:
        np.testing.assert_array_equal(swap_tokens, caption_tokens)
