"""The training state pytree and how it is created."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxgan.models.gan import GanModels


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
  nets = models.init(key, image_size=config.image_size,
                     max_length=config.text.max_length, frozen_text=frozen_text)
  g_tx, d_tx = make_optimizers(config)
  state = TrainState(
      step=jnp.zeros((), jnp.int32),
      generator=nets["generator"],
      generator_state=nets["generator_state"],
      generator_ema=jax.tree.map(jnp.copy, nets["generator"]),
      discriminator=nets["discriminator"],
      text_encoder=nets["text_encoder"],
      g_opt_state=g_tx.init(nets["generator"]),
      d_opt_state=None)
  return state.replace(d_opt_state=d_tx.init(d_trainable_params(models, state)))
