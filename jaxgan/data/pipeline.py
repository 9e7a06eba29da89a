"""The grain input pipeline: shuffle, take this host's rows, decode and augment, tokenize, batch.

All hosts share one global order of examples (and of their random captions
and crops); each host reads and decodes only its own rows of every global
batch and produces that *local* part of it; :mod:`jaxgan.sharding` joins
the local parts into one global array. The iterator is a grain ``DatasetIterator``
whose state is saved beside the model state in every checkpoint, so a resumed
run continues with the very next batch.

Encoded images (every source but ``shapes``) are decoded, cropped and resized
in grain worker processes (``data.workers``); an unreadable image is skipped
and counted, and a data set with more than 1% of them stops the run with the
names of the first ones.
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol, Sequence

import logging

import grain
import jax
import numpy as np

from jaxgan.data import caption_swaps, decode
from jaxgan.data.files import DataError

_log = logging.getLogger("jaxgan")


class CaptionedSource(Protocol):
  """A random-access source of captioned images (``shapes``, ``imagefolder``, ...).

  Items are dicts with ``captions`` (list of non-empty str) and either
  ``image`` (uint8 [H, W, 3], already at the training size: ``shapes``) or
  ``encoded`` (the bytes of an image file, decoded in the grain workers), with
  ``name`` (for messages) and optionally ``box`` (a crop, see
  :mod:`jaxgan.data.decode`).
  """

  def __len__(self) -> int:
    ...

  def __getitem__(self, index: int) -> dict[str, Any]:
    ...

  def captions(self, index: int) -> list[str]:
    ...


class _Prepare(grain.transforms.RandomMap):
  """Picks a caption; decodes, crops, resizes and flips an encoded image.

  Every random choice comes from the example's grain RNG, in a fixed order
  (caption, crop offsets, flip, then the swap), so the same example at the
  same place of the data order gives the same input in a resumed run and with
  any number of workers. An unreadable image becomes an ``unreadable`` marker
  that :class:`_SkipUnreadable` drops and counts.

  With ``caption_edits``, the example also carries ``swapped``: its caption
  with two attribute words swapped or one replaced
  (:mod:`jaxgan.data.caption_swaps`), or None.
  """

  def __init__(self, image_size: int, random_crop: bool, flip: bool,
               caption_edits: caption_swaps.CaptionEdits | None = None):
    self._size = image_size
    self._random_crop = random_crop
    self._flip = flip
    self._caption_edits = caption_edits

  def random_map(self, element, rng: np.random.Generator):
    captions = element["captions"]
    if not captions:  # a TFDS record can have none; listing all at start would read every one
      return {"unreadable": f"{element.get('name', '?')}: no caption"}
    caption = captions[rng.integers(len(captions))]
    prepared = self._prepare_image(element, rng)
    if "unreadable" not in prepared:
      prepared["caption"] = caption
      if self._caption_edits is not None:
        # Drawn last, so turning swaps on changes no other choice.
        prepared["swapped"] = self._caption_edits(caption, rng)
    return prepared

  def _prepare_image(self, element, rng: np.random.Generator):
    if "encoded" not in element:  # rendered at the training size (shapes)
      return {"image": element["image"]}
    u_top, u_left, u_flip = rng.random(3)
    try:
      image = decode.load_rgb(element["encoded"])
    except decode.BadImageError as error:
      return {"unreadable": f"{element['name']}: {error}"}
    image = decode.prepare_image(image, self._size, box=element.get("box"),
                                 random_crop=self._random_crop, u_top=u_top, u_left=u_left,
                                 flip=self._flip and u_flip < 0.5)
    return {"image": image}


class _Tokenize(grain.transforms.Map):
  """Caption (and swapped caption) -> fixed-length ids and mask."""

  def __init__(self, tokenizer):
    self._tokenizer = tokenizer

  def map(self, element):
    if "unreadable" in element:
      return element
    if "swapped" not in element:
      ids, mask = self._tokenizer.encode([element["caption"]])
      return {"image": element["image"], "ids": ids[0], "mask": mask[0]}
    # A caption without a swap stands in for one (same shapes in every
    # batch); ``has_swap`` leaves it out of the loss.
    swapped = element["swapped"]
    ids, mask = self._tokenizer.encode([element["caption"], swapped or element["caption"]])
    return {"image": element["image"], "ids": ids[0], "mask": mask[0],
            "swap_ids": ids[1], "swap_mask": mask[1], "has_swap": np.bool_(swapped is not None)}


class UnreadableDataError(DataError):
  """More than the tolerated share of a data set's images could not be decoded."""


