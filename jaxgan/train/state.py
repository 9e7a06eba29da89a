"""The training state pytree and how it is created."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxgan.text.base import TextEncoding


@dataclasses.dataclass(frozen=True)
class GanModels:
  """The (stateless) modules of a run; their params live in :class:`TrainState`.

  Attributes:
    generator: G(z, sentence) -> image in [-1, 1].
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
  """

  generator: nn.Module
  discriminator: nn.Module
  text_encoder: nn.Module
  text_frozen: bool
  generator_has_state: bool
  z_dim: int
  sentence_scale: float = 1.0
  text_adapter: nn.Module | None = None

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
    return jax.lax.stop_gradient(
        self.text_encoder.apply({"params": frozen_text}, ids, mask))

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
    if frozen_encoding is None:
      return self.text_encoder.apply({"params": text_params}, ids, mask).sentence
    if self.text_adapter is not None:
      return self.text_adapter.apply({"params": text_params}, frozen_encoding).sentence
    return frozen_encoding.sentence * self.sentence_scale

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

  def generate(self, params, state, z, sentence, *, train: bool):
    """Returns (images, new generator state)."""
    variables = {"params": params, **state}
    if not self.generator_has_state:
      return self.generator.apply(variables, z, sentence), state
    if train:
      images, updates = self.generator.apply(variables, z, sentence, train=True,
                                             mutable=list(state))
      return images, dict(updates)
    return self.generator.apply(variables, z, sentence, train=False), state

  def d_features(self, params, images):
    return self.discriminator.apply({"params": params}, images, method="features")

  def d_logits(self, params, features, sentence):
    return self.discriminator.apply({"params": params}, features, sentence,
                                    method="logits")


@flax.struct.dataclass
class TrainState:
  """Everything a checkpoint holds about the networks.

  A learned text encoder is trained by the discriminator's optimizer (its
  signal is D's matching-aware loss). A pretrained encoder is frozen: its
  params live outside the state (no gradients, no optimizer state, not in
  checkpoints) and ``text_encoder`` holds its adapter's params, or is empty
  when it has none.
  """

  step: jax.Array
  generator: Any
  generator_state: Any
  generator_ema: Any
  discriminator: Any
  text_encoder: Any
  g_opt_state: Any
  d_opt_state: Any


def make_optimizers(config: ml_collections.ConfigDict):
  """Adam for G and D with the DF-GAN defaults (betas 0.0/0.9, TTUR rates)."""
  optim = config.optim
  g_tx = optax.adam(optim.g_lr, b1=optim.b1, b2=optim.b2)
  d_tx = optax.adam(optim.d_lr, b1=optim.b1, b2=optim.b2)
  return g_tx, d_tx


def d_trainable_params(models: GanModels, state: TrainState) -> dict[str, Any]:
  """What D's optimizer updates: D, plus the state's text params (a learned
  encoder, or a frozen encoder's adapter) when there are any."""
  params = {"discriminator": state.discriminator}
  if models.has_text_params:
    params["text_encoder"] = state.text_encoder
  return params


def init_state(models: GanModels, config: ml_collections.ConfigDict, key: jax.Array,
               *, frozen_text: Any = None) -> TrainState:
  """Initialises every network from one key.

  Args:
    models: the modules.
    config: the run config.
    key: the init key (derived from ``config.seed``).
    frozen_text: a pretrained text encoder's params (kept out of the state);
      None for a learned encoder. The learned encoder or the adapter is
      initialised here.

  Returns:
    A fresh :class:`TrainState` at step 0.
  """
  g_key, d_key, t_key = jax.random.split(key, 3)
  length = config.text.max_length
  ids = jnp.zeros((2, length), jnp.int32)
  mask = jnp.ones((2, length), bool)
  text_params = models.init_text(t_key, ids, mask, frozen_text)
  sentence = models.encode_text(text_params, ids, mask, frozen_text)
  z = jnp.zeros((2, models.z_dim), jnp.float32)
  size = config.image_size
  images = jnp.zeros((2, size, size, 3), jnp.float32)
  g_kwargs = {"train": False} if models.generator_has_state else {}
  g_state = dict(models.generator.init(g_key, z, sentence, **g_kwargs))
  g_params = g_state.pop("params")
  d_params = models.discriminator.init(d_key, images, sentence)["params"]
  g_tx, d_tx = make_optimizers(config)
  state = TrainState(
      step=jnp.zeros((), jnp.int32),
      generator=g_params,
      generator_state=g_state,
      generator_ema=jax.tree.map(jnp.copy, g_params),
      discriminator=d_params,
      text_encoder=text_params,
      g_opt_state=g_tx.init(g_params),
      d_opt_state=None)
  return state.replace(d_opt_state=d_tx.init(d_trainable_params(models, state)))
