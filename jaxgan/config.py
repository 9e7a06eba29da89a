"""Checks a run's config before anything is built, so mistakes fail at start."""

from __future__ import annotations

import math

import ml_collections

from jaxgan import losses
from jaxgan import models
from jaxgan import text

# Each list comes from the module that owns the choice, so adding an encoder,
# an architecture or a loss there makes it valid here.
_CHOICES = {
    "text.encoder": text.ENCODERS,
    "model.arch": models.ARCHS,
    "loss.kind": losses.KINDS,
    "model.dtype": models.DTYPES,
    # bfloat16 is refused below with its own message (float32 master weights).
    "model.param_dtype": models.DTYPES,
    "text.dtype": text.DTYPES,
    "text.param_dtype": text.DTYPES,
}
_POSITIVE_INTS = ("num_steps", "batch_size", "log_every", "checkpoint_every",
                  "keep_checkpoints", "sample_every", "num_sample_prompts",
                  "data.num_examples", "data.num_threads", "data.prefetch",
                  "text.max_length", "model.nf", "model.z_dim")


def lookup(config: ml_collections.ConfigDict, dotted: str):
  """``config["a"]["b"]`` for ``"a.b"``."""
  value = config
  for part in dotted.split("."):
    value = value[part]
  return value


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first bad key and what it accepts."""
  if config.model.param_dtype == "bfloat16":
    # Adam's steps (lr 1e-4) are below bfloat16's resolution for most weights,
    # so bf16 master weights would silently stop learning.
    raise ValueError("config.model.param_dtype='bfloat16' is not supported: G and D keep "
                     "float32 master weights; use model.dtype=bfloat16 for bfloat16 compute.")
  for key, choices in _CHOICES.items():
    value = lookup(config, key)
    if value not in choices:
      raise ValueError(f"config.{key}={value!r} is not one of {choices}.")
  for key in _POSITIVE_INTS:
    value = lookup(config, key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
      raise ValueError(f"config.{key}={value!r} must be a positive integer.")
  _validate_data(config.data)
  size = config.image_size
  if not (isinstance(size, int) and 16 <= size <= 256 and math.log2(size).is_integer()):
    raise ValueError(f"config.image_size={size!r} must be a power of two from 16 to 256.")
  if config.eval_every < 0 or config.eval_every % config.checkpoint_every:
    raise ValueError(f"config.eval_every={config.eval_every!r} must be 0 (off) or a "
                     f"multiple of checkpoint_every={config.checkpoint_every}.")
  if config.eval_every and config.data.source != "shapes":
    raise ValueError(f"config.eval_every={config.eval_every} measures caption alignment "
                     f"on shapes renders; data.source={config.data.source!r} is evaluated "
                     f"with evaluate.py on the checkpoints (FID). Set eval_every=0.")
  if config.eval_every and config.eval_prompts < 2:
    raise ValueError(f"config.eval_prompts={config.eval_prompts!r} must be at least 2.")
  if config.num_sample_prompts > config.data.num_examples:
    raise ValueError(f"config.num_sample_prompts={config.num_sample_prompts} exceeds "
                     f"data.num_examples={config.data.num_examples}.")
  for key in ("optim.g_lr", "optim.d_lr"):
    if not lookup(config, key) > 0:
      raise ValueError(f"config.{key}={lookup(config, key)!r} must be > 0.")
  for key in ("optim.ema_halflife_kimg", "optim.ema_rampup"):
    if not lookup(config, key) >= 0:
      raise ValueError(f"config.{key}={lookup(config, key)!r} must be >= 0.")
  fraction = config.text.get("pack_fraction", 0.0)
  if (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
      or not 0.0 <= fraction <= 1.0):
    raise ValueError(f"config.text.pack_fraction={fraction!r} must be from 0 (off) to 1.")
  layers = config.text.get("adapter_layers", 1)
  if not isinstance(layers, int) or isinstance(layers, bool) or layers < 0:
    raise ValueError(f"config.text.adapter_layers={layers!r} must be an integer >= 0.")
  uses_heads = config.text.encoder == "transformer" or (
      config.text.encoder == "minilm" and config.text.get("adapter", False))
  if uses_heads and config.text.embed_dim % config.text.num_heads:
    raise ValueError(f"config.text.embed_dim={config.text.embed_dim} must be divisible "
                     f"by text.num_heads={config.text.num_heads}.")
  if config.loss.ma_gp_weight < 0:
    raise ValueError(f"config.loss.ma_gp_weight={config.loss.ma_gp_weight!r} must be >= 0.")
  _validate_contrastive(config)
  _validate_views(config)
  _validate_words(config)
  _validate_projection(config)
  _validate_head_and_loss(config, "region_dim", "region_word", "word-region", "256")
  _validate_swaps(config)
  _validate_real_fake(config)
  if config.model.get("text_stem", False) and config.model.arch != "dfgan":
    raise ValueError(f"config.model.text_stem=True needs model.arch='dfgan' (the "
                     f"{config.model.arch!r} generator has no 4x4 stem); set it False.")
  if config.model.get("coordinates", False) and config.model.arch != "dfgan":
    raise ValueError(f"config.model.coordinates=True needs model.arch='dfgan' (the "
                     f"{config.model.arch!r} generator has no fusion blocks); set it False.")
  word_attention = config.model.get("word_attention", 0)
  if isinstance(word_attention, bool) or not isinstance(word_attention, int) or word_attention < 0:
    raise ValueError(f"config.model.word_attention={word_attention!r} must be an integer "
                     f">= 0 (the width of G's attention over the words; 0: none).")
  if word_attention and config.model.arch != "dfgan":
    raise ValueError(f"config.model.word_attention={word_attention} needs model.arch='dfgan' "
                     f"(the {config.model.arch!r} generator has no fusion blocks); set it 0.")


def swap_rows_warning(config: ml_collections.ConfigDict, num_devices: int) -> str | None:
  """Why ``loss.swap_rows`` leaves the devices uneven work, or None.

  The step shows D every (batch_size / swap_rows)-th example's edit; on a
  batch split over devices in contiguous blocks each device holds an equal
  share of those only when the device count divides swap_rows. Otherwise the
  step is still right (jit's arrays are global) but XLA moves rows between
  devices and some encode more edited captions than others.
  """
  rows = config.loss.get("swap_rows", 0)
  if rows and config.loss.get("swap_weight", 0.0) and rows % num_devices:
    return (f"config.loss.swap_rows={rows} is not a multiple of the {num_devices} devices: "
            f"the edited captions D sees are unevenly spread over them (slower, same "
            f"result); a multiple of {num_devices} keeps each device's share equal.")
  return None


def _validate_swaps(config: ml_collections.ConfigDict) -> None:
  """Swapped-word negatives need a text encoder that reads word order; the
  kinds of edit must be known."""
  weight = config.loss.get("swap_weight", 0.0)
  if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
    raise ValueError(f"config.loss.swap_weight={weight!r} must be a number >= 0 (0: off).")
  rows = config.loss.get("swap_rows", 0)
  if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
    raise ValueError(f"config.loss.swap_rows={rows!r} must be an integer >= 0 (0: every "
                     f"example's edit).")
  if rows and not weight:
    raise ValueError(f"config.loss.swap_rows={rows} picks which edited captions D sees, "
                     f"but loss.swap_weight=0 shows it none: set swap_weight > 0 or "
                     f"swap_rows=0.")
  if rows and config.batch_size % rows:
    raise ValueError(f"config.loss.swap_rows={rows} must divide batch_size="
                     f"{config.batch_size} (every batch_size / swap_rows-th example's edit "
                     f"is shown to D).")
  from jaxgan.data import caption_swaps  # pylint: disable=g-import-not-at-top
  kinds = caption_swaps.edit_kinds(config.loss.get("swap_edits", "swap"))
  if weight and "swap" in kinds and config.text.encoder == "bow":
    raise ValueError(f"config.loss.swap_weight={weight} asks D to tell a caption from its "
                     f"words swapped, which text.encoder='bow' (a bag of words) encodes "
                     f"identically: use 'minilm' or 'transformer', "
                     f"loss.swap_edits='replace', or set it 0.")


def _validate_real_fake(config: ml_collections.ConfigDict) -> None:
  """G's image-image contrastive loss needs no head, only other real images."""
  weight = config.loss.get("real_fake_weight", 0.0)
  if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
    raise ValueError(f"config.loss.real_fake_weight={weight!r} must be a number >= 0 "
                     f"(0: off).")
  if not weight:
    return
  temperature = config.loss.get("real_fake_temperature")
  if not (isinstance(temperature, (int, float)) and temperature > 0):
    raise ValueError(f"config.loss.real_fake_temperature={temperature!r} must be > 0.")
  if config.batch_size < 2:
    raise ValueError(f"config.loss.real_fake_weight={weight} tells each fake's real image "
                     f"from the batch's others: batch_size={config.batch_size} must be at "
                     f"least 2.")


def _validate_views(config: ml_collections.ConfigDict) -> None:
  """The self-supervised loss needs D's view head, which only DF-GAN's D has."""
  weight = _validate_head_and_loss(config, "view_dim", "view_contrastive", "self-supervised",
                                   "128")
  if weight and config.batch_size < 2:
    raise ValueError(f"config.loss.view_contrastive_weight={weight} tells each image from "
                     f"the batch's others: batch_size={config.batch_size} must be at least 2.")


def _validate_words(config: ml_collections.ConfigDict) -> None:
  """The caption-word loss needs D's word head, which only DF-GAN's D has."""
  _validate_head_and_loss(config, "word_dim", "word", "caption-word", "256",
                          has_temperature=False)
  scale = config.loss.get("word_g_scale", 1.0)
  if not scale >= 0:
    raise ValueError(f"config.loss.word_g_scale={scale!r} must be >= 0.")
  fake_weight = config.loss.get("word_fake_weight", 0.0)
  if isinstance(fake_weight, bool) or not isinstance(fake_weight, (int, float)) or not (
      fake_weight >= 0):
    raise ValueError(f"config.loss.word_fake_weight={fake_weight!r} must be a number >= 0 "
                     f"(0: off).")
  if fake_weight and not config.model.get("word_dim", 0):
    raise ValueError(f"config.loss.word_fake_weight={fake_weight} needs D's caption-word "
                     f"head: set model.word_dim (e.g. 256).")
  vocabulary = config.model.get("word_vocab", "tokenizer")
  if vocabulary not in WORD_VOCABULARIES:
    raise ValueError(f"config.model.word_vocab={vocabulary!r} must be one of "
                     f"{', '.join(map(repr, WORD_VOCABULARIES))}.")


def _validate_projection(config: ml_collections.ConfigDict) -> None:
  """D's word projection head scores the caption-word head's ids, and every
  mismatched caption's words, which the caption queue does not keep."""
  dim = config.model.get("projection_dim", 0)
  if not isinstance(dim, int) or isinstance(dim, bool) or dim < 0:
    raise ValueError(f"config.model.projection_dim={dim!r} must be an integer >= 0 "
                     f"(0: no word projection head).")
  if not dim:
    return
  if config.model.arch != "dfgan":
    raise ValueError(f"config.model.projection_dim={dim} needs model.arch='dfgan' (the "
                     f"{config.model.arch!r} discriminator has no word projection head).")
  if not config.model.get("word_dim", 0):
    raise ValueError(f"config.model.projection_dim={dim} scores the ids of D's caption-word "
                     f"head: set model.word_dim (e.g. 256).")
  if config.loss.get("mismatch", "roll") == "hardest":
    raise ValueError(f"config.model.projection_dim={dim} scores each mismatched caption's "
                     f"words, but loss.mismatch='hardest' draws captions from a queue of "
                     f"sentence embeddings without them: use loss.mismatch='roll'.")


def _validate_head_and_loss(config: ml_collections.ConfigDict, dim_key: str, loss_key: str,
                            head: str, example: str, has_temperature: bool = True) -> float:
  """Checks ``model.{dim_key}`` (the size of one of D's optional heads) and
  ``loss.{loss_key}_weight`` / ``_temperature`` (the loss that trains it);
  returns the weight."""
  dim = config.model.get(dim_key, 0)
  weight = config.loss.get(f"{loss_key}_weight", 0.0)
  if not isinstance(dim, int) or isinstance(dim, bool) or dim < 0:
    raise ValueError(f"config.model.{dim_key}={dim!r} must be an integer >= 0.")
  if dim and config.model.arch != "dfgan":
    raise ValueError(f"config.model.{dim_key}={dim} needs model.arch='dfgan' "
                     f"(the {config.model.arch!r} discriminator has no {head} head).")
  if not weight >= 0:
    raise ValueError(f"config.loss.{loss_key}_weight={weight!r} must be >= 0.")
  if weight and not dim:
    raise ValueError(f"config.loss.{loss_key}_weight={weight} needs D's {head} "
                     f"head: set model.{dim_key} (e.g. {example}).")
  if has_temperature:
    value = config.loss.get(f"{loss_key}_temperature")
    if weight and not value > 0:
      raise ValueError(f"config.loss.{loss_key}_temperature={value!r} must be > 0.")
  return weight


# How D's mismatched (real image, caption) pairs are chosen; see configs/base.py.
MISMATCH_KINDS = ("roll", "hardest")
# Which token ids D's caption-word head scores: every id of the tokenizer, or
# only those the training captions use; see configs/base.py.
WORD_VOCABULARIES = ("tokenizer", "captions")


def uses_caption_queue(config: ml_collections.ConfigDict) -> bool:
  """Whether the train state keeps a ring of earlier captions.

  The queue (``loss.mismatch_queue`` sentence embeddings, possibly 0 of them
  with ``mismatch="hardest"``) serves the hard mismatched captions
  (``loss.mismatch="hardest"``) and the contrastive loss's extra negatives
  (``loss.contrastive_queue``)."""
  hard = config.loss.get("mismatch", "roll") == "hardest"
  return hard or contrastive_uses_queue(config)


def contrastive_uses_queue(config: ml_collections.ConfigDict) -> bool:
  """Whether the contrastive loss also scores images against the caption queue
  (``loss.contrastive_queue`` with the loss on)."""
  return bool(config.loss.get("contrastive_queue", False)
              and config.loss.get("contrastive_weight", 0.0) > 0)


def _validate_contrastive(config: ml_collections.ConfigDict) -> None:
  """The contrastive loss needs D's head, which only DF-GAN's D has."""
  weight = _validate_head_and_loss(config, "contrastive_dim", "contrastive", "contrastive",
                                   "256")
  dim = config.model.get("contrastive_dim", 0)
  mismatch = config.loss.get("mismatch", "roll")
  if mismatch not in MISMATCH_KINDS:
    raise ValueError(f"config.loss.mismatch={mismatch!r}; valid: "
                     f"{', '.join(MISMATCH_KINDS)}.")
  queued = config.loss.get("contrastive_queue", False)
  if queued and not (dim and weight):
    raise ValueError("config.loss.contrastive_queue=True adds negatives to the contrastive "
                     "loss: set model.contrastive_dim (e.g. 256) and "
                     "loss.contrastive_weight > 0.")
  if mismatch == "hardest" or queued:
    queue = config.loss.mismatch_queue
    if (not isinstance(queue, int) or isinstance(queue, bool) or queue < 0
        or queue % config.batch_size):
      raise ValueError(f"config.loss.mismatch_queue={queue!r} must be a multiple of "
                       f"batch_size={config.batch_size} (0: the batch's captions only).")
    if queued and not queue:
      raise ValueError("config.loss.contrastive_queue=True scores images against the "
                       "caption queue: set loss.mismatch_queue > 0 (e.g. 512).")
  if mismatch == "hardest":
    if not (dim and weight):
      raise ValueError("config.loss.mismatch='hardest' picks captions with D's "
                       "contrastive head, which the contrastive loss trains: set "
                       "model.contrastive_dim (e.g. 256) and loss.contrastive_weight > 0.")
    if config.batch_size < 2:
      raise ValueError(f"config.loss.mismatch='hardest' draws another example's caption: "
                       f"batch_size={config.batch_size} must be at least 2.")


def _validate_data(data: ml_collections.ConfigDict) -> None:
  """The data section: a known source, a path where one is needed, no flip on shapes."""
  from jaxgan.data import SOURCES, RENDERED_SOURCES, is_valid_source  # pylint: disable=g-import-not-at-top
  if not is_valid_source(data.source):
    raise ValueError(f"config.data.source={data.source!r} is not one of {SOURCES}.")
  if data.source in RENDERED_SOURCES:
    if data.get("flip", False):
      raise ValueError(f"config.data.flip=True is refused for {data.source!r}: its "
                       f"captions say left and right, which a mirror image swaps.")
  elif not data.get("path") and not data.source.startswith("tfds:"):
    raise ValueError(f"config.data.source={data.source!r} reads files: set "
                     f"--config.data.path=DIR.")
  workers = data.get("workers", 0)
  if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
    raise ValueError(f"config.data.workers={workers!r} must be an integer >= 0.")
  seed = data.get("seed")
  if seed is not None and (not isinstance(seed, int) or seed < 0):
    raise ValueError(f"config.data.seed={seed!r} must be a non-negative integer "
                     f"(or unset: the run's seed).")