class _SkipUnreadable(grain.IterDataset):
  """Drops unreadable examples; each kept one carries ``skipped``, the drops just before it.

  It runs in the main process, after the workers, so the kept order does not
  depend on the number of workers and its state is its parent's.
  """

  def __init__(self, parent: grain.IterDataset, *, check_after: int, max_fraction: float):
    super().__init__(parent)
    self._check_after = check_after
    self._max_fraction = max_fraction

  def __iter__(self):
    return _SkipUnreadableIterator(self._parent.__iter__(), self._check_after,
                                   self._max_fraction)


class _SkipUnreadableIterator(grain.DatasetIterator):

  def __init__(self, parent, check_after: int, max_fraction: float):
    super().__init__(parent)
    self._check_after = check_after
    self._max_fraction = max_fraction
    self._seen = 0
    self._unreadable = 0
    self._warned: dict[str, None] = {}  # the files seen unreadable, in order

  def __next__(self):
    skipped = 0
    while True:
      element = next(self._parent)
      self._seen += 1
      if "unreadable" not in element:
        break
      skipped += 1
      self._unreadable += 1
      if element["unreadable"] not in self._warned:  # once per file, not every epoch
        self._warned[element["unreadable"]] = None
        _log.warning("skipped an unreadable image: %s", element["unreadable"])
    if self._unreadable and self._seen >= self._check_after:
      self._check()
    element["skipped"] = np.int32(skipped)
    return element

  def _check(self) -> None:
    if self._unreadable > self._max_fraction * self._seen:
      first = "; ".join(list(self._warned)[:3])
      raise UnreadableDataError(
          f"{self._unreadable} of the first {self._seen} images could not be "
          f"read (more than {self._max_fraction:.0%}); first: {first}. Fix or remove "
          f"them (the data folder is never modified).")

  def get_state(self):
    return self._parent.get_state()

  def set_state(self, state):
    self._parent.set_state(state)


class _HostRows(grain.MapDataset):
  """This host's rows of every global batch of a global example order.

  Element ``i`` is row ``i % local`` of this host's part of global batch
  ``i // local``: global position ``(i // local) * global + host * local + i % local``.
  The elements are only computed (decoded) when read, so each host decodes
  just its own rows.
  """

  def __init__(self, parent: grain.MapDataset, global_batch: int, local_batch: int,
               host: int):
    super().__init__(parent)
    self._global, self._local, self._host = global_batch, local_batch, host

  def __len__(self) -> int:
    return len(self._parent) // self._global * self._local

  def __str__(self) -> str:
    return f"HostRows(host={self._host}, rows={self._local} of {self._global})"

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    step, row = divmod(index, self._local)
    return self._parent[step * self._global + self._host * self._local + row]


def local_batch_size(global_batch_size: int, num_hosts: int | None = None) -> int:
  """The part of the global batch each host loads."""
  count = jax.process_count() if num_hosts is None else num_hosts
  if global_batch_size % count:
    raise ValueError(f"batch_size={global_batch_size} is not divisible by the "
                     f"{count} hosts of this run.")
  return global_batch_size // count


