"""A run directory: its config, tokenizer, models and where its checkpoints are.

Training writes ``config.json`` and the tokenizer into the workdir at start;
sampling and evaluation rebuild the very same modules from them.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from jaxgan import config as config_lib
from jaxgan import models as gan_models
from jaxgan import text
from jaxgan.models.gan import GanModels

CONFIG_FILE = "config.json"
# Keys that change the networks, their inputs or the state's layout: a workdir
# can only be resumed (or sampled) with the values it was created with.
_ARCHITECTURE_KEYS = ("image_size", "model", "text", "data.source", "loss.mismatch")
# Keys that fix the noise and the data order: a run resumed with other values
# would not continue the run it resumes.
# (The input iterator's saved state has one layout per number of data workers.)
RESUME_KEYS = ("seed", "batch_size", "data.seed", "data.num_examples", "data.max_objects",
               "data.workers")


class RunKeys(NamedTuple):
  """The keys a run derives from ``config.seed``."""

  init: jax.Array    # every network's initialisation
  step: jax.Array    # the steps' root: step i draws from fold_in(step, i)
  sample: jax.Array  # the sample grids' noise


def run_keys(config: ml_collections.ConfigDict) -> RunKeys:
  """The run's keys, as the trainer draws them; tools that rebuild a run's
  initial networks (e.g. ``scripts/feature_probes.py``) use ``init``."""
  return RunKeys(*jax.random.split(jax.random.key(config.seed), 3))


def checkpoint_dir(workdir: str) -> str:
  """Where a run's Orbax checkpoints live."""
  return os.path.join(os.path.abspath(workdir), "checkpoints")


def state_item(workdir: str, step: int) -> str:
  """The ``state`` item (the TrainState pytree) of the checkpoint at ``step``.

  Readers that need only the state open it on its own: through the manager,
  Orbax would warn about the input pipeline's ``data`` item next to it.
  """
  return os.path.join(checkpoint_dir(workdir), str(step), "state")


def saved_state_tree(workdir: str, step: int) -> Any:
  """The tree of the state saved at ``step``, with array metadata (shapes,
  dtypes) in place of the arrays; nothing is read but the metadata."""
  handler = ocp.PyTreeCheckpointHandler()
  try:
    saved = handler.metadata(epath.Path(state_item(workdir, step)))
  finally:
    handler.close()
  return getattr(saved, "tree", saved)


def read_saved_state(workdir: str, step: int) -> Any:
  """The state saved at ``step`` as a tree of numpy arrays, for read-only
  tools (diagnostics): shaped by the checkpoint's own metadata, so nothing
  needs to be built first, and on the host, so no sharding is involved."""
  as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                          saved_state_tree(workdir, step))
  handler = ocp.PyTreeCheckpointHandler()
  try:
    return handler.restore(epath.Path(state_item(workdir, step)),
                           args=ocp.args.PyTreeRestore(restore_args=as_numpy))
  finally:
    handler.close()


def abstract_like(tree: Any, sharding: jax.sharding.Sharding) -> Any:
  """Shapes and dtypes of ``tree`` with ``sharding``: the restore target."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def save_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes ``config.json`` (process 0 only) atomically."""
  if jax.process_index() != 0:
    return
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG_FILE)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))
  os.replace(tmp, path)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"{workdir!r} is not a jaxgan run: it has no {CONFIG_FILE}. Train one with "
        f"`python train.py --config configs/base.py --workdir {workdir}`.")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def _lookup(config, dotted: str) -> Any:
  value = config_lib.lookup(config, dotted)
  return value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
  if isinstance(value, dict):
    out = {}
    for k, v in value.items():
      out.update(_flatten(f"{prefix}.{k}", v))
    return out
  return {prefix: value}


# Keys added after runs had been saved: a config.json without one ran with
# this value.
_ADDED_KEYS = {"text.adapter": False, "text.adapter_layers": 1, "data.seed": None,
               "data.workers": 0, "model.contrastive_dim": 0,
               "model.text_stem": False, "model.coordinates": False,
               "loss.mismatch": "roll", "model.view_dim": 0,
               "model.d_residual_init": 0.0, "model.d_nf": 0,
               "model.word_dim": 0, "model.word_attention": 0,
               "model.word_vocab": "tokenizer", "model.region_dim": 0,
               "model.projection_dim": 0}


