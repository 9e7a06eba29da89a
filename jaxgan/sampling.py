"""Load a trained run and turn prompts into images: the API behind ``sample.py``.

In a notebook::

    from jaxgan import sampling
    pipe = sampling.load_pipeline("runs/base")           # latest checkpoint
    arrays = pipe.generate(["a small red circle in the top left"], num_per_prompt=4)
    pil_images = pipe.images(["a blue star"], postprocess="auto_levels resize:2")
    frames = pipe.interpolate("a red circle", "a green square", steps=8, seed=0)

Only what sampling needs is read from the checkpoint: the EMA generator
(``generator_ema``), its non-param collections (``generator_state``), a learned
text encoder or a frozen encoder's adapter (``text_encoder``; a frozen encoder's
own weights come from its package) and the discriminator (``discriminator``, for
users who want to score images; :func:`load_networks` reads every network for
read-only tools). The optimizer states, usually the bulk of a
checkpoint, are never read. Arrays are placed replicated on the devices given
(all local devices by default), so a run trained on 8 devices samples on 1 and
vice versa.

Reproducibility: the noise of image ``j`` of a prompt is drawn from
``fold_in(fold_in(key(seed), crc32(prompt)), j)``, where the prompt has its
whitespace collapsed. It therefore depends only on the prompt text, the seed
and ``j``, never on the batch size or on the other prompts of the call. Batches
are padded to ``batch_size``, so with a given ``batch_size`` an image is the
same bit for bit whatever else is generated with it; across batch sizes the
noise is still identical, and the images agree to float rounding (~1e-6: XLA
may pick other kernels for another batch shape).

Prompts:
  * A prompt without any letter or digit (empty, blank, punctuation only)
    raises ``ValueError``.
  * A prompt with more tokens than the run's ``text.max_length`` keeps its
    first ``max_length`` tokens, with a warning naming it.
  * The word tokenizer (``bow``, ``transformer`` encoders) lower-cases the
    text and folds it to ASCII: accents are dropped ("Café" reads as "cafe"),
    other non-ASCII characters (e.g. CJK, emoji) and punctuation vanish. Words
    the training captions never contained map to ``<unk>``, with a warning:
    the model learned nothing from them. A prompt left with no word at all
    raises ``ValueError``. The pretrained tokenizer (``minilm``) has its own
    WordPiece vocabulary, which splits unknown words into known pieces.
"""

from __future__ import annotations

import json
import math
import os
import warnings
import zlib
from typing import Any, NamedTuple, Sequence

import flax.serialization
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from PIL import Image

from jaxgan import postprocess as postprocess_lib
from jaxgan import run as run_lib
from jaxgan import sharding
from jaxgan import text as text_lib
from jaxgan.models import gan as gan_lib
from jaxgan.models.gan import GanModels, make_generate_fn
from jaxgan.text.tokenizer import UNK_ID

# What sampling reads from a checkpoint's ``state``; the rest (optimizer
# states, the raw generator, the step counter) stays on disk.
RESTORED_KEYS = ("generator_ema", "generator_state", "text_encoder", "discriminator")
# An exported model (see jaxgan.export): its manifest, its params and which.
EXPORT_FILE = "export.json"
EXPORT_FORMAT = 1
PARAMS_FILE = "params.msgpack"
EXPORTED_KEYS = ("generator_ema", "generator_state", "text_encoder")
# The truncation threshold in standard deviations is this times ``truncation``
# (BigGAN's trick with its usual range: 2 sigma at 1.0 would already be mild).
_TRUNCATION_SIGMAS = 2.0
_MAX_SEED = 2**32 - 1


def prompt_hash(prompt: str) -> int:
  """A stable 32-bit id of a prompt (CRC-32 of its whitespace-collapsed UTF-8).

  Python's ``hash`` is salted per process, so it cannot make noise that is
  reproducible across runs.
  """
  return zlib.crc32(" ".join(prompt.split()).encode("utf-8"))