def _allow_grain_flags() -> None:
  """grain's worker start-up reads absl flags; outside an absl app they were never parsed."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def make_dataset(source: CaptionedSource, tokenizer, *, global_batch_size: int,
                 seed: int, image_size: int | None = None, random_crop: bool = False,
                 flip: bool = False, workers: int = 0, num_threads: int = 2,
                 prefetch: int = 4, max_unreadable: float = 0.01,
                 caption_edits: caption_swaps.CaptionEdits | None = None,
                 host: int | None = None, num_hosts: int | None = None) -> grain.IterDataset:
  """An endless, reshuffled-every-epoch dataset of tokenized local batches.

  Args:
    source: the random-access captioned source.
    tokenizer: turns a caption into fixed-length ``ids`` and ``mask``.
    global_batch_size: examples per step over all hosts.
    seed: shuffling, caption and augmentation seed (``data.seed``).
    image_size: the side encoded images are brought to (rendered ones already are).
    random_crop: DF-GAN's augmentation: load at 76/64 of the size, crop at random.
    flip: random horizontal flips (never for ``shapes``: left would become right).
    workers: grain worker processes that decode and tokenize (0: threads of
      this process).
    num_threads: grain read threads (per worker).
    prefetch: batches (per worker: examples) prepared ahead of the training step.
    max_unreadable: the share of unreadable images tolerated before failing.
    caption_edits: if given, each example also gets its caption edited by it
      (two attribute words swapped, or one replaced), D's negatives for
      ``loss.swap_weight``; see :class:`jaxgan.data.caption_swaps.CaptionEdits`.
    host, num_hosts: this host's index and the number of hosts (default: JAX's
      process index and count).

  Returns:
    A grain ``IterDataset`` of dicts ``image`` uint8 [b, H, W, 3], ``ids``
    int32 [b, L], ``mask`` bool [b, L] and ``skipped`` int32 [b] (unreadable
    images dropped before each example) with b the local batch size; with
    ``caption_edits`` also ``swap_ids``, ``swap_mask`` (the edited caption; the
    caption itself where none could be made) and ``has_swap`` bool [b].
  """
  host = jax.process_index() if host is None else host
  batch = local_batch_size(global_batch_size, num_hosts)
  if len(source) < global_batch_size:
    raise ValueError(f"The data source has {len(source)} examples, fewer than one "
                     f"batch of {global_batch_size}.")
  check_after = min(len(source), 1000)
  # One global order of examples, captions and augmentations, the same on every
  # host and for any number of hosts; each host then takes its rows of every
  # global batch. So N hosts train on exactly the batches one host would.
  dataset = (grain.MapDataset.source(source).seed(seed).shuffle().repeat(None)
             .random_map(_Prepare(image_size, random_crop, flip, caption_edits))
             .map(_Tokenize(tokenizer)))
  dataset = _HostRows(dataset, global_batch_size, batch, host)
  read_options = grain.ReadOptions(num_threads=num_threads,
                                   prefetch_buffer_size=prefetch * batch)
  dataset = dataset.to_iter_dataset(read_options)
  if workers:
    # Decoding in processes: PIL holds the GIL for much of a decode. grain
    # interleaves the workers' outputs back into the original order.
    _allow_grain_flags()
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=workers, per_worker_buffer_size=prefetch * batch))
  dataset = _SkipUnreadable(dataset, check_after=check_after, max_fraction=max_unreadable)
  return dataset.batch(batch, drop_remainder=True)


def vocabulary_captions(source: CaptionedSource, limit: int) -> Iterator[str]:
  """Captions of the first ``limit`` examples, for building a vocabulary."""
  for index in range(min(limit, len(source))):
    yield from source.captions(index)


def fixed_captions(source: CaptionedSource, count: int) -> Sequence[str]:
  """The first caption of the first ``count`` captioned examples: the run's fixed sample prompts."""
  prompts = []
  for index in range(len(source)):
    captions = source.captions(index)
    if captions:
      prompts.append(captions[0])
      if len(prompts) == count:
        break
  return prompts
