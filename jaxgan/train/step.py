"""The pure training step: one discriminator update, then one generator update.

``(state, batch) -> (state, metrics)``; jitted once by the loop with explicit
shardings and the state donated. Per-step randomness comes from folding the
step into the run's root key, so a resumed run draws the same numbers as an
uninterrupted one, on any number of devices.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxgan import losses
from jaxgan.models.gan import GanModels
from jaxgan.train.state import TrainState, d_trainable_params, make_optimizers


def images_to_float(images_uint8: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return images_uint8.astype(jnp.float32) / 127.5 - 1.0


def _global_norm(tree) -> jax.Array:
  leaves = jax.tree.leaves(tree)
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))


def ema_decay(step: jax.Array, batch_size: int, halflife_images: float,
              rampup: float) -> jax.Array:
  """The EMA decay of this step, from a half-life counted in images.

  With a ramp-up the half-life is at most ``rampup`` times the images seen so
  far: early on the average follows G closely instead of holding on to the
  random initialisation (the StyleGAN recipe).
  """
  halflife = jnp.float32(halflife_images)
  if rampup > 0:
    seen = step.astype(jnp.float32) * batch_size
    halflife = jnp.minimum(halflife, seen * rampup)
  return jnp.where(halflife > 0, 0.5 ** (batch_size / jnp.maximum(halflife, 1e-8)), 0.0)


def _ema(ema, params, decay):
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def make_train_step(models: GanModels, config: ml_collections.ConfigDict,
                    root_key: jax.Array) -> Callable[..., tuple[TrainState, dict]]:
  """Builds ``train_step(state, batch, frozen_text) -> (state, metrics)`` for a run.

  ``frozen_text`` holds a pretrained text encoder's params (None for learned
  encoders, whose params are in the state). It is an argument rather than a
  closure so the weights are not baked into the compiled program as constants,
  and it stays out of checkpoints and optimizer states.

  Args:
    models: the run's modules.
    config: the run config (loss kind, MA-GP weight and power, optimizer).
    root_key: the run's root key; step keys are ``fold_in(root_key, step)``.

  Returns:
    The (unjitted) pure step function.
  """
  d_loss_fn, g_loss_fn = losses.get_loss_fns(config.loss.kind)
  g_tx, d_tx = make_optimizers(config)
  gp_weight = float(config.loss.ma_gp_weight)
  gp_power = float(config.loss.ma_gp_power)
  ema_halflife_images = 1000.0 * float(config.optim.ema_halflife_kimg)
  ema_rampup = float(config.optim.ema_rampup)

  def train_step(state: TrainState, batch: dict[str, jax.Array], frozen_text=None):
    step_key = jax.random.fold_in(root_key, state.step)
    d_noise_key, g_noise_key = jax.random.split(step_key)
    real = images_to_float(batch["image"])
    ids, mask = batch["ids"], batch["mask"]
    batch_size = real.shape[0]

    # A frozen encoder runs once per step; D's and G's passes share it.
    frozen_encoding = models.encode_frozen(frozen_text, ids, mask)

    def encode(trainable_text):
      return models.condition(trainable_text, ids, mask, frozen_encoding)

    # --- Discriminator (and learned text encoder) update. -------------------
    def d_objective(trainable):
      d_params = trainable["discriminator"]
      sentence = encode(trainable.get("text_encoder"))
      # Every sentence paired with the next example's image: the mismatched
      # pairs that make D (and so G) care whether the image fits the text.
      mismatched = jnp.roll(sentence, 1, axis=0)
      z = jax.random.normal(d_noise_key, (batch_size, models.z_dim), jnp.float32)
      # Batch statistics (MLP G) are updated once per step, in the G pass.
      fake, _ = models.generate(state.generator, state.generator_state, z,
                                jax.lax.stop_gradient(sentence), train=True)
      fake = jax.lax.stop_gradient(fake)
      real_features = models.d_features(d_params, real)
      real_logits = models.d_logits(d_params, real_features, sentence)
      mismatched_logits = models.d_logits(d_params, real_features, mismatched)
      fake_logits = models.d_logits(d_params, models.d_features(d_params, fake), sentence)
      adversarial = d_loss_fn(real_logits, fake_logits, mismatched_logits)
      metrics = {
          "d_adv_loss": adversarial,
          "d_real_logit": jnp.mean(real_logits),
          "d_fake_logit": jnp.mean(fake_logits),
          "d_mismatch_logit": jnp.mean(mismatched_logits),
      }
      total = adversarial
      if gp_weight > 0:
        # The penalty smooths D around real matched pairs; it is not a signal
        # for the text encoder, hence the stop_gradient on the sentence.
        def logits_fn(images, sentences):
          return models.d_logits(d_params, models.d_features(d_params, images), sentences)
        penalty = losses.ma_gp(logits_fn, real, jax.lax.stop_gradient(sentence),
                               k=gp_weight, p=gp_power)
        metrics["d_ma_gp"] = penalty
        total = total + penalty
      metrics["d_loss"] = total
      return total, metrics

    d_params = d_trainable_params(models, state)
    (_, d_metrics), d_grads = jax.value_and_grad(
        d_objective, has_aux=True)(d_params)
    d_updates, d_opt_state = d_tx.update(d_grads, state.d_opt_state, d_params)
    d_params = optax.apply_updates(d_params, d_updates)
    text_params = d_params.get("text_encoder", state.text_encoder)

    # --- Generator update against the updated D. ----------------------------
    sentence = jax.lax.stop_gradient(encode(text_params))

    def g_objective(g_params):
      z = jax.random.normal(g_noise_key, (batch_size, models.z_dim), jnp.float32)
      fake, new_g_state = models.generate(g_params, state.generator_state, z, sentence,
                                          train=True)
      logits = models.d_logits(d_params["discriminator"],
                               models.d_features(d_params["discriminator"], fake),
                               sentence)
      loss = g_loss_fn(logits)
      return loss, new_g_state

    (g_loss, g_state), g_grads = jax.value_and_grad(g_objective, has_aux=True)(
        state.generator)
    g_updates, g_opt_state = g_tx.update(g_grads, state.g_opt_state, state.generator)
    g_params = optax.apply_updates(state.generator, g_updates)
    decay = ema_decay(state.step, batch_size, ema_halflife_images, ema_rampup)
    generator_ema = _ema(state.generator_ema, g_params, decay)

    new_state = state.replace(
        step=state.step + 1,
        generator=g_params,
        generator_state=g_state,
        generator_ema=generator_ema,
        discriminator=d_params["discriminator"],
        text_encoder=text_params,
        g_opt_state=g_opt_state,
        d_opt_state=d_opt_state)
    metrics = dict(d_metrics)
    metrics.update({
        "g_loss": g_loss,
        "g_grad_norm": _global_norm(g_grads),
        "d_grad_norm": _global_norm(d_grads["discriminator"]),
        "g_param_norm": _global_norm(g_params),
        "d_param_norm": _global_norm(d_params["discriminator"]),
    })
    if "text_encoder" in d_grads:
      metrics["text_grad_norm"] = _global_norm(d_grads["text_encoder"])
    return new_state, metrics

  return train_step