def _noise(seed, hashes, indices, truncation, z_dim: int) -> jax.Array:
  """[B, z_dim] noise: row i from ``fold_in(fold_in(key(seed), hashes[i]), indices[i])``."""
  base = jax.random.key(seed)

  def one(h, i):
    key = jax.random.fold_in(jax.random.fold_in(base, h), i)
    bound = _TRUNCATION_SIGMAS * truncation
    # Both are drawn (cheap at z_dim) so truncation stays a traced value and
    # changing it never recompiles.
    truncated = jax.random.truncated_normal(key, -bound, bound, (z_dim,), jnp.float32)
    plain = jax.random.normal(key, (z_dim,), jnp.float32)
    return jnp.where(truncation < 1.0, truncated, plain)

  return jax.vmap(one)(hashes, indices)


def _slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
  """Spherical interpolation: keeps the norm typical of Gaussian noise midway."""
  a64, b64 = a.astype(np.float64), b.astype(np.float64)
  cos = np.dot(a64, b64) / max(np.linalg.norm(a64) * np.linalg.norm(b64), 1e-12)
  omega = math.acos(float(np.clip(cos, -1.0, 1.0)))
  if omega < 1e-6:  # (anti)parallel: the great circle is undefined, go straight
    return ((1.0 - t) * a64 + t * b64).astype(np.float32)
  s = math.sin(omega)
  return ((math.sin((1.0 - t) * omega) * a64 + math.sin(t * omega) * b64) / s).astype(
      np.float32)


def _short(prompt: str, limit: int = 60) -> str:
  """The prompt, cut for messages: a warning about a long prompt stays readable."""
  return prompt if len(prompt) <= limit else prompt[:limit - 3] + "..."


def check_truncation(truncation: float) -> float:
  """``truncation`` as a float, or a ValueError naming it when outside (0, 1]."""
  truncation = float(truncation)
  if not 0.0 < truncation <= 1.0:
    raise ValueError(f"truncation must be in (0, 1] (1.0 = off), got {truncation}")
  return truncation


def check_best_of(best_of: int, rank_by: str) -> tuple[int, str]:
  """``(best_of, rank_by)`` checked (see :meth:`Pipeline.generate`), or a
  ValueError naming the bad one."""
  best_of = int(best_of)
  if best_of < 1:
    raise ValueError(f"best_of must be at least 1, got {best_of}")
  if rank_by not in gan_lib.SCORES:
    raise ValueError(f"rank_by: unknown score {rank_by!r}; one of {', '.join(gan_lib.SCORES)}")
  return best_of, rank_by


def _check_seed(seed: int) -> int:
  if not 0 <= int(seed) <= _MAX_SEED:
    raise ValueError(f"seed must be an integer in [0, {_MAX_SEED}], got {seed}")
  return int(seed)


