"""FID of a run trained on real data, against a split of its source (DF-GAN's protocol).

The reference statistics (``mu``, ``sigma`` of the FID Inception features of
every readable image of the split) are computed once and cached as ``.npz``,
keyed by the source, the split, the image size and the weights file. The real
images are prepared exactly as the pipeline prepares them at test time
(:func:`jaxgan.data.decode.prepare_image` without random crop or flip: the
box crop, the short side resized to the image size, the centre square).

The generated side follows DF-GAN: every image of the split gives its
captions; each of ``repeats`` passes draws one of them at random per image and
generates one image for it; FID compares all generated images with the
reference.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Callable, Iterator

import ml_collections
import numpy as np

from jaxgan.metrics import frechet

# The evaluation split of every source but shapes.
DEFAULT_SPLIT = "test"


def file_digest(path: str) -> str:
  """First 10 hex digits of the file's SHA-256."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()[:10]


def real_batches(source, image_size: int, batch_size: int,
                 skipped: list[str]) -> Iterator[np.ndarray]:
  """The split's images at test-time preparation, uint8 ``[b, size, size, 3]`` batches.

  Unreadable images are left out and their ``name: error`` appended to ``skipped``.
  """
  from jaxgan.data import decode  # pylint: disable=g-import-not-at-top
  batch = []
  for index in range(len(source)):
    item = source[index]
    if "image" in item:  # rendered at the training size
      batch.append(np.asarray(item["image"], np.uint8))
    else:
      try:
        image = decode.load_rgb(item["encoded"])
      except decode.BadImageError as error:
        skipped.append(f"{item.get('name', index)}: {error}")
        continue
      batch.append(decode.prepare_image(image, image_size, box=item.get("box")))
    if len(batch) == batch_size:
      yield np.stack(batch)
      batch = []
  if batch:
    yield np.stack(batch)


def _source_key(config: ml_collections.ConfigDict, split: str, count: int) -> str:
  path = config.data.get("path", "")
  where = os.path.abspath(os.path.expanduser(path)) if path else ""
  identity = f"{config.data.source}|{where}|{split}|{count}"
  return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:10]


def reference_path(cache_dir: str, config: ml_collections.ConfigDict, split: str,
                   count: int, weights_path: str) -> str:
  """Where the reference statistics of ``split`` of the config's source are cached."""
  name = re.sub(r"[^A-Za-z0-9]+", "-", config.data.source).strip("-")
  return os.path.join(cache_dir, f"fid_ref_{name}_{split}_{config.image_size}px_"
                                 f"{_source_key(config, split, count)}_"
                                 f"{file_digest(weights_path)}.npz")


