"""Binding negatives made from the caption text: which words move, which never do."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from configs import tiny
from jaxgan import data
from jaxgan import text
from jaxgan.data import caption_swaps
from jaxgan.data.shapes import ShapesSource


def _swap(caption: str, seed: int = 0) -> str | None:
  return caption_swaps.swap_attribute_words(caption, np.random.default_rng(seed))


@pytest.mark.parametrize("caption, expected", [
    # Two colours, one per object: the only swap.
    ("a red circle left of a blue square", "a blue circle left of a red square"),
    # Two sizes (one colour word, on both): sizes swap; case and punctuation stay.
    ("A Tiny green star; a HUGE green ring.", "A HUGE green star; a Tiny green ring."),
    # A phrase moves whole ("navy blue" is blue), modifiers stay ("dark").
    ("a navy blue circle on a dark red background", "a red circle on a dark navy blue background"),
    # Words of a class in a list are phrases of their own.
    ("stripes: red, white", "stripes: white, red"),
])
def test_swaps_exchange_two_phrases_of_one_class(caption, expected):
  assert _swap(caption) == expected


@pytest.mark.parametrize("caption", [
    "a red circle on the left",                    # one colour named
    "a red circle and a crimson square",           # two words, one colour
    "a grey square above a gray ring",             # spellings of one colour
    "a large block and a big hoop",                # two words, one size
    "an orangeish blob beside a bluish one",       # no lexicon word whole
    "",
])
def test_nothing_to_swap_gives_none(caption):
  assert _swap(caption) is None


def test_every_swap_of_a_shapes_caption_keeps_its_words_and_changes_its_meaning():
  source = ShapesSource("train", image_size=16, num_examples=300, seed=3)
  rng = np.random.default_rng(0)
  counts = collections.Counter()
  for index in range(len(source)):
    for caption in source.captions(index):
      swapped = caption_swaps.swap_attribute_words(caption, rng)
      counts["captions"] += 1
      if swapped is None:
        continue
      counts["swapped"] += 1
      assert swapped != caption
      # The same words, in another order (so no synonym trick tells it apart).
      assert sorted(swapped.split()) == sorted(caption.split())
  # Almost every caption names an object colour and a background colour that
  # differ; those without one say "dark" for a black background.
  assert counts["swapped"] > 0.9 * counts["captions"], counts


def test_the_pipeline_tokenizes_the_swap_beside_the_caption_and_draws_nothing_else():
  config = tiny.get_config()
  source = data.build_source(config)
  tokenizer = text.build_tokenizer(config.text, data.vocabulary_captions(source, 200))

  def first_batches(swap_words):
    dataset = data.make_dataset(source, tokenizer, global_batch_size=8, seed=5,
                                num_threads=1, swap_words=swap_words)
    iterator = iter(dataset)
    return [next(iterator) for _ in range(2)]

  plain, swapped = first_batches(False), first_batches(True)
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