class Pipeline:
  """A trained run, ready to generate.

  Attributes:
    config: the run's config (from ``config.json``).
    tokenizer: the run's tokenizer.
    models: the modules (``.generator``, ``.discriminator``, ``.text_encoder``).
    params: ``generator_ema``, ``generator_state``, ``text_encoder`` (a learned
      encoder's or a frozen one's adapter's params; empty for neither),
      ``discriminator`` and ``frozen_text`` (a frozen encoder's pretrained
      weights; None for a learned encoder).
    step: the training step of the checkpoint (None for fresh params).
    devices: the devices arrays live on; batches are split over them.
  """

  def __init__(self, config: ml_collections.ConfigDict, tokenizer: Any,
               models: GanModels, params: dict[str, Any], step: int | None = None,
               devices: Sequence[jax.Device] | None = None):
    """Wraps modules and params; :func:`load_pipeline` is the usual way in.

    Args:
      config: the run config.
      tokenizer: the run's tokenizer.
      models: from ``run.build_gan``.
      params: the dict described in the class docstring (copied to ``devices``).
      step: the checkpoint step, for sidecars.
      devices: where to run; all local devices when None.
    """
    self.config = config
    self.tokenizer = tokenizer
    self.models = models
    self.step = step
    self.devices = list(jax.local_devices() if devices is None else devices)
    self._mesh = sharding.make_mesh(self.devices)
    self._replicated = sharding.replicated(self._mesh)
    self._split = sharding.batch_sharded(self._mesh)
    params = dict(params)
    # Pipelines built by hand before frozen encoders had their own entry.
    params.setdefault("frozen_text", None)
    self.params = jax.device_put(params, self._replicated)
    z_dim = models.z_dim
    images_from = make_generate_fn(models)

    def encode(text_params, frozen_text, ids, mask):
      return models.encode_text(text_params, ids, mask, frozen_text)

    def synthesize(g_params, g_state, z, sentence):
      images, _ = models.generate(g_params, g_state, z, sentence, train=False)
      return images.astype(jnp.float32)

    def generate(g_params, g_state, text_params, frozen_text, seed, hashes, indices,
                 truncation, ids, mask):
      z = _noise(seed, hashes, indices, truncation, z_dim)
      return images_from(g_params, g_state, text_params, frozen_text, z, ids, mask)

    out = self._split
    self._encode = jax.jit(encode, out_shardings=out)
    self._synthesize = jax.jit(synthesize, out_shardings=out)
    self._noise = jax.jit(_noise, static_argnums=(4,), out_shardings=out)
    self._generate = jax.jit(generate, out_shardings=out)
    self._images_from = jax.jit(images_from, out_shardings=out)
    self._score_programs: dict[str, Any] = {}

  # --- Prompts -----------------------------------------------------------------

  def tokenize(self, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Checks prompts and turns them into ids and mask (see the module docstring).

    Args:
      prompts: a list of strings.

    Returns:
      ids [N, max_length] int32 and mask [N, max_length] bool.

    Raises:
      ValueError: an empty prompt, or one with no word the tokenizer reads.
      TypeError: a single string instead of a list.
    """
    if isinstance(prompts, str):
      raise TypeError("expected a list of prompts, got a single str; wrap it in [...]")
    prompts = list(prompts)
    if not prompts:
      raise ValueError("no prompts given")
    for i, prompt in enumerate(prompts):
      if not isinstance(prompt, str):
        raise TypeError(f"prompt number {i + 1} is a {type(prompt).__name__}, not a str")
      if not any(ch.isalnum() for ch in prompt):
        raise ValueError(f"empty prompt (number {i + 1}: {prompt!r}): a prompt needs at "
                         f"least one word")
    if hasattr(self.tokenizer, "encode_with_truncation"):
      ids, mask, truncated = self.tokenizer.encode_with_truncation(prompts)
    else:
      ids, mask, truncated = self.tokenizer.encode(prompts, return_truncated=True)
    for i, prompt in enumerate(prompts):
      if not mask[i].any():
        raise ValueError(
            f"empty prompt after cleaning (number {i + 1}: {prompt!r}): the run's "
            f"tokenizer keeps only ASCII letters and digits (accents are dropped), and "
            f"none are left")
      if truncated[i]:
        warnings.warn(
            f"prompt {_short(prompt)!r} is longer than the text encoder's "
            f"{self.tokenizer.max_length} tokens; only its beginning is used",
            stacklevel=3)
    if isinstance(self.tokenizer, text_lib.WordTokenizer):
      unknown = sorted({word for prompt in prompts for word in text_lib.clean_text(prompt)
                        if self.tokenizer.token_ids(word) == [UNK_ID]})
      if unknown:
        warnings.warn(
            f"words not in the run's vocabulary read as <unk> (the model never learned "
            f"them): {', '.join(unknown)}", stacklevel=3)
    return np.asarray(ids, np.int32), np.asarray(mask, bool)

  def encode(self, prompts: Sequence[str]) -> np.ndarray:
    """Sentence embeddings [N, D] float32 of the prompts (the generator's condition)."""
    ids, mask = self.tokenize(prompts)
    rows = len(ids)
    ids, mask = self._pad_rows(ids), self._pad_rows(mask)
    sentence = self._encode(self.params["text_encoder"], self.params["frozen_text"],
                            *self._put(ids, mask))
    return np.asarray(jax.device_get(sentence))[:rows]

  # --- Generation --------------------------------------------------------------

  def _pad_rows(self, x: np.ndarray, size: int | None = None) -> np.ndarray:
    """Repeats the last row up to ``size`` (default: a multiple of the devices)."""
    n = len(x)
    if size is None:
      size = -(-n // len(self.devices)) * len(self.devices)
    if size == n:
      return x
    return np.concatenate([x, np.repeat(x[-1:], size - n, axis=0)])

  def _put(self, *arrays):
    return [jax.device_put(a, self._split) for a in arrays]

  def _chunk_size(self, batch_size: int) -> int:
    if int(batch_size) < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    # Every chunk (the last one padded) has this many rows whatever the number
    # of images, so one program serves all calls with this batch_size and an
    # image never depends on its companions, bit for bit. A multiple of the
    # device count, so the batch splits evenly.
    return -(-int(batch_size) // len(self.devices)) * len(self.devices)

  def _noise_inputs(self, prompts, num_per_prompt):
    if int(num_per_prompt) < 1:
      raise ValueError(f"num_per_prompt must be >= 1, got {num_per_prompt}")
    num = int(num_per_prompt)
    hashes = np.repeat(np.asarray([prompt_hash(p) for p in prompts], np.uint32), num)
    indices = np.tile(np.arange(num, dtype=np.uint32), len(prompts))
    return hashes, indices

  def noise(self, prompts: Sequence[str], num_per_prompt: int = 1, seed: int = 0,
            truncation: float = 1.0) -> np.ndarray:
    """The noise :meth:`generate` uses: float32 [N_p * num_per_prompt, z_dim]."""
    seed, truncation = _check_seed(seed), check_truncation(truncation)
    hashes, indices = self._noise_inputs(list(prompts), num_per_prompt)
    rows = len(hashes)
    z = self._noise(np.uint32(seed), *self._put(self._pad_rows(hashes),
                                                self._pad_rows(indices)),
                    np.float32(truncation), self.models.z_dim)
    return np.asarray(jax.device_get(z))[:rows]

  def generate(self, prompts: Sequence[str], num_per_prompt: int = 1, seed: int = 0,
               truncation: float = 1.0, batch_size: int = 32, best_of: int = 1,
               rank_by: str = "words") -> np.ndarray:
    """Generates images from the EMA generator.

    Args:
      prompts: N_p strings.
      num_per_prompt: images per prompt.
      seed: the noise seed, in [0, 2**32).
      truncation: ``psi`` in (0, 1]. 1.0 (off) draws the noise from the standard
        normal; below 1, each value comes from the standard normal truncated to
        [-2 psi, 2 psi] (BigGAN's truncation trick: less variety, more typical
        images).
      batch_size: images per call of the compiled generator (rounded up to a
        multiple of the device count); a short last batch is padded. It sets
        memory and speed, not the images (see the module docstring).
      best_of: candidates drawn for each image, of which the one D scores best
        by ``rank_by`` is kept (:meth:`score`; DALL-E's reranking, with the
        run's own D as the judge). Candidate ``c`` of image ``j`` is image
        ``j * best_of + c`` of ``generate(prompts, num_per_prompt * best_of)``
        (so image 0's first candidate is ``best_of=1``'s image 0). 1 (the
        default) draws one and scores nothing; above 1 the pipeline needs its
        discriminator (not in an exported model).
      rank_by: the score ``best_of`` ranks by (see :meth:`score`).

    Returns:
      float32 [N_p * num_per_prompt, H, W, 3] in [-1, 1], prompt-major: image
      ``j`` of prompt ``p`` is row ``p * num_per_prompt + j``.
    """
    seed, truncation = _check_seed(seed), check_truncation(truncation)
    best_of, rank_by = check_best_of(best_of, rank_by)
    if best_of > 1:
      self._score_program(rank_by)  # a wrong rank_by or a missing D fails before generating
    draws = int(num_per_prompt) * best_of
    ids, mask = self.tokenize(prompts)
    hashes, indices = self._noise_inputs(prompts, draws)
    ids = np.repeat(ids, draws, axis=0)
    mask = np.repeat(mask, draws, axis=0)
    images = self._in_chunks(
        lambda hashes, indices, ids, mask: self._generate(
            *self._generator_params(), np.uint32(seed), hashes, indices,
            np.float32(truncation), ids, mask),
        (hashes, indices, ids, mask), batch_size)
    if best_of == 1:
      return images
    scores = self._scores(images, ids, mask, rank_by, batch_size).reshape(-1, best_of)
    candidates = images.reshape(scores.shape + images.shape[1:])
    return candidates[np.arange(len(scores)), np.argmax(scores, axis=1)]

  def score(self, prompts: Sequence[str], images, by: str = "words",
            batch_size: int = 32) -> np.ndarray:
    """How well the run's discriminator finds each prompt in its image.

    Args:
      prompts: N strings, prompt i for image i.
      images: float [N, H, W, 3] in [-1, 1] (as :meth:`generate` gives them).
      by: ``"words"`` (the log-likelihood of the prompt's words under D's
        caption-word head), ``"contrastive"`` (the cosine of D's image and
        caption embeddings) or ``"match"`` (D's matching-aware logit); see
        :func:`jaxgan.models.gan.make_score_fn`.
      batch_size: images per call of the compiled scorer.

    Returns:
      float32 [N], higher: the image shows its prompt better. Comparable
      between images of one prompt; across prompts the word scores also
      reflect how many words a prompt has.
    """
    self._score_program(by)
    ids, mask = self.tokenize(prompts)
    images = np.asarray(images, np.float32)
    size = int(self.config.image_size)
    if images.shape != (len(ids), size, size, 3):
      raise ValueError(f"images must be [number of prompts, {size}, {size}, 3] = "
                       f"[{len(ids)}, {size}, {size}, 3], got {list(images.shape)}")
    return self._scores(images, ids, mask, by, batch_size)

  def _score_program(self, by: str):
    """The compiled scorer ``by`` (see :meth:`score`), built on first use."""
    if by not in gan_lib.SCORES:
      raise ValueError(f"unknown score {by!r}: one of {', '.join(gan_lib.SCORES)}")
    if self.params["discriminator"] is None:
      raise ValueError("scoring images needs the run's discriminator, which an exported "
                       "model leaves out: load the run directory instead")
    if by not in self._score_programs:
      self._score_programs[by] = jax.jit(gan_lib.make_score_fn(self.models, by),
                                         out_shardings=self._split)
    return self._score_programs[by]

  def _scores(self, images, ids, mask, by: str, batch_size: int) -> np.ndarray:
    program = self._score_program(by)
    return self._in_chunks(
        lambda *batch: program(self.params["discriminator"], self.params["text_encoder"],
                               self.params["frozen_text"], *batch),
        (images, ids, mask), batch_size)

  def generate_from_noise(self, prompts: Sequence[str], noise,
                          batch_size: int = 32) -> np.ndarray:
    """Generates one image per prompt from the noise given (the EMA generator).

    With the same noise under captions that differ in one word, the images
    show what that word changes and nothing else: ``noise`` can come from
    :meth:`noise` (then ``generate_from_noise(p, noise(p))`` equals
    :meth:`generate` up to float rounding) or from anywhere.

    Args:
      prompts: N strings.
      noise: float [N, z_dim], row i for prompt i.
      batch_size: images per call of the compiled generator (see :meth:`generate`).

    Returns:
      float32 [N, H, W, 3] in [-1, 1].
    """
    ids, mask = self.tokenize(prompts)
    noise = np.asarray(noise, np.float32)
    if noise.shape != (len(ids), self.models.z_dim):
      raise ValueError(f"noise must be [number of prompts, z_dim] = [{len(ids)}, "
                       f"{self.models.z_dim}], got {list(noise.shape)}")
    return self._in_chunks(lambda *batch: self._images_from(*self._generator_params(), *batch),
                           (noise, ids, mask), batch_size)

  def _generator_params(self) -> tuple[Any, ...]:
    """The params every generating program takes first."""
    return (self.params["generator_ema"], self.params["generator_state"],
            self.params["text_encoder"], self.params["frozen_text"])

  def _in_chunks(self, program, rows: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
    """``program`` over ``rows`` (arrays of one length) in chunks of one padded
    size, on the devices; the outputs' real rows, concatenated on the host."""
    total = len(rows[0])
    chunk = self._chunk_size(batch_size)
    outputs = []
    for start in range(0, total, chunk):
      stop = min(start + chunk, total)
      batch = [self._pad_rows(x[start:stop], chunk) for x in rows]
      outputs.append(np.asarray(jax.device_get(program(*self._put(*batch))))[:stop - start])
    return np.concatenate(outputs)

  def images(self, prompts: Sequence[str], num_per_prompt: int = 1, seed: int = 0,
             truncation: float = 1.0, batch_size: int = 32,
             postprocess: Any = None, best_of: int = 1,
             rank_by: str = "words") -> list[Image.Image]:
    """Like :meth:`generate`, post-processed into PIL images.

    Args:
      postprocess: a chain spec (``"auto_levels denoise resize:2"``, see
        ``jaxgan.postprocess``), a built ``Chain``, or None to denormalise only.
      (others): see :meth:`generate`.

    Returns:
      N_p * num_per_prompt RGB images, prompt-major.
    """
    chain = _as_chain(postprocess)
    pixels = chain(self.generate(prompts, num_per_prompt, seed, truncation, batch_size,
                                 best_of=best_of, rank_by=rank_by))
    return [Image.fromarray(np.ascontiguousarray(p)) for p in pixels]

  def interpolate(self, prompt_a: str, prompt_b: str | None = None, steps: int = 8,
                  seed: int = 0, seed_b: int | None = None, truncation: float = 1.0,
                  postprocess: Any = None) -> np.ndarray:
    """Frames walking from one prompt (and seed) to another.

    The sentence embedding moves linearly from ``prompt_a``'s to
    ``prompt_b``'s. The noise is image 0 of ``(prompt_a, seed)`` throughout, or,
    when ``seed_b`` is given, moves along the great circle to image 0 of
    ``(prompt_b, seed_b)``. The first frame is therefore
    ``generate([prompt_a], seed=seed)[0]``, and with ``seed_b`` the last is
    ``generate([prompt_b], seed=seed_b)[0]`` (up to float rounding).

    Args:
      prompt_a: the start prompt.
      prompt_b: the end prompt; None keeps ``prompt_a`` (then give ``seed_b``).
      steps: number of frames, >= 2.
      seed: noise seed of the start.
      seed_b: noise seed of the end; None keeps the start noise.
      truncation: see :meth:`generate`.
      postprocess: see :meth:`images`.

    Returns:
      uint8 [steps, H', W', 3] frames.
    """
    if int(steps) < 2:
      raise ValueError(f"an interpolation needs steps >= 2, got {steps}")
    if prompt_b is None and seed_b is None:
      raise ValueError("interpolate needs two prompts, or one prompt and seed_b")
    prompt_b = prompt_a if prompt_b is None else prompt_b
    reads_words = self.models.generator_reads_words
    if reads_words and prompt_b != prompt_a:
      # Its frames move the sentence embedding; such a G reads the caption's
      # words as well, which do not blend between two captions.
      raise ValueError("this run's generator attends over the caption's words "
                       "(model.word_attention), which do not blend between two prompts: "
                       "interpolate between two seeds of one prompt (seed_b) instead")
    seed, truncation = _check_seed(seed), check_truncation(truncation)
    ends = [(prompt_a, seed), (prompt_b, seed if seed_b is None else _check_seed(seed_b))]
    z = [self.noise([p], 1, s, truncation)[0] for p, s in ends]
    ts = np.linspace(0.0, 1.0, int(steps))
    frame_z = np.stack([z[0] if seed_b is None else _slerp(z[0], z[1], t) for t in ts])
    frame_z = self._pad_rows(frame_z)
    if reads_words:
      # One prompt: only the noise moves, and every frame reads its words.
      ids, mask = (np.repeat(a, len(frame_z), axis=0) for a in self.tokenize([prompt_a]))
      images = self._images_from(self.params["generator_ema"], self.params["generator_state"],
                                 self.params["text_encoder"], self.params["frozen_text"],
                                 *self._put(frame_z, ids, mask))
    else:
      sentences = self.encode([prompt_a, prompt_b])
      frame_s = np.stack([(1.0 - t) * sentences[0] + t * sentences[1] for t in ts])
      images = self._synthesize(self.params["generator_ema"], self.params["generator_state"],
                                *self._put(frame_z, self._pad_rows(frame_s.astype(np.float32))))
    return _as_chain(postprocess)(np.asarray(jax.device_get(images))[:int(steps)])


def _as_chain(postprocess: Any) -> postprocess_lib.Chain:
  if isinstance(postprocess, postprocess_lib.Chain):
    return postprocess
  return postprocess_lib.build_postprocess(postprocess or None)


# --- Loading a run ------------------------------------------------------------------


def _checkpoint_manager(workdir: str) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      run_lib.checkpoint_dir(workdir),
      options=ocp.CheckpointManagerOptions(create=False),
      item_handlers={"state": ocp.PyTreeCheckpointHandler()})


def _flat(tree: Any) -> dict[str, Any]:
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {jax.tree_util.keystr(path): leaf for path, leaf in leaves}


def _check_matches(expected: Any, saved: Any, workdir: str, step: int) -> None:
  """Raises ValueError naming the first parameter that differs in name or shape."""
  want, have = _flat(expected), _flat(saved)
  problem = None
  for name in sorted(set(want) | set(have)):
    if name not in have:
      problem = f"{name} is missing from the checkpoint"
    elif name not in want:
      problem = f"the checkpoint has {name}, which config.json does not build"
    elif tuple(want[name].shape) != tuple(have[name].shape):
      problem = (f"{name} has shape {tuple(have[name].shape)} in the checkpoint but "
                 f"{tuple(want[name].shape)} from config.json")
    elif np.dtype(want[name].dtype) != np.dtype(have[name].dtype):
      problem = (f"{name} is {np.dtype(have[name].dtype)} in the checkpoint but "
                 f"{np.dtype(want[name].dtype)} from config.json")
    if problem:
      break
  if problem:
    raise ValueError(
        f"the checkpoint at step {step} in {workdir!r} does not match the run's "
        f"config.json ({problem}); was config.json edited, or the checkpoints copied "
        f"from another run?")


def abstract_params(models: GanModels, config: ml_collections.ConfigDict,
                    pretrained_text: Any = None) -> dict[str, Any]:
  """Shapes and dtypes of the params named in :data:`RESTORED_KEYS` (nothing allocated)."""
  nets = jax.eval_shape(
      lambda key, text: models.init(key, image_size=config.image_size,
                                    max_length=config.text.max_length, frozen_text=text),
      jax.random.key(0), pretrained_text)
  nets["generator_ema"] = nets.pop("generator")
  return nets


def available_steps(workdir: str) -> list[int]:
  """The steps of the complete checkpoints in ``workdir``, ascending."""
  directory = run_lib.checkpoint_dir(workdir)
  if not os.path.isdir(directory):
    return []
  manager = _checkpoint_manager(workdir)
  try:
    return sorted(manager.all_steps())
  finally:
    manager.close()


def _checkpoint_step(workdir: str, step: int | None) -> int:
  """``step``, or the latest, checked against the run's complete checkpoints."""
  steps = available_steps(workdir)
  if not steps:
    raise FileNotFoundError(
        f"no checkpoint in {workdir!r}; train first with `python train.py --config "
        f"configs/base.py --workdir {workdir}` (it saves every config.checkpoint_every "
        f"steps).")
  if step is None:
    return steps[-1]
  if int(step) not in steps:
    raise ValueError(f"no checkpoint at step {step} in {workdir!r}; available steps: "
                     f"{', '.join(map(str, steps))}")
  return int(step)


class Networks(NamedTuple):
  """Every network of a run as saved at one step (D too), for read-only tools
  such as ``scripts/feature_probes.py``; generation uses :class:`Pipeline`."""

  config: ml_collections.ConfigDict
  tokenizer: Any
  models: GanModels
  frozen_text: Any  # a pretrained encoder's params; None for learned encoders
  step: int
  state: dict[str, Any]  # the saved TrainState's fields, host arrays


def load_networks(workdir: str, step: int | None = None) -> Networks:
  """Loads a run's modules and the state saved at ``step`` (None: the latest).

  Raises:
    FileNotFoundError: not a run, or a run without a checkpoint yet.
    ValueError: ``step`` has no checkpoint.
  """
  config = run_lib.load_config(workdir)
  tokenizer = text_lib.load_tokenizer(workdir)
  models, frozen_text = run_lib.build_gan(config, tokenizer)
  step = _checkpoint_step(workdir, step)
  return Networks(config, tokenizer, models, frozen_text, step,
                  run_lib.read_saved_state(workdir, step))


def load_pipeline(workdir: str, step: int | None = None,
                  devices: Sequence[jax.Device] | None = None) -> Pipeline:
  """Loads a trained run for sampling.

  Args:
    workdir: the run directory (``config.json``, ``tokenizer.json``,
      checkpoints), or a directory written by ``export.py``.
    step: the checkpoint to load; None for the latest (an exported model has
      only the one it was exported from).
    devices: devices to place the params on (replicated) and to split batches
      over; all local devices when None. Need not match the training devices.

  Returns:
    A :class:`Pipeline`.

  Raises:
    FileNotFoundError: not a run, or a run without a checkpoint yet.
    ValueError: ``step`` has no checkpoint (the message lists those there), or
      the checkpoint does not match ``config.json``.
  """
  workdir = os.path.abspath(workdir)
  if os.path.isfile(os.path.join(workdir, EXPORT_FILE)):
    return _load_exported(workdir, step, devices)
  config = run_lib.load_config(workdir)
  tokenizer = text_lib.load_tokenizer(workdir)
  models, pretrained_text = run_lib.build_gan(config, tokenizer)
  step = _checkpoint_step(workdir, step)

  devices = list(jax.local_devices() if devices is None else devices)
  replicated = sharding.replicated(sharding.make_mesh(devices))
  abstract = abstract_params(models, config, pretrained_text)
  # A frozen encoder's params come from its package, not the checkpoint; its
  # ``text_encoder`` entry (empty without an adapter) is compared, so a swapped
  # encoder is caught, and read only when it holds an adapter.
  compared = {k: abstract[k] for k in RESTORED_KEYS}
  keys = [k for k in RESTORED_KEYS if k != "text_encoder" or models.has_text_params]
  expected = {k: compared[k] for k in keys}

  # PyTree (not Standard), because only it restores a subset of the saved tree.
  saved = run_lib.saved_state_tree(workdir, step)
  handler = ocp.PyTreeCheckpointHandler()
  try:
    missing = [k for k in RESTORED_KEYS if k not in saved]
    if missing:
      raise ValueError(f"the checkpoint at step {step} in {workdir!r} has no "
                       f"{', '.join(missing)}; it was not written by jaxgan's trainer")
    _check_matches(compared, {k: saved[k] for k in RESTORED_KEYS}, workdir, step)
    item = run_lib.abstract_like(expected, replicated)
    restore_args = jax.tree.map(
        lambda x: ocp.ArrayRestoreArgs(sharding=replicated, global_shape=x.shape,
                                       dtype=x.dtype), expected)
    restored = handler.restore(
        epath.Path(run_lib.state_item(workdir, step)),
        args=ocp.args.PyTreeRestore(item=item, restore_args=restore_args,
                                    partial_restore=True))
  finally:
    handler.close()

  params = {k: restored[k] if k in keys else compared[k] for k in RESTORED_KEYS}
  params["frozen_text"] = pretrained_text
  return Pipeline(config, tokenizer, models, params, step=step, devices=devices)


def _check_frozen_files(recorded: dict[str, Any], directory: str) -> None:
  """Raises ValueError if the frozen encoder's files differ from those exported with."""
  found = text_lib.pretrained.describe_model_dir(recorded["model_dir"])
  changed = sorted(name for name, digest in recorded["files"].items()
                   if found["files"].get(name) != digest)
  if changed:
    source = (f"{recorded['package']}=={recorded['version']}" if recorded["package"]
              else recorded["model_dir"])
    raise ValueError(
        f"the frozen text encoder's files differ from those {directory!r} was exported "
        f"with ({', '.join(changed)}); it needs {source}")


def _load_exported(directory: str, step: int | None,
                   devices: Sequence[jax.Device] | None) -> Pipeline:
  """:func:`load_pipeline` for a directory written by :func:`jaxgan.export.export_run`."""
  with open(os.path.join(directory, EXPORT_FILE)) as f:
    manifest = json.load(f)
  if manifest.get("format") != EXPORT_FORMAT:
    raise ValueError(f"{directory!r} holds an export of format {manifest.get('format')!r}; "
                     f"this jaxgan reads format {EXPORT_FORMAT}")
  if step is not None and int(step) != manifest["step"]:
    raise ValueError(f"{directory!r} is an exported model of step {manifest['step']} "
                     f"only; got step={step}")
  if manifest["frozen_text"] is not None:
    _check_frozen_files(manifest["frozen_text"], directory)
  config = run_lib.load_config(directory)
  tokenizer = text_lib.load_tokenizer(directory)
  models, pretrained_text = run_lib.build_gan(config, tokenizer)
  with open(os.path.join(directory, PARAMS_FILE), "rb") as f:
    saved = flax.serialization.msgpack_restore(f.read())
  expected = abstract_params(models, config, pretrained_text)
  _check_matches({k: expected[k] for k in EXPORTED_KEYS},
                 {k: saved.get(k, {}) for k in EXPORTED_KEYS}, directory, manifest["step"])
  params = {k: saved.get(k, {}) for k in EXPORTED_KEYS}
  # Not exported: the discriminator serves training and image scoring only.
  params["discriminator"] = None
  params["frozen_text"] = pretrained_text
  return Pipeline(config, tokenizer, models, params, step=manifest["step"],
                  devices=devices)