def reference_statistics(config: ml_collections.ConfigDict, split: str, fid_features,
                         weights_path: str, cache_dir: str, *, batch_size: int = 50,
                         log: Callable[[str], None] | None = None
                         ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
  """Inception statistics of ``split`` of the config's source, from the cache or computed.

  Args:
    config: a run config (``data.*``, ``image_size``).
    split: the split (``test``).
    fid_features: a callable from uint8 images to [N, 2048] features
      (:class:`jaxgan.metrics.inception.InceptionFeatures`).
    weights_path: the weights file ``fid_features`` uses (part of the cache key).
    cache_dir: the cache directory.
    batch_size: images decoded per feature call.
    log: optional ``callable(str)`` for progress lines.

  Returns:
    ``(mu, sigma, info)``; ``info`` has ``path``, ``count`` (images used),
    ``skipped`` (unreadable ones, ``name: error``), ``source``, ``cached``.

  Raises:
    DataError: the split cannot be read.
    ValueError: fewer than two readable images.
  """
  from jaxgan.data import build_source  # pylint: disable=g-import-not-at-top
  source = build_source(config, split)
  path = reference_path(cache_dir, config, split, len(source), weights_path)
  sidecar = path[:-len(".npz")] + ".json"
  if os.path.exists(path) and os.path.exists(sidecar):
    with open(sidecar) as f:
      info = dict(json.load(f), path=path, cached=True)
    return (*frechet.load_statistics(path), info)
  if log is not None:
    log(f"computing FID reference statistics of {len(source)} {split} images "
        f"({getattr(source, 'description', config.data.source)})")
  skipped: list[str] = []
  features = [fid_features(images)
              for images in real_batches(source, config.image_size, batch_size, skipped)]
  count = sum(len(f) for f in features)
  if count < 2:
    raise ValueError(f"the {split} split has {count} readable image(s); FID needs at "
                     f"least 2.")
  mu, sigma = frechet.statistics(np.concatenate(features))
  os.makedirs(cache_dir, exist_ok=True)
  frechet.save_statistics(path, mu, sigma)
  info = {"count": count, "skipped": skipped, "split": split,
          "source": getattr(source, "description", config.data.source),
          "image_size": config.image_size, "weights": os.path.abspath(weights_path)}
  with open(sidecar, "w") as f:
    json.dump(info, f, indent=1)
  return mu, sigma, dict(info, path=path, cached=False)


def generated_features(pipeline, source, fid_features, *, repeats: int, seed: int,
                       batch_size: int, **sample) -> np.ndarray:
  """Features of DF-GAN's protocol: per pass, one random caption of each image, one image each.

  Pass ``r`` draws its captions with the RNG ``(seed, r)`` and its noise with
  seed ``seed + r``. ``sample``: the rest of
  :meth:`jaxgan.sampling.Pipeline.generate`'s keywords (``truncation``, ``best_of``, ...).
  """
  features = []
  for repeat in range(repeats):
    rng = np.random.default_rng([seed, repeat])
    prompts = []
    for index in range(len(source)):
      captions = source.captions(index)
      prompts.append(captions[rng.integers(len(captions))])
    for start in range(0, len(prompts), batch_size):
      images = pipeline.generate(prompts[start:start + batch_size], num_per_prompt=1,
                                 seed=seed + repeat, batch_size=batch_size, **sample)
      features.append(fid_features(images))
  return np.concatenate(features)


def evaluate_real(pipeline, fid_weights: str, *, config: ml_collections.ConfigDict | None = None,
                  split: str = DEFAULT_SPLIT,
                  repeats: int = 1, seed: int = 0, batch_size: int = 64,
                  cache_dir: str, log: Callable[[str], None] | None = None,
                  **sample) -> dict[str, Any]:
  """FID of a loaded run (a non-``shapes`` source) against ``split`` of its data.

  Args:
    pipeline: a :class:`jaxgan.sampling.Pipeline` (its config names the data).
    fid_weights: converted FID Inception weights.
    config: the run's config with the data's current ``data.path``; the
      pipeline's own when None.
    split: the reference split.
    repeats: passes over the split's captions (DF-GAN's protocol).
    seed: caption-choice and noise seed.
    batch_size: images per generator and Inception call.
    cache_dir: where the reference statistics are cached.
    log: optional ``callable(str)`` for progress lines.
    **sample: the generator's other keywords (``truncation``, ``best_of``,
      ``rank_by``; see :meth:`jaxgan.sampling.Pipeline.generate`).

  Returns:
    The metrics dict: ``fid``, ``num_real``, ``num_generated``, ``real_skipped``,
    ``split``, ``repeats``, ``reference`` (the cached statistics' path), ``source``.
  """
  from jaxgan.data import build_source  # pylint: disable=g-import-not-at-top
  from jaxgan.metrics import inception  # pylint: disable=g-import-not-at-top
  config = pipeline.config if config is None else config
  fid_features = inception.InceptionFeatures(fid_weights, batch_size=min(batch_size, 50))
  mu, sigma, info = reference_statistics(config, split, fid_features, fid_weights, cache_dir,
                                         batch_size=batch_size, log=log)
  source = build_source(config, split)
  if log is not None:
    log(f"generating {repeats} x {len(source)} images, one random caption of each "
        f"{split} image per pass")
  generated = generated_features(pipeline, source, fid_features, repeats=repeats, seed=seed,
                                 batch_size=batch_size, **sample)
  return {"fid": frechet.frechet_distance(*frechet.statistics(generated), mu, sigma),
          "num_real": info["count"], "num_generated": int(generated.shape[0]),
          "real_skipped": len(info["skipped"]), "split": split, "repeats": repeats,
          "reference": info["path"], "source": info["source"]}
