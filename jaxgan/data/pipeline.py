"""The grain input pipeline: shard per host, shuffle, pick a caption, tokenize, batch, prefetch.

Each host reads only its own shard of the source (``process_index::process_count``)
and produces its *local* part of the global batch; :mod:`jaxgan.sharding` joins
the local parts into one global array. The iterator is a grain ``DatasetIterator``
whose state is saved beside the model state in every checkpoint, so a resumed
run continues with the very next batch.
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol, Sequence

import grain
import jax
import numpy as np


class CaptionedSource(Protocol):
  """A random-access source of captioned images (``shapes``, ``imagefolder``)."""

  def __len__(self) -> int:
    ...

  def __getitem__(self, index: int) -> dict[str, Any]:
    """Returns at least ``image`` (uint8 [H, W, 3]) and ``captions`` (list of str)."""
    ...

  def captions(self, index: int) -> list[str]:
    ...


class _PickCaption(grain.transforms.RandomMap):
  """Picks one of the example's phrasings: a new one each time the image comes back."""

  def random_map(self, element, rng: np.random.Generator):
    captions = element["captions"]
    return {"image": element["image"],
            "caption": captions[rng.integers(len(captions))]}


class _Tokenize(grain.transforms.Map):

  def __init__(self, tokenizer):
    self._tokenizer = tokenizer

  def map(self, element):
    ids, mask = self._tokenizer.encode([element["caption"]])
    return {"image": element["image"], "ids": ids[0], "mask": mask[0]}


def local_batch_size(global_batch_size: int) -> int:
  """The part of the global batch this host loads."""
  count = jax.process_count()
  if global_batch_size % count:
    raise ValueError(f"batch_size={global_batch_size} is not divisible by the "
                     f"{count} hosts of this run.")
  return global_batch_size // count


def make_dataset(source: CaptionedSource, tokenizer, *, global_batch_size: int,
                 seed: int, num_threads: int = 2,
                 prefetch: int = 4) -> grain.IterDataset:
  """An endless, reshuffled-every-epoch dataset of tokenized local batches.

  Args:
    source: the random-access captioned source.
    tokenizer: turns a caption into fixed-length ``ids`` and ``mask``.
    global_batch_size: examples per step over all hosts.
    seed: shuffling and caption-choice seed (the run's seed).
    num_threads: grain read threads (rendering and decoding run there).
    prefetch: batches prepared ahead of the training step.

  Returns:
    A grain ``IterDataset`` of dicts ``image`` uint8 [b, H, W, 3], ``ids``
    int32 [b, L], ``mask`` bool [b, L] with b the local batch size.
  """
  batch = local_batch_size(global_batch_size)
  dataset = grain.MapDataset.source(source)
  # Shard before shuffling so each host sees a disjoint, fixed part of the data.
  dataset = dataset[jax.process_index()::jax.process_count()]
  if len(dataset) < batch:
    raise ValueError(f"The data source has {len(dataset)} examples on this host, "
                     f"fewer than one local batch of {batch}.")
  dataset = (dataset.seed(seed).shuffle().repeat(None)
             .random_map(_PickCaption()).map(_Tokenize(tokenizer))
             .batch(batch, drop_remainder=True))
  read_options = grain.ReadOptions(num_threads=num_threads,
                                   prefetch_buffer_size=prefetch)
  return dataset.to_iter_dataset(read_options)


def vocabulary_captions(source: CaptionedSource, limit: int) -> Iterator[str]:
  """Captions of the first ``limit`` examples, for building a vocabulary."""
  for index in range(min(limit, len(source))):
    yield from source.captions(index)


def fixed_captions(source: CaptionedSource, count: int) -> Sequence[str]:
  """The first caption of the first ``count`` examples: the run's fixed sample prompts."""
  return [source.captions(index)[0] for index in range(count)]
