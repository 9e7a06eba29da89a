"""Generators and discriminators, and a factory that builds a matched pair.

Every generator is called as ``G.apply(variables, z, sentence, train=...)`` and
returns float32 images in [-1, 1]; every discriminator as
``D.apply(params, image, sentence)`` returning [B] float32 logits, with
``method=D.features`` / ``method=D.logits`` to reuse the image features for
matched and mismatched sentences. Only generators listed by
:func:`uses_batch_stats` carry a ``batch_stats`` collection.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxgan.models.dfgan import Discriminator, Generator
from jaxgan.models.gan import GanModels, make_generate_fn
from jaxgan.models.mlp import MLPDiscriminator, MLPGenerator

ARCHS = ("dfgan", "mlp")
# Compute and parameter dtypes a config may name.
DTYPES = ("float32", "bfloat16")

# Architectures whose generator has BatchNorm state ("batch_stats").
_BATCH_STATS = {"dfgan": False, "mlp": True}


def _check_arch(arch: str) -> None:
  if arch not in ARCHS:
    raise ValueError(
        f"unknown model arch {arch!r}; valid: {', '.join(ARCHS)}")


def uses_batch_stats(arch: str) -> bool:
  """Whether the generator of ``arch`` has a ``batch_stats`` collection.

  Args:
    arch: one of :data:`ARCHS`.

  Returns:
    True if G must be applied with ``mutable=["batch_stats"]`` in training.

  Raises:
    ValueError: for an unknown ``arch``.
  """
  _check_arch(arch)
  return _BATCH_STATS[arch]


def build_models(arch: str, image_size: int, nf: int = 32,
                 dtype: Any = "float32",
                 param_dtype: Any = "float32",
                 contrastive_dim: int = 0,
                 text_stem: bool = False,
                 coordinates: bool = False,
                 word_attention: int = 0,
                 view_dim: int = 0,
                 d_residual_init: float = 0.0,
                 d_nf: int = 0,
                 word_dim: int = 0,
                 word_vocab: int = 0,
                 region_dim: int = 0,
                 projection_dim: int = 0) -> tuple[nn.Module, nn.Module]:
  """Builds an unbound (generator, discriminator) pair.

  Args:
    arch: "dfgan" or "mlp".
    image_size: image side (DF-GAN: a power of two in [16, 256]).
    nf: DF-GAN base width; ignored by "mlp".
    dtype: compute dtype, a name such as "bfloat16" or a dtype.
    param_dtype: parameter dtype, likewise.
    contrastive_dim: DF-GAN: size of D's contrastive head (0: none); "mlp"
      has none and refuses it.
    text_stem: DF-GAN: G's 4x4 stem reads the sentence too
      (:class:`Generator`); "mlp" refuses it.
    coordinates: DF-GAN: G's fusions see each pixel's row and column
      (:class:`Generator`); "mlp" refuses it.
    word_attention: DF-GAN: width of G's per-pixel attention over the
      caption's words (0: none; :class:`Generator`); "mlp" refuses others.
    view_dim: DF-GAN: size of D's self-supervised head (0: none; see
      :meth:`Discriminator.view_embeddings`); "mlp" has none and refuses it.
    d_residual_init: DF-GAN: where D's residual gammas start (0: DF-GAN's);
      "mlp" refuses others.
    d_nf: DF-GAN: D's base width; 0: ``nf`` (G's and D's alike, as in
      DF-GAN); "mlp" refuses others.
    word_dim: DF-GAN: hidden size of D's caption-word head (0: none; see
      :meth:`Discriminator.word_logits`); "mlp" has none and refuses it.
    word_vocab: the number of token ids that head scores.
    region_dim: DF-GAN: size of D's word-region head (0: none; see
      :meth:`Discriminator.region_word_embeddings`); "mlp" has none and
      refuses it.
    projection_dim: DF-GAN: hidden size of D's word projection head over
      the ``word_vocab`` ids (0: none; see
      :meth:`Discriminator.word_projection`); "mlp" has none and refuses it.

  Returns:
    ``(generator, discriminator)`` linen modules.

  Raises:
    ValueError: for an unknown ``arch``, dtype name or invalid ``image_size``.
  """
  _check_arch(arch)
  try:
    kw = dict(dtype=jnp.dtype(dtype), param_dtype=jnp.dtype(param_dtype))
  except TypeError as e:
    raise ValueError(f"invalid dtype {dtype!r} / {param_dtype!r}") from e
  if arch == "dfgan":
    return (Generator(nf=nf, image_size=image_size, text_stem=text_stem,
                      coordinates=coordinates, word_attention=word_attention, **kw),
            Discriminator(nf=d_nf or nf, image_size=image_size, contrastive_dim=contrastive_dim,
                          view_dim=view_dim, residual_init=d_residual_init,
                          word_dim=word_dim, word_vocab=word_vocab,
                          region_dim=region_dim, projection_dim=projection_dim, **kw))
  if contrastive_dim:
    raise ValueError(f"the {arch!r} discriminator has no contrastive head; "
                     f"contrastive_dim must be 0")
  if text_stem:
    raise ValueError(f"the {arch!r} generator has no 4x4 stem; text_stem must be False")
  if coordinates:
    raise ValueError(f"the {arch!r} generator has no fusion blocks; coordinates must be False")
  if word_attention:
    raise ValueError(f"the {arch!r} generator has no fusion blocks; word_attention must be 0")
  if view_dim:
    raise ValueError(f"the {arch!r} discriminator has no self-supervised head; "
                     f"view_dim must be 0")
  if d_residual_init:
    raise ValueError(f"the {arch!r} discriminator has no residual blocks; "
                     f"d_residual_init must be 0")
  if word_dim:
    raise ValueError(f"the {arch!r} discriminator has no caption-word head; "
                     f"word_dim must be 0")
  if region_dim:
    raise ValueError(f"the {arch!r} discriminator has no word-region head; "
                     f"region_dim must be 0")
  if projection_dim:
    raise ValueError(f"the {arch!r} discriminator has no word projection head; "
                     f"projection_dim must be 0")
  if d_nf:
    raise ValueError(f"the {arch!r} discriminator has no width setting; d_nf must be 0")
  return (MLPGenerator(image_size=image_size, **kw),
          MLPDiscriminator(image_size=image_size, **kw))


__all__ = [
    "ARCHS", "DTYPES", "Discriminator", "GanModels", "Generator", "MLPDiscriminator",
    "MLPGenerator", "build_models", "make_generate_fn", "uses_batch_stats",
]
