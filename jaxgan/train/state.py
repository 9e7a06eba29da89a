"""The training state pytree and how it is created."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import ml_collections
import optax

from jaxgan import config as config_lib
from jaxgan.models.gan import GanModels


@flax.struct.dataclass
class TrainState:
  """Everything a checkpoint holds about the networks.

  A learned text encoder is trained by the discriminator's optimizer (its
  signal is D's matching-aware loss). A pretrained encoder is frozen: its
  params live outside the state (no gradients, no optimizer state, not in
  checkpoints) and ``text_encoder`` holds its adapter's params, or is empty
  when it has none.

  ``caption_queue`` holds the sentence embeddings of the last captions seen
  ([loss.mismatch_queue, sentence size]) where the step reads them: D's
  mismatched captions are drawn from them (``loss.mismatch="hardest"``), or
  the contrastive loss scores images against them
  (``loss.contrastive_queue``). None otherwise, and in runs saved before it
  existed. Slots not written yet are zeros, which D's heads embed before the
  step masks them out, so those heads must stay finite on a zero sentence.
  """

  step: jax.Array
  generator: Any
  generator_state: Any
  generator_ema: Any
  discriminator: Any
  text_encoder: Any
  g_opt_state: Any
  d_opt_state: Any
  caption_queue: Any = None


def _per_leaf_optimizers(config: ml_collections.ConfigDict):
  optim = config.optim
  g_tx = optax.adam(optim.g_lr, b1=optim.b1, b2=optim.b2)
  d_tx = optax.adam(optim.d_lr, b1=optim.b1, b2=optim.b2)
  return g_tx, d_tx


def make_optimizers(config: ml_collections.ConfigDict):
  """Adam for G and D with the DF-GAN defaults (betas 0.0/0.9, TTUR rates).

  What each optimizer updates (G; D with the text params) is raveled into
  one vector before Adam (``optax.flatten``). Adam is elementwise, so the
  update is the same (where leaves of lower precision are mixed in, their
  moments are kept in the vector's promoted dtype); but per leaf, XLA
  compiles the bookkeeping once for each of the base config's 146 leaves.
  Raveled, with the step's norms and finite check, the base step has half
  the fusions and compiles 4-8 s faster (benchmarks/README.md). The moments
  are saved as those vectors; runs saved with per-leaf moments are converted
  when they resume (:func:`flatten_optimizer_states`).
  """
  return tuple(optax.flatten(tx) for tx in _per_leaf_optimizers(config))


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
  state = state.replace(d_opt_state=d_tx.init(d_trainable_params(models, state)))
  if config_lib.uses_caption_queue(config):
    ids = jnp.zeros((1, config.text.max_length), jnp.int32)
    sentence = jax.eval_shape(models.encode_text, state.text_encoder, ids,
                              jnp.ones(ids.shape, bool), frozen_text)
    # Zeros until filled: the step only draws from the entries written so far.
    state = state.replace(caption_queue=jnp.zeros(
        (config.loss.mismatch_queue, sentence.shape[-1]), jnp.float32))
  return state


def _is_adam_state(node: Any) -> bool:
  return isinstance(node, optax.ScaleByAdamState)


def per_leaf_optimizer_states(models: GanModels, config: ml_collections.ConfigDict,
                              state: TrainState) -> TrainState:
  """``state`` with the optimizer states laid out per param leaf, as runs
  saved them before :func:`make_optimizers` raveled the params: the target
  for restoring such a checkpoint. Shapes only (``jax.ShapeDtypeStruct``)."""
  g_tx, d_tx = _per_leaf_optimizers(config)
  return state.replace(
      g_opt_state=jax.eval_shape(g_tx.init, state.generator),
      d_opt_state=jax.eval_shape(d_tx.init, d_trainable_params(models, state)))


def flatten_optimizer_states(state: TrainState) -> TrainState:
  """Converts per-leaf Adam moments into :func:`make_optimizers`' vectors.

  ``optax.flatten`` ravels the params in ``jax.tree`` order, the order
  ``ravel_pytree`` gives the moments (they are shaped like the params), so
  every moment keeps its entry.
  """
  def ravel_moments(opt_state):
    return jax.tree.map(
        lambda s: s._replace(mu=ravel_pytree(s.mu)[0], nu=ravel_pytree(s.nu)[0])
        if _is_adam_state(s) else s,
        opt_state, is_leaf=_is_adam_state)

  return state.replace(g_opt_state=ravel_moments(state.g_opt_state),
                       d_opt_state=ravel_moments(state.d_opt_state))
