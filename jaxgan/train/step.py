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
from jax.flatten_util import ravel_pytree

from jaxgan import config as config_lib
from jaxgan import losses
from jaxgan.models.gan import GanModels
from jaxgan.train.state import TrainState, d_trainable_params, make_optimizers
from jaxgan.train.views import random_views


def images_to_float(images_uint8: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return images_uint8.astype(jnp.float32) / 127.5 - 1.0


# Norms and the finite check read each tree raveled into one vector: a
# reduction per leaf compiles to a kernel per leaf (and G's gradient vector is
# the one its optimizer ravels, make_optimizers).
def _global_norm(tree) -> jax.Array:
  flat, _ = ravel_pytree(tree)
  return jnp.sqrt(jnp.sum(jnp.square(flat.astype(jnp.float32))))


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


def _all_finite(*trees) -> jax.Array:
  """One device-side bool: every leaf of every tree is finite."""
  return jnp.all(jnp.stack(
      [jnp.all(jnp.isfinite(ravel_pytree(tree)[0])) for tree in trees]))


def _joined_negatives(*parts):
  """Extra negatives of the contrastive loss, ``(embeddings, valid)`` pairs
  (None for an absent part), joined: ``(None, None)`` when none is given."""
  parts = [part for part in parts if part is not None]
  if not parts:
    return None, None
  return (jnp.concatenate([embeddings for embeddings, _ in parts]),
          jnp.concatenate([valid for _, valid in parts]))


def make_train_step(models: GanModels, config: ml_collections.ConfigDict,
                    root_key: jax.Array, *,
                    with_norms: bool = True) -> Callable[..., tuple[TrainState, dict]]:
  """Builds ``train_step(state, batch, frozen_text) -> (state, metrics)`` for a run.

  DF-GAN's step: G makes one fake batch from one noise draw; D is updated on
  real/matched, real/mismatched and that fake (with the matching-aware
  gradient penalty on the real pairs); then G gets its gradient through the
  *updated* D on the same fake, pulled back through G's one forward pass.

  With ``loss.contrastive_weight`` > 0 (and D's contrastive head), XMC-GAN's
  image-sentence contrastive loss is added to both: D (and a learned text
  encoder) learns to pick each real image's caption among the batch's, and G
  is pushed to make each fake pick its own caption through D's embeddings.

  With ``loss.word_weight`` > 0 (and D's caption-word head), D also learns
  which words each real image's caption holds, and G is asked to make each
  fake read as its own caption's words (:func:`jaxgan.losses.word_prediction_loss`),
  with ``loss.word_g_scale`` times that weight (0: D's auxiliary task only).

  With ``loss.swap_weight`` > 0, the batch also holds each caption edited
  where an edit reads like a caption (``swap_ids``, ``swap_mask``,
  ``has_swap``; see :mod:`jaxgan.data.caption_swaps`): two attribute words
  swapped, or one replaced (``loss.swap_edits``). D is taught that a real
  image with its own caption's words bound to other things, or with one
  attribute changed, is a mismatch (a term like DF-GAN's mismatched one over
  the examples that have an edit, times that weight), and with the
  contrastive loss those captions are extra negatives for D's reals and G's
  fakes (at the contrastive weight). ``loss.swap_rows`` > 0 takes only that
  many examples' edits, every (B / swap_rows)-th: the frozen encoder then
  reads fewer extra captions.

  With ``loss.region_word_weight`` > 0 (and D's word-region head), XMC-GAN's
  word-region contrastive loss is added to both, like the image-sentence one
  but scored word by word over D's 4x4 regions
  (:func:`jaxgan.losses.region_word_loss`): D (and the text params) learns
  where each word of a real image's caption is drawn, and G to draw each
  word of its caption somewhere D finds it.

  With ``loss.real_fake_weight`` > 0, G's loss also holds XMC-GAN's
  image-image contrastive loss (:func:`jaxgan.losses.real_fake_contrastive_loss`):
  each fake must pick, by the updated D's features, the real image of its
  caption among the batch's (and that image its fake). G's term only: D's
  features of the reals are fixed targets.

  With a word projection head on D (``model.projection_dim`` > 0), every
  logit of D (real, fake, mismatched, edited, the MA-GP's) also scores the
  pair's caption words (:meth:`jaxgan.models.gan.GanModels.d_logits`), so
  the adversarial loss trains D to judge G's picture of each word.

  With ``loss.view_contrastive_weight`` > 0 (and D's view head), D is also
  trained to tell each real image from the batch's others by a random view of
  it (:func:`jaxgan.train.views.random_views`), a self-supervised term of D's
  loss only.

  With ``loss.mismatch="hardest"``, each real image's mismatched caption is
  drawn among the batch's other captions and the state's queue of earlier
  ones, the closest by D's contrastive embeddings most likely
  (:func:`jaxgan.losses.hard_negative_indices`), instead of the next example's.
  With ``loss.contrastive_queue``, the contrastive loss also scores each image
  (real for D, fake for G) against that queue's captions (MoCo-style), so
  telling its own caption apart takes more than the batch's few look-alikes.

  ``frozen_text`` holds a pretrained text encoder's params (None for learned
  encoders, whose params are in the state). It is an argument rather than a
  closure so the weights are not baked into the compiled program as constants,
  and it stays out of checkpoints and optimizer states.

  Metrics always hold the losses and ``finite``, a device-side bool that is
  False when a loss or a parameter after the update is NaN or Inf, so a loop
  can check it without fetching every step.

  Args:
    models: the run's modules.
    config: the run config (loss kind, MA-GP weight and power, optimizer).
    root_key: the run's root key; step keys are ``fold_in(root_key, step)``.
    with_norms: also return the global gradient and parameter norms of each
      network (``*_grad_norm``, ``*_param_norm``).

  Returns:
    The (unjitted) pure step function.
  """
  d_loss_fn, g_loss_fn = losses.get_loss_fns(config.loss.kind)
  g_tx, d_tx = make_optimizers(config)
  gp_weight = float(config.loss.ma_gp_weight)
  gp_power = float(config.loss.ma_gp_power)
  ema_halflife_images = 1000.0 * float(config.optim.ema_halflife_kimg)
  ema_rampup = float(config.optim.ema_rampup)
  # Runs from before the contrastive loss have no such keys (and it is off).
  contrastive_weight = float(config.loss.get("contrastive_weight", 0.0))
  hard_negatives = config.loss.get("mismatch", "roll") == "hardest"
  # The contrastive loss's images are also scored against the caption queue.
  queue_negatives = config_lib.contrastive_uses_queue(config)
  uses_queue = config_lib.uses_caption_queue(config)
  temperature = (float(config.loss.contrastive_temperature)
                 if contrastive_weight > 0 or hard_negatives else None)
  view_weight = float(config.loss.get("view_contrastive_weight", 0.0))
  view_temperature = (float(config.loss.view_contrastive_temperature)
                      if view_weight > 0 else None)
  word_weight = float(config.loss.get("word_weight", 0.0))
  g_word_weight = word_weight * float(config.loss.get("word_g_scale", 1.0))
  word_fake_weight = float(config.loss.get("word_fake_weight", 0.0))
  swap_weight = float(config.loss.get("swap_weight", 0.0))
  region_word_weight = float(config.loss.get("region_word_weight", 0.0))
  region_word_temperature = (float(config.loss.region_word_temperature)
                             if region_word_weight > 0 else None)
  real_fake_weight = float(config.loss.get("real_fake_weight", 0.0))
  real_fake_temperature = (float(config.loss.real_fake_temperature)
                           if real_fake_weight > 0 else None)
  # How many of the batch's examples are shown with their edited caption:
  # every (B / swap_rows)-th, so that on a batch sharded over devices each
  # device keeps an equal share when their count divides swap_rows
  # (config.swap_rows_warning; 0: all of them).
  swap_rows = int(config.loss.get("swap_rows", 0))
  loss_kind = config.loss.kind

  def train_step(state: TrainState, batch: dict[str, jax.Array], frozen_text=None):
    noise_key = jax.random.fold_in(root_key, state.step)
    real = images_to_float(batch["image"])
    ids, mask = batch["ids"], batch["mask"]
    batch_size = real.shape[0]
    # The captions' words as the caption-word head's labels (and as what a
    # word projection head scores).
    head_ids, head_mask = models.word_head_ids(ids, mask)
    caption_words = (head_ids, head_mask)

    # A frozen encoder runs once per step; D's and G's passes share it.
    frozen_encoding = models.encode_frozen(frozen_text, ids, mask)

    def encode(trainable_text):
      return models.condition_words(trainable_text, ids, mask, frozen_encoding)

    # --- One fake batch, G's one forward pass (its backward waits for D). ---
    d_params = d_trainable_params(models, state)
    # G's text (the sentence, and the token states a word-attending G reads).
    # G's pullback below reaches G's params only; the stop_gradient keeps it
    # so should that change: G's loss must train no text params.
    text = jax.lax.stop_gradient(models.condition_words(
        d_params.get("text_encoder"), ids, mask, frozen_encoding))
    sentence = text.sentence
    swaps = swapped_sentence = None
    if swap_weight > 0:
      swap_stride = batch_size // swap_rows if swap_rows else 1
      if swap_stride * (swap_rows or batch_size) != batch_size:
        raise ValueError(f"loss.swap_rows={swap_rows} must divide the batch "
                         f"({batch_size} examples)")
      swap_ids, swap_mask = batch["swap_ids"][::swap_stride], batch["swap_mask"][::swap_stride]
      # The captions with swapped words: as mismatched pairs for D (through
      # the text params it trains), and (fixed) as negatives for G's fakes.
      swaps = (swap_ids, swap_mask, models.encode_frozen(frozen_text, swap_ids, swap_mask))
      has_swap = batch["has_swap"][::swap_stride]
      swap_words = models.word_head_ids(swap_ids, swap_mask)
      if contrastive_weight > 0:
        swapped_sentence = jax.lax.stop_gradient(
            models.condition(d_params.get("text_encoder"), *swaps))
    z = jax.random.normal(noise_key, (batch_size, models.z_dim), jnp.float32)
    fake, g_pullback, g_state = jax.vjp(
        lambda g: models.generate(g, state.generator_state, z, sentence, train=True,
                                  words=text),
        state.generator, has_aux=True)
    d_fake = jax.lax.stop_gradient(fake)

    if uses_queue:
      # The queue: a ring of the last captions seen, oldest overwritten first;
      # only the entries written so far take part. Candidates for the
      # mismatched captions are the batch's, then the queue's.
      queue = jax.lax.stop_gradient(state.caption_queue)
      queue_valid = jnp.arange(queue.shape[0]) < state.step * batch_size
    if hard_negatives:
      valid = jnp.concatenate([jnp.ones((batch_size,), bool), queue_valid])
      negatives_key = jax.random.fold_in(noise_key, 1)
    if view_weight > 0:
      views = random_views(jax.random.fold_in(noise_key, 2), real)

    # --- Discriminator (and learned text encoder) update. -------------------
    def d_objective(trainable):
      d_params = trainable["discriminator"]
      text_encoding = encode(trainable.get("text_encoder"))
      text_sentence = text_encoding.sentence
      metrics = {}
      # D's image path on the real batch runs once: its features score the
      # matched and mismatched sentences, and its pullback gives the MA-GP's
      # input gradients.
      real_features, features_pullback = jax.vjp(
          lambda x: models.d_features(d_params, x), real)
      # Mismatched pairs (a real image with another caption) make D, and so
      # G, care whether the image fits the text.
      embeddings = queued_embeddings = None
      if uses_queue:
        candidates = jnp.concatenate([text_sentence, queue])
        image_embeddings, candidate_embeddings = models.d_embeddings(
            d_params, real_features, candidates)
        embeddings = (image_embeddings, candidate_embeddings[:batch_size])
        queued_embeddings = candidate_embeddings[batch_size:]
      if hard_negatives:
        picks = losses.hard_negative_indices(negatives_key, image_embeddings,
                                             candidate_embeddings, valid, temperature)
        mismatched = candidates[picks]
        # The queue keeps sentences, not words (config: no word projection).
        mismatched_words = None
        metrics["d_negatives_from_queue"] = jnp.mean(picks >= batch_size)
      else:
        # DF-GAN: every image with the next example's caption.
        mismatched = jnp.roll(text_sentence, 1, axis=0)
        mismatched_words = jax.tree.map(lambda x: jnp.roll(x, 1, axis=0), caption_words)
      real_logits = models.d_logits(d_params, real_features, text_sentence, caption_words)
      if swaps is not None:
        swapped_features = real_features[::swap_stride]
      mismatched_logits = models.d_logits(d_params, real_features, mismatched,
                                          mismatched_words)
      if swaps is not None:
        swapped = models.condition(trainable.get("text_encoder"), *swaps)
        swapped_logits = models.d_logits(d_params, swapped_features, swapped, swap_words)
        metrics["d_swap_loss"] = losses.mismatched_loss(loss_kind, swapped_logits, has_swap)
        metrics["d_swap_logit"] = (jnp.sum(jnp.where(has_swap, swapped_logits, 0.0))
                                   / jnp.maximum(jnp.sum(has_swap), 1))
      fake_features = models.d_features(d_params, d_fake)
      fake_logits = models.d_logits(d_params, fake_features, text_sentence, caption_words)
      adversarial = d_loss_fn(real_logits, fake_logits, mismatched_logits)
      metrics.update({
          "d_adv_loss": adversarial,
          "d_real_logit": jnp.mean(real_logits),
          "d_fake_logit": jnp.mean(fake_logits),
          "d_mismatch_logit": jnp.mean(mismatched_logits),
      })
      total = adversarial
      if swaps is not None:
        total = total + swap_weight * metrics["d_swap_loss"]
      if contrastive_weight > 0:
        if embeddings is None:
          embeddings = models.d_embeddings(d_params, real_features, text_sentence)
        negatives, negatives_valid = _joined_negatives(
            (queued_embeddings, queue_valid) if queue_negatives else None,
            (models.d_embeddings(d_params, swapped_features, swapped)[1], has_swap)
            if swaps is not None else None)
        contrastive = losses.contrastive_loss(*embeddings, temperature, negatives,
                                              negatives_valid)
        metrics["d_contrastive"] = contrastive
        total = total + contrastive_weight * contrastive
      if view_weight > 0:
        # Self-supervised: each real image is told from the batch's others by
        # its random view (D's features only; the text plays no part).
        view_loss = losses.contrastive_loss(
            models.d_view_embeddings(d_params, real_features),
            models.d_view_embeddings(d_params, models.d_features(d_params, views)),
            view_temperature)
        metrics["d_view_contrastive"] = view_loss
        total = total + view_weight * view_loss
      if word_weight > 0:
        # D learns from real images which words their captions hold.
        words = losses.word_prediction_loss(
            models.d_word_logits(d_params, real_features), head_ids, head_mask)
        metrics["d_words"] = words
        total = total + word_weight * words
      if word_fake_weight > 0:
        # A fake shows none of its caption's words (every label absent: an
        # empty mask), so the head is no judge G can satisfy with any image
        # it reads the words from: G's word loss becomes adversarial (a
        # (K+1)-class auxiliary classifier rather than AC-GAN's K classes).
        fake_words = losses.word_prediction_loss(
            models.d_word_logits(d_params, fake_features), head_ids,
            jnp.zeros_like(head_mask))
        metrics["d_fake_words"] = fake_words
        total = total + word_fake_weight * fake_words
      if region_word_weight > 0:
        # D (and the text it trains) learns where in a real image each of its
        # caption's words is drawn.
        region_words = losses.region_word_loss(
            *models.d_region_word_embeddings(d_params, real_features, text_encoding.words),
            text_encoding.mask, region_word_temperature)
        metrics["d_region_words"] = region_words
        total = total + region_word_weight * region_words
      if gp_weight > 0:
        # The penalty smooths D around real matched pairs; it is not a signal
        # for the text encoder, hence the stop_gradient on the sentence.
        gp_logits, logits_pullback = jax.vjp(
            lambda f, s: models.d_logits(d_params, f, s, caption_words),
            real_features, jax.lax.stop_gradient(text_sentence))
        features_grads, sentence_grads = logits_pullback(
            jnp.ones_like(gp_logits))
        (image_grads,) = features_pullback(features_grads)
        penalty = losses.ma_gp_from_grads(image_grads, sentence_grads,
                                          k=gp_weight, p=gp_power)
        metrics["d_ma_gp"] = penalty
        total = total + penalty
      metrics["d_loss"] = total
      return total, metrics

    (_, d_metrics), d_grads = jax.value_and_grad(
        d_objective, has_aux=True)(d_params)
    d_updates, d_opt_state = d_tx.update(d_grads, state.d_opt_state, d_params)
    d_params = optax.apply_updates(d_params, d_updates)
    text_params = d_params.get("text_encoder", state.text_encoder)
    if real_fake_weight > 0:
      # The real images as the updated D sees them: G's targets, fixed.
      real_targets = jax.lax.stop_gradient(
          models.d_features(d_params["discriminator"], real))

    # --- Generator update through the updated D, on the same fake. ----------
    def g_objective(fake):
      features = models.d_features(d_params["discriminator"], fake)
      adversarial = g_loss_fn(models.d_logits(d_params["discriminator"], features,
                                              sentence, caption_words))
      total, metrics = adversarial, {"g_adv_loss": adversarial}
      if g_word_weight > 0:
        # Each fake should read, word by word, as its own caption.
        words = losses.word_prediction_loss(
            models.d_word_logits(d_params["discriminator"], features), head_ids, head_mask)
        metrics["g_words"] = words
        total = total + g_word_weight * words
      if region_word_weight > 0:
        # Each of the caption's words should be drawn somewhere in its fake.
        region_words = losses.region_word_loss(
            *models.d_region_word_embeddings(d_params["discriminator"], features, text.words),
            text.mask, region_word_temperature)
        metrics["g_region_words"] = region_words
        total = total + region_word_weight * region_words
      if real_fake_weight > 0:
        # Each fake should look, to D, like its caption's real image.
        real_fake = losses.real_fake_contrastive_loss(features, real_targets,
                                                      real_fake_temperature)
        metrics["g_real_fake"] = real_fake
        total = total + real_fake_weight * real_fake
      if contrastive_weight <= 0:
        return total, metrics
      # One pass of D's text projection over the captions and the negatives.
      extra = ([queue] if queue_negatives else []) + (
          [swapped_sentence] if swaps is not None else [])
      image_embeddings, sentence_embeddings = models.d_embeddings(
          d_params["discriminator"], features, jnp.concatenate([sentence, *extra]))
      negatives, negatives_valid = _joined_negatives(
          (sentence_embeddings[batch_size:batch_size + queue.shape[0]], queue_valid)
          if queue_negatives else None,
          (sentence_embeddings[batch_size + (queue.shape[0] if queue_negatives else 0):],
           has_swap) if swaps is not None else None)
      contrastive = losses.contrastive_loss(
          image_embeddings, sentence_embeddings[:batch_size], temperature,
          negatives, negatives_valid)
      metrics["g_contrastive"] = contrastive
      return total + contrastive_weight * contrastive, metrics

    (g_loss, g_metrics), fake_grads = jax.value_and_grad(g_objective, has_aux=True)(fake)
    (g_grads,) = g_pullback(fake_grads)
    g_updates, g_opt_state = g_tx.update(g_grads, state.g_opt_state, state.generator)
    g_params = optax.apply_updates(state.generator, g_updates)
    decay = ema_decay(state.step, batch_size, ema_halflife_images, ema_rampup)
    generator_ema = _ema(state.generator_ema, g_params, decay)

    caption_queue = state.caption_queue
    if uses_queue and caption_queue.shape[0]:
      # This step's captions (as D saw them) replace the oldest entries; the
      # queue's length is a multiple of the batch size.
      offset = (state.step * batch_size) % caption_queue.shape[0]
      caption_queue = jax.lax.dynamic_update_slice(
          caption_queue, sentence.astype(caption_queue.dtype), (offset, 0))

    new_state = state.replace(
        step=state.step + 1,
        generator=g_params,
        generator_state=g_state,
        generator_ema=generator_ema,
        discriminator=d_params["discriminator"],
        text_encoder=text_params,
        g_opt_state=g_opt_state,
        d_opt_state=d_opt_state,
        caption_queue=caption_queue)
    metrics = dict(d_metrics, **g_metrics)
    metrics["g_loss"] = g_loss
    # Losses come from the params before the update, the rest from those
    # after it: both are checked so a checkpoint never holds NaN.
    metrics["finite"] = (jnp.isfinite(metrics["d_loss"]) & jnp.isfinite(g_loss)
                         & _all_finite(g_params, *d_params.values()))
    if with_norms:
      metrics.update({
          "g_grad_norm": _global_norm(g_grads),
          "d_grad_norm": _global_norm(d_grads["discriminator"]),
          "g_param_norm": _global_norm(g_params),
          "d_param_norm": _global_norm(d_params["discriminator"]),
      })
      if "text_encoder" in d_grads:
        metrics["text_grad_norm"] = _global_norm(d_grads["text_encoder"])
    return new_state, metrics

  return train_step

