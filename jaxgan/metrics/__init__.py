"""Metrics: caption alignment via a shapes probe, Fréchet distances, FID.

Public API:
  * :func:`evaluate_run`: everything below for one checkpoint of a run, one
    JSON line appended to ``workdir/metrics.jsonl`` (``evaluate.py`` calls it).
  * :mod:`jaxgan.metrics.probe`: the probe classifier (``load_probe``,
    ``probe_features``).
  * :mod:`jaxgan.metrics.alignment`: fixed prompt sets and alignment scores.
  * :mod:`jaxgan.metrics.frechet`: ``statistics``, ``frechet_distance``.
  * :mod:`jaxgan.metrics.inception`: FID InceptionV3 with weights from a file.
  * :mod:`jaxgan.metrics.linear_probe`: ``probe_accuracy``, what a
    representation carries of a label, read linearly (diagnostics).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

import ml_collections
import numpy as np

from jaxgan.data import shapes
from jaxgan.metrics import alignment as alignment_lib
from jaxgan.metrics import frechet
from jaxgan.metrics import probe as probe_lib
from jaxgan.metrics import real_data
from jaxgan.metrics.frechet import frechet_distance, statistics
from jaxgan.metrics.probe import Probe, load_probe, probe_features

__all__ = ["evaluate_run", "format_table", "METRICS_FILE", "frechet_distance",
           "statistics", "Probe", "load_probe", "probe_features"]

METRICS_FILE = "metrics.jsonl"
# The real-vs-real floor of the Fréchet distances compares the evaluation
# renders with renders of another seed (same splits, same count).
_FLOOR_SEED_OFFSET = 1


def _fid_reference(fid_features, real_images: np.ndarray, path: str
                   ) -> tuple[np.ndarray, np.ndarray]:
  """Inception statistics of the real renders, cached as ``.npz`` (mu, sigma)."""
  if os.path.exists(path):
    return frechet.load_statistics(path)
  mu, sigma = statistics(fid_features(real_images))
  os.makedirs(os.path.dirname(path), exist_ok=True)
  frechet.save_statistics(path, mu, sigma)
  return mu, sigma


def evaluate_run(workdir: str, step: int | None = None, num_prompts: int = 200,
                 fid_weights: str | None = None, seed: int = 0, batch_size: int = 64,
                 probe: Probe | None = None, cache_dir: str | None = None,
                 write: bool = True, log: Callable[[str], None] | None = None,
                 split: str = real_data.DEFAULT_SPLIT, repeats: int = 1,
                 data_path: str | None = None, truncation: float = 1.0, best_of: int = 1,
                 rank_by: str = "words") -> dict[str, Any]:
  """Evaluates one checkpoint of a run.

  A run on real data (any source but ``shapes``) gets FID against ``split`` of
  its source with DF-GAN's protocol (:func:`jaxgan.metrics.real_data.evaluate_real`;
  ``fid_weights`` required; the shapes probe does not apply). A ``shapes`` run
  gets the following.

  Generates one image for each fixed evaluation prompt (``num_prompts`` per
  split, ``train`` and ``holdout`` combinations) and reports:

  * ``align/{split}/{attribute}`` and ``align/{split}/all_correct``: the probe's
    reading of the generated images against the prompts' attributes;
    ``real/...``, the same for real renders of those attributes (the ceiling).
    ``align/{split}/{n}_objects/...``: object 1's attributes and
    ``all_correct`` over the prompts of ``n`` objects only, and for two
    objects ``both_places``, ``both_colours``, ``colour_swaps``,
    ``both_shapes`` and ``shape_swaps``
    (:func:`jaxgan.metrics.alignment.alignment`).
  * ``fd_probe/{split}``, ``fd_probe/all``: Fréchet distance between probe
    features of generated and real images; ``fd_probe_floor/...``, the same
    between two sets of real renders (what a perfect generator would get).
  * ``fid`` and ``fid_floor`` when ``fid_weights`` is given (all prompts of
    both splits together; few samples, so only comparable at equal
    ``num_prompts``).

  Args:
    workdir: the run directory.
    step: checkpoint step; the latest when None.
    num_prompts: evaluation prompts per split.
    fid_weights: converted FID Inception weights (see
      :mod:`jaxgan.metrics.inception`); FID is skipped when None.
    seed: noise seed of the generated images.
    batch_size: images per generator call.
    probe: the judge; when None, the default probe for the run's image size
      (:func:`jaxgan.metrics.probe.load_probe`: shipped, else cached, else
      trained on first use: about half an hour on a shared 2-core CPU).
    cache_dir: where probes and FID reference statistics are cached.
    write: append the result to ``workdir/metrics.jsonl``.
    log: optional ``callable(str)`` for progress lines.
    split: real data only: the reference split.
    repeats: real data only: passes over the split's captions.
    data_path: real data only: where the data is now, if not at the run's
      ``data.path``.
    truncation: the sampler's ``psi`` in (0, 1] (1.0, the default, is off; see
      :meth:`jaxgan.sampling.Pipeline.generate`).
    best_of: candidates per image, the one the run's D scores best by
      ``rank_by`` kept (1, the default: no ranking; see
      :meth:`jaxgan.sampling.Pipeline.generate`).
    rank_by: ``"words"``, ``"contrastive"`` or ``"match"``.

  Returns:
    The flat metrics dict, with ``step``, ``workdir``, ``image_size``, ``seed``,
    ``truncation``, ``best_of`` (and ``rank_by`` above 1), ``time`` and
    ``seconds`` besides the metrics (and
    ``num_prompts`` for ``shapes``, ``data_source`` for real data).

  Raises:
    FileNotFoundError: ``workdir`` is not a run, has no checkpoint, or
      ``fid_weights`` does not exist.
    ValueError: ``truncation`` is outside (0, 1], ``best_of`` below 1 or
      ``rank_by`` unknown, ``step`` has no checkpoint,
      ``probe`` reads another image size, or a real-data run is evaluated
      without ``fid_weights`` or its data cannot be read
      (:class:`jaxgan.data.DataError`).
  """
  from jaxgan import sampling  # pylint: disable=g-import-not-at-top
  started = time.time()
  # Checked before anything loads, so a typo costs no minutes.
  truncation = sampling.check_truncation(truncation)
  best_of, rank_by = sampling.check_best_of(best_of, rank_by)
  sample = {"truncation": truncation, "best_of": best_of, "rank_by": rank_by}
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f"no run directory at {workdir!r}")
  if fid_weights is not None and not os.path.exists(fid_weights):
    raise FileNotFoundError(f"FID weights not found at {fid_weights!r}")
  pipeline = sampling.load_pipeline(workdir, step=step)
  config = pipeline.config
  cache = cache_dir or probe_lib.default_cache_dir()
  if config.data.source == "shapes":
    result = _evaluate_shapes(pipeline, num_prompts, fid_weights, seed, sample,
                              batch_size, probe, cache, log)
  else:
    if fid_weights is None:
      raise ValueError(f"{workdir!r} was trained on {config.data.source!r}: the shapes "
                       f"probe does not apply, and FID against its {split} split needs "
                       f"--fid-weights (see jaxgan/metrics/inception.py).")
    if log is not None:
      log(f"{config.data.source!r} run: the shapes probe does not apply; FID against the "
          f"{split} split ({repeats} pass(es) over its captions)")
    if data_path:
      config = ml_collections.ConfigDict(config.to_dict())
      config.data.path = data_path
    result = real_data.evaluate_real(pipeline, fid_weights, config=config, split=split,
                                     repeats=repeats, seed=seed, batch_size=batch_size,
                                     cache_dir=cache, log=log, **sample)
    result.update({"image_size": int(config.image_size), "seed": seed,
                   "data_source": config.data.source})
  result.update({"step": pipeline.step, "workdir": os.path.abspath(workdir),
                 "truncation": truncation, "best_of": best_of})
  if best_of > 1:
    result["rank_by"] = rank_by
  result["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
  result["seconds"] = round(time.time() - started, 2)
  if write:
    with open(os.path.join(workdir, METRICS_FILE), "a") as f:
      f.write(json.dumps(result, sort_keys=True) + "\n")
  return result


def _evaluate_shapes(pipeline, num_prompts: int, fid_weights: str | None, seed: int,
                     sample: dict[str, Any], batch_size: int, probe: Probe | None, cache: str,
                     log: Callable[[str], None] | None) -> dict[str, Any]:
  """The alignment, Fréchet and FID metrics of a ``shapes`` run (see :func:`evaluate_run`)."""
  size = int(pipeline.config.image_size)
  if probe is None:
    probe = load_probe(size, cache_dir=cache, log=log)
  if probe.image_size != size:
    raise ValueError(f"the probe reads {probe.image_size}px images, the run makes {size}px")

  sets = alignment_lib.eval_sets(num_prompts)
  floor_sets = alignment_lib.eval_sets(num_prompts, alignment_lib.EVAL_SEED
                                       + _FLOOR_SEED_OFFSET)
  real = {s: es.real_images(size) for s, es in sets.items()}
  real_floor = {s: es.real_images(size) for s, es in floor_sets.items()}
  generated = {}
  for split, es in sets.items():
    if log is not None:
      log(f"generating {len(es)} images for the {split} prompts")
    generated[split] = pipeline.generate(list(es.prompts), num_per_prompt=1, seed=seed,
                                         batch_size=batch_size, **sample)

  result: dict[str, Any] = {"num_prompts": num_prompts, "image_size": size, "seed": seed}
  result.update(alignment_lib.alignment_report(probe, sets, generated, real))

  features = {name: {s: probe.features(images[s]) for s in images}
              for name, images in (("real", real), ("floor", real_floor),
                                    ("generated", generated))}
  groups = {s: [s] for s in sets}
  groups["all"] = list(sets)
  for group, splits in groups.items():
    pick = lambda name: np.concatenate([features[name][s] for s in splits])
    result[f"fd_probe/{group}"] = frechet.frechet_distance_from_features(
        pick("generated"), pick("real"))
    result[f"fd_probe_floor/{group}"] = frechet.frechet_distance_from_features(
        pick("floor"), pick("real"))

  if fid_weights is not None:
    from jaxgan.metrics import inception  # pylint: disable=g-import-not-at-top
    fid_features = inception.InceptionFeatures(fid_weights)
    all_real = np.concatenate([real[s] for s in sets])
    # Keyed by the weights too: statistics of other weights are not comparable.
    digest = real_data.file_digest(fid_weights)
    reference = _fid_reference(
        fid_features, all_real,
        os.path.join(cache, f"fid_ref_shapes_{size}_{num_prompts}_"
                            f"{alignment_lib.EVAL_SEED}_{digest}.npz"))
    generated_stats = statistics(fid_features(np.concatenate([generated[s] for s in sets])))
    floor_stats = statistics(fid_features(np.concatenate([real_floor[s] for s in sets])))
    result["fid"] = frechet_distance(*generated_stats, *reference)
    result["fid_floor"] = frechet_distance(*floor_stats, *reference)

  result["probe_accuracy"] = probe.info.get("accuracy")
  return result


def format_table(result: dict[str, Any]) -> str:
  """A plain-text table of the alignment and Fréchet numbers of a result."""
  if "data_source" in result:  # a run on real data: FID only
    return (f"step {result.get('step')}  ({result['data_source']}, {result['image_size']}px)\n"
            f"FID against the {result['split']} split: {result['fid']:.3f}  "
            f"({result['num_generated']} generated = {result['repeats']} pass(es) x "
            f"{result['num_generated'] // result['repeats']} captions; "
            f"{result['num_real']} real images, {result['real_skipped']} unreadable skipped)\n"
            f"The shapes probe does not apply to this run's data.")
  rows = list(probe_lib.ATTRIBUTES) + ["all_correct"]
  columns = [("gen train", "align/train"), ("gen holdout", "align/holdout"),
             ("real train", "real/train"), ("real holdout", "real/holdout")]
  psi, best_of = result.get("truncation", 1.0), result.get("best_of", 1)
  lines = [f"step {result.get('step')}  ({result.get('num_prompts')} prompts per split, "
           f"{result.get('image_size')}px" + (f", truncation {psi}" if psi < 1.0 else "")
           + (f", best of {best_of} by {result['rank_by']}" if best_of > 1 else "") + ")",
           f"{'attribute':<14}" + "".join(f"{title:>14}" for title, _ in columns)]
  for row in rows:
    cells = []
    for _, prefix in columns:
      value = result.get(f"{prefix}/{row}")
      cells.append(f"{value:>14.3f}" if value is not None else f"{'-':>14}")
    lines.append(f"{row:<14}" + "".join(cells))
  by_objects = [(f"{split} {n} obj", f"align/{split}/{n}_objects")
                for split in ("train", "holdout") for n in (1, 2)
                if f"align/{split}/{n}_objects/all_correct" in result]
  if by_objects:
    lines.append("")
    lines.append("generated, object 1, by the prompt's number of objects")
    lines.append(f"{'attribute':<14}" + "".join(f"{title:>14}" for title, _ in by_objects))
    for row in alignment_lib.OBJECT_1_ATTRIBUTES + ("all_correct",):
      lines.append(f"{row:<14}" + "".join(f"{result[f'{prefix}/{row}']:>14.3f}"
                                         for _, prefix in by_objects))
    # One-object prompts have no such scores.
    for row in alignment_lib.TWO_OBJECT_ROWS:
      values = [result.get(f"{prefix}/{row}") for _, prefix in by_objects]
      if any(v is not None for v in values):
        lines.append(f"{row:<14}" + "".join(f"{v:>14.3f}" if v is not None else f"{'-':>14}"
                                           for v in values))
  by_size = [size for size in shapes.SIZES if f"align/train/{size}/shape_1" in result]
  if by_size:
    lines.append("")
    lines.append("object 1's shape, by the size the prompt asks")
    lines.append(f"{'size':<14}" + "".join(f"{title:>14}" for title, _ in columns))
    for size in by_size:
      values = [result.get(f"{prefix}/{size}/shape_1") for _, prefix in columns]
      lines.append(f"{size:<14}" + "".join(f"{v:>14.3f}" if v is not None else f"{'-':>14}"
                                          for v in values))
  lines.append("")
  lines.append(f"{'Fréchet (probe)':<16}{'generated':>12}{'real floor':>12}")
  for group in ("train", "holdout", "all"):
    lines.append(f"{group:<16}{result[f'fd_probe/{group}']:>12.3f}"
                 f"{result[f'fd_probe_floor/{group}']:>12.3f}")
  if "fid" in result:
    lines.append(f"{'FID':<16}{result['fid']:>12.3f}{result['fid_floor']:>12.3f}")
  return "\n".join(lines)
