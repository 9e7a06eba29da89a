"""The modules of a run in one bundle, and how they are initialised and sampled.

:class:`GanModels` holds a run's (stateless) linen modules; both the trainer
(:mod:`jaxgan.train`) and sampling (:mod:`jaxgan.sampling`) use it, so it lives
with the models and imports nothing of training.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan import losses
from jaxgan.text import pretrained
from jaxgan.text.base import TextEncoding

# How :func:`make_score_fn` can ask D whether an image shows its caption.
SCORES = ("words", "contrastive", "match")
# The D attribute that sizes the head a score reads, and the head's name.
_SCORE_HEADS = {"words": ("word_dim", "caption-word head (model.word_dim)"),
                "contrastive": ("contrastive_dim", "contrastive head (model.contrastive_dim)")}


@dataclasses.dataclass(frozen=True)
class GanModels:
  """The (stateless) modules of a run; their params live in :class:`TrainState`.

  Attributes:
    generator: G(z, sentence) -> image in [-1, 1] (with the caption's token
      states too when it has ``word_attention``).
    discriminator: D with ``features(image)`` and ``logits(features, sentence)``.
    text_encoder: (ids, mask) -> TextEncoding.
    text_frozen: the text encoder is pretrained and frozen (its params live
      outside the state) rather than learned with D (bow, transformer).
    generator_has_state: G keeps non-param collections (batch norm statistics).
    z_dim: noise size.
    sentence_scale: factor applied to the sentence embeddings of a frozen
      encoder without adapter (see :func:`jaxgan.run.build_gan`).
    text_adapter: a learned head on the frozen encoder's token states
      (:class:`jaxgan.text.TokenAdapter`), trained with D; None for none.
    text_pack_fraction: a frozen BERT encoder packs a batch's captions into
      this fraction of its padded tokens when they fit
      (:func:`jaxgan.text.pretrained.encode_packed`); 0 = never.
    word_ids: the sorted token ids D's caption-word head scores, output i
      scoring ``word_ids[i]``; None when it scores every id of the tokenizer.
  """

  generator: nn.Module
  discriminator: nn.Module
  text_encoder: nn.Module
  text_frozen: bool
  generator_has_state: bool
  z_dim: int
  sentence_scale: float = 1.0
  text_adapter: nn.Module | None = None
  text_pack_fraction: float = 0.0
  word_ids: tuple[int, ...] | None = None

  def __post_init__(self):
    # word_head_ids' binary search needs them sorted and distinct.
    if self.word_ids is not None and (
        not self.word_ids or list(self.word_ids) != sorted(set(self.word_ids))):
      raise ValueError(f"word_ids must be sorted, distinct token ids, at least one; got "
                       f"{len(self.word_ids)} ids starting {tuple(self.word_ids[:5])}")

  @property
  def has_text_params(self) -> bool:
    """Whether the state holds text params that D's optimizer trains."""
    return not self.text_frozen or self.text_adapter is not None

  def encode_frozen(self, frozen_text, ids, mask) -> TextEncoding | None:
    """The frozen encoder's output (no gradient), or None for a learned one."""
    if not self.text_frozen:
      return None
    if frozen_text is None:
      raise ValueError("a frozen text encoder needs its pretrained params (frozen_text)")
    # No gradient reaches pretrained weights; cutting it here also skips
    # their backward pass.
    variables = {"params": frozen_text}
    rows = (pretrained.packed_rows(ids.shape[0], self.text_pack_fraction)
            if isinstance(self.text_encoder, pretrained.BertEncoder) else 0)
    if rows:
      encoding = pretrained.encode_packed(self.text_encoder, variables, ids, mask, rows)
    else:
      encoding = self.text_encoder.apply(variables, ids, mask)
    return jax.lax.stop_gradient(encoding)

  @property
  def generator_reads_words(self) -> bool:
    """Whether G also takes the caption's token states (``word_attention``)."""
    return bool(getattr(self.generator, "word_attention", 0))

  def condition_words(self, text_params, ids, mask,
                      frozen_encoding: TextEncoding | None) -> TextEncoding:
    """The text as the GAN reads it: :meth:`condition`'s sentence, with the
    token states (the learned encoder's, the adapter's, or the frozen
    encoder's) and their mask that a word-attending G reads."""
    if frozen_encoding is None:
      return self.text_encoder.apply({"params": text_params}, ids, mask)
    if self.text_adapter is not None:
      return self.text_adapter.apply({"params": text_params}, frozen_encoding)
    return TextEncoding(sentence=frozen_encoding.sentence * self.sentence_scale,
                        words=frozen_encoding.words, mask=frozen_encoding.mask)

  def condition(self, text_params, ids, mask,
                frozen_encoding: TextEncoding | None) -> jax.Array:
    """Sentence embeddings [B, D] float32 from :meth:`encode_frozen`'s output.

    Args:
      text_params: the state's text params: a learned encoder's, or the
        adapter's on a frozen encoder (anything, e.g. ``{}``, for neither).
      ids: [B, L] token ids.
      mask: [B, L] bool.
      frozen_encoding: :meth:`encode_frozen` of the same ids and mask.
    """
    return self.condition_words(text_params, ids, mask, frozen_encoding).sentence

  def encode_text(self, text_params, ids, mask, frozen_text=None) -> jax.Array:
    """Sentence embeddings [B, D] in float32, as the GAN is conditioned on them.

    ``frozen_text`` is a frozen encoder's params (None for a learned encoder);
    see :meth:`condition` for the rest.
    """
    return self.condition(text_params, ids, mask,
                          self.encode_frozen(frozen_text, ids, mask))

  def init_text(self, key: jax.Array, ids, mask, frozen_text=None) -> Any:
    """Fresh trainable text params: the learned encoder's, the adapter's, or {}."""
    if not self.text_frozen:
      return self.text_encoder.init(key, ids, mask)["params"]
    if self.text_adapter is None:
      return {}
    return self.text_adapter.init(key, self.encode_frozen(frozen_text, ids, mask))["params"]

  def generate(self, params, state, z, sentence, *, train: bool,
               words: TextEncoding | None = None):
    """Returns (images, new generator state).

    ``words``: the text's :class:`TextEncoding` (its token states and mask),
    needed when :attr:`generator_reads_words`, ignored otherwise.
    """
    variables = {"params": params, **state}
    kwargs = {}
    if self.generator_reads_words:
      if words is None:
        raise ValueError("this generator attends over the caption's words: pass words=")
      kwargs = {"words": words.words, "word_mask": words.mask}
    if not self.generator_has_state:
      return self.generator.apply(variables, z, sentence, **kwargs), state
    if train:
      images, updates = self.generator.apply(variables, z, sentence, train=True,
                                             mutable=list(state), **kwargs)
      return images, dict(updates)
    return self.generator.apply(variables, z, sentence, train=False, **kwargs), state

  def d_features(self, params, images):
    return self.discriminator.apply({"params": params}, images, method="features")

  @property
  def discriminator_projects_words(self) -> bool:
    """Whether D's logit also scores the caption's words (a word projection
    head): :meth:`d_logits` then needs them."""
    return bool(getattr(self.discriminator, "projection_dim", 0))

  def d_logits(self, params, features, sentence,
               words: tuple[jax.Array, jax.Array] | None = None):
    """D's logit for (image, caption) pairs: [B] float32, higher for real and matching.

    Args:
      params: D's params.
      features: :meth:`d_features` of the images.
      sentence: [B, D] the captions' sentence embeddings.
      words: the captions as ``(head_ids, head_mask)`` of
        :meth:`word_head_ids`; needed (and only read) when D has a word
        projection head, whose mean score over the caption's words is added
        to the matching head's logit.
    """
    logits = self.discriminator.apply({"params": params}, features, sentence,
                                      method="logits")
    if not self.discriminator_projects_words:
      return logits
    if words is None:
      raise ValueError("this discriminator scores the caption's words too (a word "
                       "projection head): pass words=word_head_ids(ids, mask)")
    scores = self.discriminator.apply({"params": params}, features, method="word_projection")
    return logits + losses.caption_word_mean(scores, *words)

  def d_embeddings(self, params, features, sentence):
    """D's unit-norm contrastive embeddings (image, sentence); see
    :meth:`jaxgan.models.dfgan.Discriminator.embeddings`."""
    return self.discriminator.apply({"params": params}, features, sentence,
                                    method="embeddings")

  def d_view_embeddings(self, params, features):
    """D's unit-norm self-supervised embeddings of images; see
    :meth:`jaxgan.models.dfgan.Discriminator.view_embeddings`."""
    return self.discriminator.apply({"params": params}, features,
                                    method="view_embeddings")

  def d_word_logits(self, params, features):
    """D's caption-word logits of images; see
    :meth:`jaxgan.models.dfgan.Discriminator.word_logits`."""
    return self.discriminator.apply({"params": params}, features, method="word_logits")

  def d_region_word_embeddings(self, params, features, words):
    """D's unit-norm region and token embeddings; see
    :meth:`jaxgan.models.dfgan.Discriminator.region_word_embeddings`."""
    return self.discriminator.apply({"params": params}, features, words,
                                    method="region_word_embeddings")

  @property
  def discriminator_reads_words(self) -> bool:
    """Whether D has a word-region head (sized from the token states at init)."""
    return bool(getattr(self.discriminator, "region_dim", 0))

  def word_head_ids(self, ids: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Captions' token ids as indices of D's caption-word outputs.

    Args:
      ids: [B, L] token ids.
      mask: [B, L] True where a token is.

    Returns:
      [B, L] int32 indices into :meth:`d_word_logits`' outputs and the mask,
      False also where the head scores no such id: a word no caption of the
      tokenizer's record (``data.vocab_examples``' captions) used is no label,
      present or absent.
    """
    if self.word_ids is None:
      return ids, mask
    scored = jnp.asarray(self.word_ids, jnp.int32)
    index = jnp.minimum(jnp.searchsorted(scored, ids), len(self.word_ids) - 1).astype(jnp.int32)
    return index, mask & (scored[index] == ids)

  def init(self, key: jax.Array, *, image_size: int, max_length: int,
           frozen_text: Any = None) -> dict[str, Any]:
    """Fresh params of every network from one key.

    Args:
      key: the init key.
      image_size: the image side.
      max_length: the token length.
      frozen_text: a pretrained text encoder's params (kept outside);
        None for a learned encoder.

    Returns:
      ``generator``, ``generator_state`` (non-param collections),
      ``discriminator`` and ``text_encoder`` (see :meth:`init_text`).
    """
    g_key, d_key, t_key = jax.random.split(key, 3)
    ids = jnp.zeros((2, max_length), jnp.int32)
    mask = jnp.ones((2, max_length), bool)
    text_params = self.init_text(t_key, ids, mask, frozen_text)
    encoding = self.condition_words(text_params, ids, mask,
                                    self.encode_frozen(frozen_text, ids, mask))
    sentence = encoding.sentence
    z = jnp.zeros((2, self.z_dim), jnp.float32)
    images = jnp.zeros((2, image_size, image_size, 3), jnp.float32)
    g_kwargs = {"train": False} if self.generator_has_state else {}
    if self.generator_reads_words:
      g_kwargs.update(words=encoding.words, word_mask=encoding.mask)
    g_state = dict(self.generator.init(g_key, z, sentence, **g_kwargs))
    g_params = g_state.pop("params")
    d_kwargs = {"words": encoding.words} if self.discriminator_reads_words else {}
    d_params = self.discriminator.init(d_key, images, sentence, **d_kwargs)["params"]
    return {"generator": g_params, "generator_state": g_state,
            "discriminator": d_params, "text_encoder": text_params}


def make_generate_fn(models: GanModels) -> Callable[..., jax.Array]:
  """``generate(g_params, g_state, text_params, frozen_text, z, ids, mask)``.

  The one way from tokens and noise to images: the training sample grids, the
  :class:`jaxgan.sampling.Pipeline` and the exported model all call it.
  ``frozen_text`` is None for a learned encoder.

  Returns:
    A pure function giving float32 images in [-1, 1].
  """

  def generate(g_params, g_state, text_params, frozen_text, z, ids, mask):
    text = models.condition_words(text_params, ids, mask,
                                  models.encode_frozen(frozen_text, ids, mask))
    images, _ = models.generate(g_params, g_state, z, text.sentence, train=False, words=text)
    return images.astype(jnp.float32)

  return generate


def make_score_fn(models: GanModels, by: str = "words") -> Callable[..., jax.Array]:
  """``score(d_params, text_params, frozen_text, images, ids, mask)``: [B]
  float32, how well D finds each image's caption in it (higher: better).

  ``by`` picks D's reading:

  * ``"words"``: the log-likelihood of the caption's words under D's
    caption-word head (:func:`jaxgan.losses.caption_log_likelihood`): each
    word is its own question ("is there a triangle?"), answered from the image.
  * ``"contrastive"``: the cosine between D's contrastive embeddings of the
    image and of the caption.
  * ``"match"``: D's matching-aware logit (real and matching the caption;
    with a word projection head, its words' term included).

  The heads are D's as trained on (image, caption) pairs.

  Raises:
    ValueError: ``by`` is unknown, or D has no such head.
  """
  if by not in SCORES:
    raise ValueError(f"unknown score {by!r}: one of {', '.join(SCORES)}")
  if by in _SCORE_HEADS:
    size, head = _SCORE_HEADS[by]
    if not getattr(models.discriminator, size, 0):
      raise ValueError(f"this run's discriminator has no {head} to score {by!r} with; "
                       f"'match' (its matching logit) needs none")

  def score(d_params, text_params, frozen_text, images, ids, mask):
    features = models.d_features(d_params, images)
    if by == "words":
      return losses.caption_log_likelihood(models.d_word_logits(d_params, features),
                                           *models.word_head_ids(ids, mask))
    sentence = models.encode_text(text_params, ids, mask, frozen_text)
    if by == "contrastive":
      image_embeddings, sentence_embeddings = models.d_embeddings(d_params, features, sentence)
      return jnp.sum(image_embeddings * sentence_embeddings, axis=-1)
    return models.d_logits(d_params, features, sentence, models.word_head_ids(ids, mask))

  return score
