"""``tfds:NAME``: a prepared TensorFlow Datasets data set, read without TensorFlow.

The data set must have been prepared in the ArrayRecord format (``tfds build
NAME --file_format=array_record``, on any machine, TensorFlow needed there
only if the data set's build code needs it). Reading goes through
``tfds.data_source``'s random access, from the prepared files alone: the
builder is rebuilt from ``dataset_info.json`` and ``features.json``, so even
data sets whose build code imports TensorFlow (``coco_captions``) read without
it. Images are not decoded by TFDS (``SkipDecoding``): their bytes go to
jaxgan's decoder in the grain workers, like every other source.

``data.caption_column`` names the caption feature, a path for nested features
(``captions/text`` in ``coco_captions``); it may be a string or a sequence of
strings. Left at its default (``text``) on a data set without such a feature,
the data set's only text feature is used.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from jaxgan.data.files import DataError, clean_captions

_log = logging.getLogger("jaxgan")

DEFAULT_CAPTION_KEY = "text"


def _feature_paths(features, kind: type, prefix: str = "") -> list[str]:
  """Slash-joined paths of the features of class ``kind`` (through dicts and sequences)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if isinstance(features, kind):
    return [prefix]
  if isinstance(features, tfds.features.Sequence):
    return _feature_paths(features.feature, kind, prefix)
  if isinstance(features, tfds.features.FeaturesDict):
    return [path for key in sorted(features.keys())
            for path in _feature_paths(features[key], kind, f"{prefix}/{key}".lstrip("/"))]
  return []


def _lookup(example: dict[str, Any], path: str) -> Any:
  value = example
  for part in path.split("/"):
    value = value[part]
  return value


def _texts(value: Any) -> list[str]:
  """A decoded Text feature (bytes, str, or a sequence of them) as a list of str."""
  if isinstance(value, (bytes, str)):
    value = [value]
  return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)
          for v in value]


def _builder(name: str, data_dir: str | None):
  """The read-only builder of a prepared data set, or DataError saying how to prepare it."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core import read_only_builder  # pylint: disable=g-import-not-at-top
  where = data_dir or "the default TFDS data directory (TFDS_DATA_DIR or ~/tensorflow_datasets)"
  try:
    # From the files only: a code builder (tfds.builder) may import TensorFlow.
    builder = read_only_builder.builder_from_files(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise DataError(
        f"tfds:{name}: not prepared under {where}. Prepare it once with "
        f"`tfds build {name} --file_format=array_record"
        f"{' --data_dir=' + data_dir if data_dir else ''}` (TensorFlow is needed "
        f"only there); --config.data.path is the TFDS data directory.") from None
  file_format = str(getattr(builder.info.file_format, "value", builder.info.file_format))
  if file_format != "array_record":
    raise DataError(
        f"tfds:{name} under {where} is stored as {file_format}, which has no random "
        f"access; rebuild it with `tfds build {name} --file_format=array_record`.")
  return builder


class TfdsSource:
  """Random access to one split of a prepared TFDS data set, a grain data source.

  Items are dicts ``encoded`` (the image's stored bytes), ``captions`` (list of
  str) and ``name``, as :class:`jaxgan.data.files.FileSource` serves.
  """

  def __init__(self, name: str, split: str = "train", data_dir: str | None = None,
               caption_key: str = DEFAULT_CAPTION_KEY):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    data_dir = os.path.abspath(os.path.expanduser(data_dir)) if data_dir else None
    if data_dir and not os.path.isdir(data_dir):
      raise DataError(f"tfds:{name}: data directory {data_dir!r} does not exist.")
    builder = _builder(name, data_dir)
    features = builder.info.features
    self.caption_key = self._caption_key(name, features, caption_key)
    self.image_key = self._image_key(name, features)
    splits = list(builder.info.splits)
    if split not in splits:
      raise DataError(f"tfds:{name} has no {split!r} split; it has {', '.join(splits)}.")
    decoders: dict[str, Any] = tfds.decode.SkipDecoding()
    for part in reversed(self.image_key.split("/")):
      decoders = {part: decoders}
    self._examples = builder.as_data_source(split, decoders=decoders)
    if not len(self._examples):
      raise DataError(f"tfds:{name} ({split}) has no example.")
    self._name = name
    self._split = split
    self._has_filename = "image/filename" in features.keys()
    self.root = data_dir or str(builder.data_dir)
    self.description = f"tfds:{name} {self.root} ({split})"

  @staticmethod
  def _caption_key(name: str, features, caption_key: str) -> str:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    texts = _feature_paths(features, tfds.features.Text)
    if caption_key in texts:
      return caption_key
    if caption_key == DEFAULT_CAPTION_KEY and len(texts) == 1:
      _log.info("tfds:%s: captions from its only text feature, %r.", name, texts[0])
      return texts[0]
    raise DataError(f"tfds:{name} has no text feature {caption_key!r} (text features: "
                    f"{', '.join(texts) or 'none'}); set --config.data.caption_column.")

  @staticmethod
  def _image_key(name: str, features) -> str:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    images = _feature_paths(features, tfds.features.Image)
    if "image" in images or len(images) == 1:
      return "image" if "image" in images else images[0]
    raise DataError(f"tfds:{name}: expected one image feature, found "
                    f"{', '.join(images) or 'none'}.")

  def __len__(self) -> int:
    return len(self._examples)

  def __repr__(self) -> str:
    return f"TfdsSource({self.description}, {len(self)} examples)"

  def _item(self, index: int, example: dict[str, Any]) -> dict[str, Any]:
    if self._has_filename:
      name = _texts(example["image/filename"])[0]
    else:
      name = f"{self._name}/{self._split}[{index}]"
    return {"encoded": bytes(_lookup(example, self.image_key)),
            "captions": clean_captions(_texts(_lookup(example, self.caption_key))),
            "name": name}

  def name(self, index: int) -> str:
    return self[index]["name"]

  def captions(self, index: int) -> list[str]:
    return self[index]["captions"]

  def __getitem__(self, index: Any) -> dict[str, Any]:
    index = int(index)
    return self._item(index, self._examples[index])


def tfds_source(name: str, split: str = "train", data_dir: str | None = None,
                caption_key: str = DEFAULT_CAPTION_KEY) -> TfdsSource:
  """Opens ``split`` of the prepared TFDS data set ``name``.

  Args:
    name: the TFDS name, optionally with config and version
      (``coco_captions``, ``coco_captions/2017:1.1.0``).
    split: the TFDS split ("train", "test", "validation", ...).
    data_dir: the TFDS data directory (default: TFDS's own).
    caption_key: the caption feature's path (see the module docstring).

  Returns:
    A :class:`TfdsSource`.

  Raises:
    DataError: the data set is not prepared (with the command that prepares
      it), not in ArrayRecord format, has no such split or feature.
  """
  return TfdsSource(name, split, data_dir=data_dir, caption_key=caption_key)