def _settings(config: ml_collections.ConfigDict, key: str) -> dict[str, Any]:
  """The flattened settings under ``key`` that take effect in this config."""
  try:
    flat = _flatten(key, _lookup(config, key))
  except KeyError:
    if key not in _ADDED_KEYS:
      raise
    flat = {key: _ADDED_KEYS[key]}
  for name, value in _ADDED_KEYS.items():
    if name.startswith(key + ".") and name not in flat:
      flat[name] = value
  if key == "text":
    # Packing changes how the frozen encoder is computed, not what it is.
    flat.pop("text.pack_fraction", None)
    # The adapter only exists on a pretrained encoder (see text.build_adapter)
    # and its depth only matters when it is on.
    learned = text.is_trainable(flat["text.encoder"])
    if learned or not flat["text.adapter"]:
      del flat["text.adapter_layers"]
    if learned:
      del flat["text.adapter"]
  if key == "model":
    # Where D's residual gammas start: the checkpoint's own gammas override it.
    flat.pop("model.d_residual_init", None)
    # Which ids the caption-word head scores changes nothing without the head,
    # or with a learned encoder, whose vocabulary is the captions' words.
    if not flat["model.word_dim"] or text.is_trainable(config.text):
      del flat["model.word_vocab"]
  if key == "loss.mismatch" and config_lib.uses_caption_queue(config):
    # The state holds the caption queue, whose length is this; without hard
    # negatives, the contrastive loss is what keeps it.
    flat["loss.mismatch_queue"] = _lookup(config, "loss.mismatch_queue")
    if flat[key] != "hardest":
      flat["loss.contrastive_queue"] = True
  return flat


def check_compatible(saved: ml_collections.ConfigDict,
                     config: ml_collections.ConfigDict, workdir: str,
                     keys: tuple[str, ...] = _ARCHITECTURE_KEYS) -> None:
  """Raises ValueError naming the first of ``keys`` (architecture by default) that differs."""
  for key in keys:
    old, new = _settings(saved, key), _settings(config, key)
    for name in sorted(set(old) | set(new)):
      if old.get(name) != new.get(name):
        raise ValueError(
            f"{workdir!r} holds a run with {name}={old.get(name)!r}, but the config "
            f"asks for {new.get(name)!r}. Use another --workdir, or the same config.")


DATA_FILE = "data.json"


def check_data_size(workdir: str, examples: int) -> str | None:
  """Records the training set's size; on resume, a warning if it changed.

  A folder that gained or lost images still trains, but the shuffled order is
  another one, so the resumed run no longer continues the stopped one exactly.
  """
  path = os.path.join(workdir, DATA_FILE)
  message = None
  if os.path.exists(path):
    with open(path) as f:
      before = json.load(f).get("train_examples")
    if before is not None and before != examples:
      message = (f"the training data had {before} examples when this run started and has "
                 f"{examples} now: training goes on, in another data order than an "
                 f"uninterrupted run's.")
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(path + ".tmp", "w") as f:
      json.dump({"train_examples": examples}, f)
    os.replace(path + ".tmp", path)
  return message


def build_tokenizer(config: ml_collections.ConfigDict, source) -> Any:
  """The run's tokenizer, built from the training captions of ``source``."""
  from jaxgan.data import vocabulary_captions  # pylint: disable=g-import-not-at-top
  return text.build_tokenizer(
      config.text, vocabulary_captions(source, config.data.vocab_examples),
      record_caption_ids=_scores_caption_ids(config))


def _scores_caption_ids(config: ml_collections.ConfigDict) -> bool:
  """Whether D's caption-word head scores only the ids the captions use."""
  return bool(config.model.get("word_dim", 0)) and (
      config.model.get("word_vocab", "tokenizer") == "captions")


def prepare_tokenizer(config: ml_collections.ConfigDict, workdir: str, source) -> Any:
  """Loads the run's tokenizer, or builds it from the training captions and saves it."""
  if os.path.exists(os.path.join(workdir, "tokenizer.json")):
    return text.load_tokenizer(workdir)
  tokenizer = build_tokenizer(config, source)
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    tokenizer.save(workdir)
  return tokenizer


def build_gan(config: ml_collections.ConfigDict, tokenizer, *,
              pack_captions: bool = False) -> tuple[GanModels, Any]:
  """The run's modules, and the pretrained text params (None for learned encoders).

  ``pack_captions``: a frozen encoder packs each batch's captions as
  ``text.pack_fraction`` says (:func:`jaxgan.text.pretrained.encode_packed`).
  For training steps only (see :func:`packs_captions`): a packed caption's
  states depend, at float rounding, on the batch it shares, which sampling
  promises they do not.
  """
  word_ids = _word_head_ids(config, tokenizer)
  generator, discriminator = gan_models.build_models(
      config.model.arch, image_size=config.image_size, nf=config.model.nf,
      dtype=config.model.dtype, param_dtype=config.model.param_dtype,
      # Runs from before the contrastive head have no such key.
      contrastive_dim=config.model.get("contrastive_dim", 0),
      text_stem=config.model.get("text_stem", False),
      coordinates=config.model.get("coordinates", False),
      word_attention=config.model.get("word_attention", 0),
      view_dim=config.model.get("view_dim", 0),
      d_residual_init=config.model.get("d_residual_init", 0.0),
      d_nf=config.model.get("d_nf", 0),
      word_dim=config.model.get("word_dim", 0),
      region_dim=config.model.get("region_dim", 0),
      projection_dim=config.model.get("projection_dim", 0),
      word_vocab=tokenizer.vocab_size if word_ids is None else len(word_ids))
  text_encoder = text.build_encoder(config.text, tokenizer)
  adapter = text.build_adapter(config.text)
  pretrained_params = None
  sentence_scale = 1.0
  if not text.is_trainable(config.text):
    pretrained_params = text.load_pretrained_params(config.text)
    if adapter is None and getattr(text_encoder, "normalize", False):
      # A unit-norm embedding of D entries has entries of about 1/sqrt(D) (0.05
      # for MiniLM), twenty times smaller than the noise's next to it in G's
      # condition and than D's features in its head: the GAN would all but
      # ignore the text. Scaled by sqrt(D), its entries have unit variance, like
      # the learned encoders' embeddings.
      sentence_scale = math.sqrt(text_encoder.config.hidden_size)
  models = GanModels(
      generator=generator, discriminator=discriminator, text_encoder=text_encoder,
      text_frozen=not text.is_trainable(config.text), text_adapter=adapter,
      generator_has_state=gan_models.uses_batch_stats(config.model.arch),
      z_dim=config.model.z_dim, sentence_scale=sentence_scale, word_ids=word_ids,
      # Runs saved before packing have no such key.
      text_pack_fraction=(float(config.text.get("pack_fraction", 0.0))
                          if pack_captions else 0.0))
  return models, pretrained_params


def _word_head_ids(config: ml_collections.ConfigDict, tokenizer) -> tuple[int, ...] | None:
  """The token ids D's caption-word head scores, in its output order (None: all)."""
  if not _scores_caption_ids(config):
    return None
  if tokenizer.caption_ids is not None:
    return tokenizer.caption_ids
  if text.is_trainable(config.text):  # a learned vocabulary is the captions' words
    return None
  raise ValueError("config.model.word_vocab='captions' scores the ids the training captions "
                   "use, but this run's tokenizer.json records none: it was saved by a run "
                   "with model.word_vocab='tokenizer' (set that to load it).")


def packs_captions(mesh_size: int) -> bool:
  """Whether a training step on a mesh of ``mesh_size`` devices packs captions.

  On one CPU device only: the packing reads the whole batch, so on a mesh each
  device would encode every caption; and its ``lax.cond`` would make an
  accelerator wait for the host every step (not measured there).
  """
  return mesh_size == 1 and jax.default_backend() == "cpu"
