"""The training step's contract: losses, which gradient reaches which params, EMA.

The step is checked against reference formulas from :mod:`jaxgan.losses` on
tiny hand-written modules, whatever its internals (how often G runs, which
noise it draws):

* the generator ignores its noise, so the fake images are known without
  knowing the step's noise, and a batch of two leaves only one way to pair
  every sentence with another example's image (the mismatched pairs);
* both optimizers are Adam with ``b1 = 0``, whose first update moves each
  parameter by ``-lr * g / (|g| + eps)``: ``-lr * sign(g)`` wherever the
  gradient ``g`` is not tiny, and not at all where it is exactly zero. So
  the direction every parameter moved says the sign of the gradient the step
  applied, which is compared with the reference gradient's.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from jaxgan import losses
from jaxgan.text.base import TextEncoding
from jaxgan.train.state import GanModels, init_state
from jaxgan.train.step import make_train_step
from jaxgan.train.views import random_views

IMAGE_SIZE = 2
SENTENCE_DIM = 2
VOCAB = 4
LENGTH = 3
D_LR = 2e-3
G_LR = 1e-3
STEP_KEY = jax.random.key(7)  # the root of the steps' keys, where a test needs it


class BagOfWords(nn.Module):
  """Mean of word vectors over the real tokens."""

  @nn.compact
  def __call__(self, ids, mask):
    words = nn.Embed(VOCAB, SENTENCE_DIM, name="embed")(ids)
    weights = mask[..., None].astype(jnp.float32)
    sentence = jnp.sum(words * weights, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1.0)
    return TextEncoding(sentence=sentence, words=words, mask=mask)


class NoiseFreeGenerator(nn.Module):
  """``tanh(canvas + V sentence)``: the noise is ignored, so the fake is known."""

  @nn.compact
  def __call__(self, z, sentence):
    del z
    pixels = IMAGE_SIZE * IMAGE_SIZE * 3
    canvas = self.param("canvas", nn.initializers.normal(0.5), (pixels,))
    h = canvas + nn.Dense(pixels, name="from_sentence")(sentence)
    return jnp.tanh(h).reshape(sentence.shape[0], IMAGE_SIZE, IMAGE_SIZE, 3)


class MatchingDiscriminator(nn.Module):
  """Linear features, ``realness(f) + <match(f), sentence>`` as the logit."""

  def setup(self):
    self.encoder = nn.Dense(3, name="features")
    self.realness = nn.Dense(1, name="realness")
    self.match = nn.Dense(SENTENCE_DIM, name="match")

  def features(self, images):
    return self.encoder(images.reshape(images.shape[0], -1))

  def logits(self, features, sentence):
    return self.realness(features)[:, 0] + jnp.sum(self.match(features) * sentence, axis=-1)

  def __call__(self, images, sentence):
    return self.logits(self.features(images), sentence)


def _models(frozen_text: bool) -> GanModels:
  return GanModels(generator=NoiseFreeGenerator(), discriminator=MatchingDiscriminator(),
                   text_encoder=BagOfWords(), text_frozen=frozen_text,
                   generator_has_state=False, z_dim=4)


def _config(kind: str = "hinge"):
  config = tiny.get_config()
  config.image_size = IMAGE_SIZE
  config.batch_size = 2
  config.text.max_length = LENGTH
  config.loss.kind = kind
  config.loss.ma_gp_weight = 2.0
  config.loss.ma_gp_power = 6.0
  config.optim.d_lr = D_LR
  config.optim.g_lr = G_LR
  config.optim.b1 = 0.0
  config.optim.b2 = 0.9
  # Decay 0.5 ** (batch / half-life) = 0.5 on every step, no ramp-up.
  config.optim.ema_halflife_kimg = config.batch_size / 1000.0
  config.optim.ema_rampup = 0.0
  return config


def _batch(images: np.ndarray | None = None) -> dict[str, np.ndarray]:
  if images is None:
    images = np.random.default_rng(0).integers(0, 256, (2, IMAGE_SIZE, IMAGE_SIZE, 3),
                                               dtype=np.uint8)
  return {"image": images,
          "ids": np.array([[1, 3, 0], [2, 0, 0]], np.int32),
          "mask": np.array([[True, True, False], [True, False, False]])}


def _setup(kind="hinge", frozen_text=False, seed=0):
  models, config = _models(frozen_text), _config(kind)
  frozen = None
  if frozen_text:
    frozen = BagOfWords().init(jax.random.key(seed + 100), jnp.zeros((2, LENGTH), jnp.int32),
                               jnp.ones((2, LENGTH), bool))["params"]
  state = init_state(models, config, jax.random.key(seed), frozen_text=frozen)
  step = jax.jit(make_train_step(models, config, jax.random.key(7)))
  return models, config, state, step, frozen


class Reference:
  """The step's losses written out from :mod:`jaxgan.losses`, on given params."""

  def __init__(self, models: GanModels, config, state, batch, frozen_text=None):
    self.models, self.config, self.state, self.frozen = models, config, state, frozen_text
    self.d_loss_fn, self.g_loss_fn = losses.get_loss_fns(config.loss.kind)
    self.real = jnp.asarray(batch["image"], jnp.float32) / 127.5 - 1.0
    self.ids, self.mask = batch["ids"], batch["mask"]
    # The captions' words, as a word projection head scores them (a D
    # without one ignores them).
    self.words = models.word_head_ids(jnp.asarray(self.ids), jnp.asarray(self.mask))
    # The fake every D and G term sees: G before its update, on the sentence
    # before the update (G ignores its noise).
    self.fake = self.generate(state.generator, self.sentence(state.text_encoder))

  def sentence(self, text_params):
    return self.models.encode_text(text_params, self.ids, self.mask, self.frozen)

  def generate(self, g_params, sentence):
    z = jnp.zeros((sentence.shape[0], self.models.z_dim))
    return self.models.generate(g_params, {}, z, sentence, train=True)[0]

  def logits(self, d_params, images, sentence, words=None):
    return self.models.d_logits(d_params, self.models.d_features(d_params, images), sentence,
                                words)

  def d_terms(self, d_params, text_params, mismatched_words=None):
    """Per-example logits, adversarial loss and MA-GP of D's objective
    (``mismatched_words``: the words of the mismatched captions, by default
    the other example's)."""
    sentence = self.sentence(text_params)
    # Batch of two: the only pairing of each sentence with another image.
    mismatched = sentence[::-1]
    if mismatched_words is None:
      mismatched_words = jax.tree.map(lambda x: x[::-1], self.words)
    real = self.logits(d_params, self.real, sentence, self.words)
    fake = self.logits(d_params, self.fake, sentence, self.words)
    wrong = self.logits(d_params, self.real, mismatched, mismatched_words)
    gp = losses.ma_gp(lambda x, s: self.logits(d_params, x, s, self.words), self.real,
                      jax.lax.stop_gradient(sentence), k=self.config.loss.ma_gp_weight,
                      p=self.config.loss.ma_gp_power)
    return {"real": real, "fake": fake, "mismatched": wrong,
            "adv": self.d_loss_fn(real, fake, wrong), "gp": gp}

  def d_loss(self, d_params, text_params):
    terms = self.d_terms(d_params, text_params)
    return terms["adv"] + terms["gp"]

  def g_loss(self, g_params, d_params):
    """G's loss against ``d_params`` (the updated D), frozen text only."""
    sentence = self.sentence(self.state.text_encoder)
    return self.g_loss_fn(self.logits(d_params, self.generate(g_params, sentence), sentence,
                                      self.words))


def _leaves(tree):
  return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def _assert_moved_against_gradient(before, after, gradient, name):
  """Adam's first step (b1 = 0) moved each param by -lr * sign(gradient)."""
  checked = 0
  for old, new, grad in zip(_leaves(before), _leaves(after), _leaves(gradient), strict=True):
    delta = new - old
    np.testing.assert_array_equal(delta[grad == 0], 0.0,
                                  err_msg=f"{name}: a param with no gradient moved")
    # Leave out gradients so small that float rounding could flip their sign.
    clear = np.abs(grad) > max(1e-3 * np.abs(grad).max(initial=0.0), 1e-6)
    np.testing.assert_array_equal(np.sign(delta[clear]), -np.sign(grad[clear]),
                                  err_msg=f"{name}: moved along, not against, the gradient")
    checked += int(clear.sum())
  assert checked > 0, f"{name}: no gradient to check"


@pytest.mark.parametrize("kind", ["hinge", "bce"])
def test_d_metrics_and_gradients_follow_the_matching_aware_loss(kind):
  models, config, state, step, _ = _setup(kind)
  batch = _batch()
  new_state, metrics = step(state, batch)
  ref = Reference(models, config, state, batch)
  terms = ref.d_terms(state.discriminator, state.text_encoder)
  expected = {"d_real_logit": jnp.mean(terms["real"]),
              "d_fake_logit": jnp.mean(terms["fake"]),
              "d_mismatch_logit": jnp.mean(terms["mismatched"]),
              "d_adv_loss": terms["adv"], "d_ma_gp": terms["gp"],
              "d_loss": terms["adv"] + terms["gp"]}
  # The three logits differ, so a swapped pair of them changes the loss.
  assert len({round(float(v), 3) for k, v in expected.items() if k.endswith("logit")}) == 3
  for name, value in expected.items():
    np.testing.assert_allclose(metrics[name], value, rtol=1e-5, atol=1e-6, err_msg=name)

  d_grad, text_grad = jax.grad(ref.d_loss, argnums=(0, 1))(state.discriminator,
                                                          state.text_encoder)
  _assert_moved_against_gradient(state.discriminator, new_state.discriminator, d_grad, "D")
  # The text encoder learns from D's loss only through D's conditioning:
  # neither through G's input nor through the MA-GP.
  _assert_moved_against_gradient(state.text_encoder, new_state.text_encoder, text_grad,
                                 "text encoder")


@pytest.mark.parametrize("kind", ["hinge", "bce"])
def test_g_loss_and_gradient_are_against_the_updated_discriminator(kind):
  models, config, state, step, frozen = _setup(kind, frozen_text=True)
  batch = _batch()
  new_state, metrics = step(state, batch, frozen)
  ref = Reference(models, config, state, batch, frozen)
  np.testing.assert_allclose(metrics["g_loss"],
                             ref.g_loss(state.generator, new_state.discriminator),
                             rtol=1e-5, atol=1e-6)
  # Against the D before its update the loss differs: the check above can tell.
  assert abs(float(ref.g_loss(state.generator, state.discriminator))
             - float(metrics["g_loss"])) > 1e-4
  g_grad = jax.grad(ref.g_loss)(state.generator, new_state.discriminator)
  _assert_moved_against_gradient(state.generator, new_state.generator, g_grad, "G")


def test_ema_is_the_decayed_average_of_the_updated_generator():
  _, _, state, step, _ = _setup()
  # An average that differs from G, so "EMA = G" or "EMA unchanged" both show.
  state = state.replace(generator_ema=jax.tree.map(lambda p: p + 1.0, state.generator))
  new_state, _ = step(state, _batch())
  for ema, old_ema, new_g, old_g in zip(_leaves(new_state.generator_ema),
                                        _leaves(state.generator_ema),
                                        _leaves(new_state.generator),
                                        _leaves(state.generator), strict=True):
    assert np.any(new_g != old_g), "G did not move, so the check below could not tell"
    # Decay 0.5 per step (half-life of one batch).
    np.testing.assert_allclose(ema, 0.5 * old_ema + 0.5 * new_g, rtol=1e-6, atol=1e-7)
  assert int(new_state.step) == int(state.step) + 1


def _leak_case():
  """A hand-built case where D's loss gives the text encoder no gradient, but
  every way it could leak in would.

  D already separates real matched pairs from mismatched ones by the hinge
  margin, so those terms have zero gradient. The fake term is active, but D's
  matching head reads a feature the fakes do not have (a channel G leaves at
  zero), so the fake logit does not depend on the sentence directly: only
  through G's input, which must not pass a gradient. G's loss and the MA-GP
  depend on the sentence.
  """
  models, config, state, step, _ = _setup("hinge")
  # Sentences (1, 0) and (0, 1): token 1 and token 2; padding and token 3 zero.
  embed = np.zeros((VOCAB, SENTENCE_DIM), np.float32)
  embed[1], embed[2] = (1.0, 0.0), (0.0, 1.0)
  # Feature c is the mean of channel c. Logit: 0.1 * f0 - 0.5 + <(3 f1, -3 f1), s>.
  pixels = IMAGE_SIZE * IMAGE_SIZE * 3
  channel = np.arange(pixels) % 3
  channel_mean = np.zeros((pixels, 3), np.float32)
  channel_mean[np.arange(pixels), channel] = 1.0 / (IMAGE_SIZE * IMAGE_SIZE)
  d_params = {
      "features": {"kernel": channel_mean, "bias": np.zeros(3, np.float32)},
      "realness": {"kernel": np.array([[0.1], [0.0], [0.0]], np.float32),
                   "bias": np.array([-0.5], np.float32)},
      "match": {"kernel": np.array([[0.0, 0.0], [3.0, -3.0], [0.0, 0.0]], np.float32),
                "bias": np.zeros(SENTENCE_DIM, np.float32)},
  }
  # G draws channel 0 only, from the sentence: tanh(0) = 0 in channels 1 and 2.
  rng = np.random.default_rng(3)
  only_red = (channel == 0).astype(np.float32)
  g_params = {"canvas": 0.1 * rng.standard_normal(pixels).astype(np.float32) * only_red,
              "from_sentence": {
                  "kernel": rng.standard_normal((SENTENCE_DIM, pixels)).astype(np.float32)
                            * only_red,
                  "bias": np.zeros(pixels, np.float32)}}
  g_params = jax.tree.map(jnp.asarray, g_params)
  state = state.replace(
      discriminator=jax.tree.map(jnp.asarray, d_params),
      text_encoder={"embed": {"embedding": jnp.asarray(embed)}},
      generator=g_params, generator_ema=g_params)
  # Real images: all white for sentence (1, 0), all black for (0, 1).
  images = np.zeros((2, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
  images[0] = 255
  batch = _batch(images)
  batch["ids"] = np.array([[1, 0, 0], [2, 0, 0]], np.int32)
  batch["mask"] = np.array([[True, False, False], [True, False, False]])
  return models, config, state, step, batch


def test_text_encoder_gets_no_gradient_from_g_loss_ma_gp_or_g_input():
  models, config, state, step, batch = _leak_case()
  ref = Reference(models, config, state, batch)
  terms = ref.d_terms(state.discriminator, state.text_encoder)
  # The premise: real and mismatched pairs past the margin, fakes inside it ...
  assert np.all(terms["real"] > 1.1) and np.all(terms["mismatched"] < -1.1)
  assert np.all(np.abs(terms["fake"]) < 0.9)
  text_grad = jax.grad(ref.d_loss, argnums=1)(state.discriminator, state.text_encoder)
  assert all(np.all(g == 0) for g in _leaves(text_grad))

  # ... while each leak would move the text encoder.
  def fakes(text_params):
    return ref.generate(state.generator, ref.sentence(text_params))

  def g_loss_leak(text_params):
    return ref.g_loss_fn(ref.logits(state.discriminator, fakes(text_params),
                                    ref.sentence(text_params)))

  def gp_leak(text_params):
    return losses.ma_gp(lambda x, s: ref.logits(state.discriminator, x, s), ref.real,
                        ref.sentence(text_params), k=2.0, p=6.0)

  def g_input_leak(text_params):
    logits = ref.logits(state.discriminator, fakes(text_params),
                        jax.lax.stop_gradient(ref.sentence(text_params)))
    return ref.d_loss_fn(terms["real"], logits, terms["mismatched"])

  for leak in (g_loss_leak, gp_leak, g_input_leak):
    grads = _leaves(jax.grad(leak)(state.text_encoder))
    assert max(np.abs(g).max() for g in grads) > 1e-3, leak.__name__

  new_state, metrics = step(state, batch)
  for old, new in zip(_leaves(state.text_encoder), _leaves(new_state.text_encoder),
                      strict=True):
    np.testing.assert_array_equal(new, old, err_msg="the text encoder moved")
  # G and D trained.
  assert any(np.any(a != b) for a, b in zip(_leaves(state.generator),
                                            _leaves(new_state.generator)))
  d_grad = jax.grad(ref.d_loss)(state.discriminator, state.text_encoder)
  _assert_moved_against_gradient(state.discriminator, new_state.discriminator, d_grad, "D")
  np.testing.assert_allclose(metrics["d_loss"], terms["adv"] + terms["gp"], rtol=1e-5)


def _assert_step_follows(state, new_state, metrics, d_loss, g_loss):
  """The step's D and G losses are ``d_loss(d, text)`` and ``g_loss(g, d)``
  (against the updated D), and D, the text encoder and G moved against their
  gradients; returns those three gradients."""
  np.testing.assert_allclose(metrics["d_loss"], d_loss(state.discriminator,
                                                       state.text_encoder), rtol=1e-5)
  np.testing.assert_allclose(metrics["g_loss"], g_loss(state.generator,
                                                       new_state.discriminator), rtol=1e-5)
  d_grad, text_grad = jax.grad(d_loss, argnums=(0, 1))(state.discriminator,
                                                       state.text_encoder)
  _assert_moved_against_gradient(state.discriminator, new_state.discriminator, d_grad, "D")
  _assert_moved_against_gradient(state.text_encoder, new_state.text_encoder, text_grad,
                                 "text encoder")
  g_grad = jax.grad(g_loss)(state.generator, new_state.discriminator)
  _assert_moved_against_gradient(state.generator, new_state.generator, g_grad, "G")
  return d_grad, text_grad, g_grad


def _unit(x):
  # As DF-GAN's D: finite for a zero vector (the caption queue's unwritten
  # slots are zeros, embedded before they are masked).
  return x * jax.lax.rsqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True) + 1e-12)


class ContrastiveDiscriminator(MatchingDiscriminator):
  """The same D with its two optional heads: unit-norm projections of image
  features and sentences (the contrastive loss), and of image features alone
  (the self-supervised loss). A loss that is off leaves its head untouched.
  The caption-word head scores ``word_vocab`` ids."""

  word_vocab: int = VOCAB

  def setup(self):
    super().setup()
    self.image_embed = nn.Dense(3, name="image_embed")
    self.sentence_embed = nn.Dense(3, name="sentence_embed")
    self.view_embed = nn.Dense(3, name="view_embed")
    self.word_out = nn.Dense(self.word_vocab, name="word_out")

  def word_logits(self, features):
    return self.word_out(features)

  def embeddings(self, features, sentence):
    return _unit(self.image_embed(features)), _unit(self.sentence_embed(sentence))

  def view_embeddings(self, features):
    return _unit(self.view_embed(features))

  def __call__(self, images, sentence):
    features = self.features(images)
    if self.is_initializing():
      self.embeddings(features, sentence)
      self.view_embeddings(features)
      self.word_logits(features)
    return self.logits(features, sentence)


def _one_step_with_heads(loss: str, weight: float, temperature: float | None,
                         batch=None, word_ids=None, discriminator=None, **loss_settings):
  """One step of ``discriminator`` (default: the D with both heads, its word
  head scoring ``word_ids``, None: every id), ``loss.{loss}_weight`` and
  ``_temperature`` (and ``loss_settings``; None deletes a key, as in a config
  saved before it existed) set, on ``batch`` (default ``_batch()``):
  (models, state before, state after, metrics, reference)."""
  if discriminator is None:
    discriminator = ContrastiveDiscriminator(
        word_vocab=VOCAB if word_ids is None else len(word_ids))
  models = GanModels(generator=NoiseFreeGenerator(), discriminator=discriminator,
                     text_encoder=BagOfWords(), text_frozen=False,
                     generator_has_state=False, z_dim=4, word_ids=word_ids)
  config = _config()
  config.loss[f"{loss}_weight"] = weight
  if temperature is not None:
    config.loss[f"{loss}_temperature"] = temperature
  for name, value in loss_settings.items():
    if value is None:
      del config.loss[name]
    else:
      config.loss[name] = value
  state = init_state(models, config, jax.random.key(0))
  step = jax.jit(make_train_step(models, config, STEP_KEY))
  batch = _batch() if batch is None else batch
  new_state, metrics = step(state, batch)
  return models, state, new_state, metrics, Reference(models, config, state, batch)


def test_contrastive_loss_trains_d_the_text_encoder_and_g():
  weight, temperature = 0.7, 0.5
  models, state, new_state, metrics, ref = _one_step_with_heads("contrastive", weight,
                                                                temperature)

  def contrastive(d_params, images, sentence):
    features = models.d_features(d_params, images)
    return losses.contrastive_loss(*models.d_embeddings(d_params, features, sentence),
                                   temperature)

  def d_loss(d_params, text_params):
    return (ref.d_loss(d_params, text_params)
            + weight * contrastive(d_params, ref.real, ref.sentence(text_params)))

  def g_loss(g_params, d_params):
    # G's sentence is the one before D's update, with no gradient to the text.
    sentence = ref.sentence(state.text_encoder)
    return (ref.g_loss(g_params, d_params)
            + weight * contrastive(d_params, ref.generate(g_params, sentence), sentence))

  d_contrastive = contrastive(state.discriminator, ref.real,
                              ref.sentence(state.text_encoder))
  np.testing.assert_allclose(metrics["d_contrastive"], d_contrastive, rtol=1e-5)
  g_grad = _assert_step_follows(state, new_state, metrics, d_loss, g_loss)[2]
  # The term is not negligible here, so the checks above can tell it is there.
  g_adv_grad = jax.grad(ref.g_loss)(state.generator, new_state.discriminator)
  assert any(np.any(np.sign(a) != np.sign(b))
             for a, b in zip(_leaves(g_grad), _leaves(g_adv_grad)))


def test_view_contrastive_loss_trains_d_alone():
  weight, temperature = 0.7, 0.5
  models, state, new_state, metrics, ref = _one_step_with_heads("view_contrastive", weight,
                                                                temperature)
  # The step's views: its noise key (step 0 folded into the root) folded with 2.
  views = random_views(jax.random.fold_in(jax.random.fold_in(STEP_KEY, 0), 2), ref.real)

  def view_loss(d_params):
    def embed(images):
      return models.d_view_embeddings(d_params, models.d_features(d_params, images))
    return losses.contrastive_loss(embed(ref.real), embed(views), temperature)

  def d_loss(d_params, text_params):
    return ref.d_loss(d_params, text_params) + weight * view_loss(d_params)

  np.testing.assert_allclose(metrics["d_view_contrastive"], view_loss(state.discriminator),
                             rtol=1e-5)
  # G's loss has no such term: the plain one, through the updated D.
  d_grad = _assert_step_follows(state, new_state, metrics, d_loss, ref.g_loss)[0]
  # The term is not negligible here, so the check on D can tell it is there.
  plain_grad = jax.grad(ref.d_loss)(state.discriminator, state.text_encoder)
  assert any(np.any(np.sign(a) != np.sign(b))
             for a, b in zip(_leaves(d_grad), _leaves(plain_grad)))


@pytest.mark.parametrize("g_scale", [None, 0.25, 0.0])
def test_word_loss_trains_d_on_real_captions_and_g_on_its_own(g_scale):
  """G's word loss weighs ``word_g_scale`` times D's (1 where a config has no
  such key); at 0 G's loss is the plain one."""
  weight = 0.7
  models, state, new_state, metrics, ref = _one_step_with_heads("word", weight, None,
                                                                word_g_scale=g_scale)
  g_scale = 1.0 if g_scale is None else g_scale
  ids, mask = jnp.asarray(ref.ids), jnp.asarray(ref.mask)

  def words(d_params, images):
    return losses.word_prediction_loss(
        models.d_word_logits(d_params, models.d_features(d_params, images)), ids, mask)

  def d_loss(d_params, text_params):
    return ref.d_loss(d_params, text_params) + weight * words(d_params, ref.real)

  def g_loss(g_params, d_params):
    sentence = ref.sentence(state.text_encoder)
    return ref.g_loss(g_params, d_params) + g_scale * weight * words(
        d_params, ref.generate(g_params, sentence))

  np.testing.assert_allclose(metrics["d_words"], words(state.discriminator, ref.real),
                             rtol=1e-5)
  np.testing.assert_allclose(metrics["d_loss"], d_loss(state.discriminator,
                                                       state.text_encoder), rtol=1e-5)
  np.testing.assert_allclose(metrics["g_loss"], g_loss(state.generator,
                                                       new_state.discriminator), rtol=1e-5)
  d_grad = jax.grad(d_loss)(state.discriminator, state.text_encoder)
  _assert_moved_against_gradient(state.discriminator, new_state.discriminator, d_grad, "D")
  g_grad = jax.grad(g_loss)(state.generator, new_state.discriminator)
  _assert_moved_against_gradient(state.generator, new_state.generator, g_grad, "G")
  assert ("g_words" in metrics) == (g_scale > 0)
  if g_scale:
    # The term is not negligible here, so the checks above can tell it is there.
    g_adv_grad = jax.grad(ref.g_loss)(state.generator, new_state.discriminator)
    assert any(np.any(np.sign(a) != np.sign(b))
               for a, b in zip(_leaves(g_grad), _leaves(g_adv_grad)))
  # The words are labels, not a way into the text encoder: its gradient is the plain one.
  plain_text_grad = jax.grad(ref.d_loss, argnums=1)(state.discriminator, state.text_encoder)
  _assert_moved_against_gradient(state.text_encoder, new_state.text_encoder,
                                 plain_text_grad, "text encoder")


def test_word_fake_term_trains_d_to_find_no_words_in_fakes():
  """``loss.word_fake_weight``: D's word head also learns that a fake holds
  none of its caption's words (every label absent); G's loss is unchanged."""
  weight, fake_weight, g_scale = 0.7, 2.0, 0.25
  models, state, new_state, metrics, ref = _one_step_with_heads(
      "word", weight, None, word_g_scale=g_scale, word_fake_weight=fake_weight)
  ids, mask = jnp.asarray(ref.ids), jnp.asarray(ref.mask)

  def words(d_params, images, labels):
    return losses.word_prediction_loss(
        models.d_word_logits(d_params, models.d_features(d_params, images)), ids, labels)

  def no_words(d_params):  # written out: -log(1 - sigmoid) of every output
    logits = models.d_word_logits(d_params, models.d_features(d_params, ref.fake))
    return jnp.mean(jnp.sum(jax.nn.softplus(logits), axis=-1))

  def d_loss(d_params, text_params):
    return (ref.d_loss(d_params, text_params) + weight * words(d_params, ref.real, mask)
            + fake_weight * no_words(d_params))

  def g_loss(g_params, d_params):
    sentence = ref.sentence(state.text_encoder)
    return ref.g_loss(g_params, d_params) + g_scale * weight * words(
        d_params, ref.generate(g_params, sentence), mask)

  np.testing.assert_allclose(metrics["d_fake_words"], no_words(state.discriminator),
                             rtol=1e-5)
  np.testing.assert_allclose(metrics["d_fake_words"],
                             words(state.discriminator, ref.fake, jnp.zeros_like(mask)),
                             rtol=1e-5)
  d_grad = _assert_step_follows(state, new_state, metrics, d_loss, g_loss)[0]
  # The term is not negligible here, so the check on D can tell it is there.
  without = jax.grad(lambda d, t: ref.d_loss(d, t) + weight * words(d, ref.real, mask))(
      state.discriminator, state.text_encoder)
  assert any(np.any(np.sign(a) != np.sign(b))
             for a, b in zip(_leaves(d_grad), _leaves(without)))


def test_real_fake_loss_trains_g_toward_its_captions_real_images_by_the_updated_d():
  """``loss.real_fake_weight``: G's loss also holds the image-image contrastive
  loss between its fakes and the batch's real images, both through the
  updated D's features; D's and the text encoder's losses are the plain ones."""
  weight, temperature = 0.7, 0.5
  models, state, new_state, metrics, ref = _one_step_with_heads("real_fake", weight,
                                                                temperature)

  def real_fake(g_params, d_params):
    fake = ref.generate(g_params, ref.sentence(state.text_encoder))
    return losses.real_fake_contrastive_loss(models.d_features(d_params, fake),
                                             models.d_features(d_params, ref.real),
                                             temperature)

  def g_loss(g_params, d_params):
    return ref.g_loss(g_params, d_params) + weight * real_fake(g_params, d_params)

  np.testing.assert_allclose(metrics["g_real_fake"],
                             real_fake(state.generator, new_state.discriminator), rtol=1e-5)
  # Through the D before its update the term differs, so the check above can
  # tell which D the step read the features with.
  before = real_fake(state.generator, state.discriminator)
  assert abs(float(before) - float(metrics["g_real_fake"])) > 1e-4
  g_grad = _assert_step_follows(state, new_state, metrics, ref.d_loss, g_loss)[2]
  # The term is not negligible here, so the check on G can tell it is there.
  g_adv_grad = jax.grad(ref.g_loss)(state.generator, new_state.discriminator)
  assert any(np.any(np.sign(a) != np.sign(b))
             for a, b in zip(_leaves(g_grad), _leaves(g_adv_grad)))


class ProjectionDiscriminator(ContrastiveDiscriminator):
  """With a word projection head: one score per word, linear in the features."""

  projection_dim: int = 1

  def setup(self):
    super().setup()
    self.projection_out = nn.Dense(self.word_vocab, name="projection_out")

  def word_projection(self, features):
    return self.projection_out(features)

  def __call__(self, images, sentence):
    if self.is_initializing():
      self.word_projection(self.features(images))
    return super().__call__(images, sentence)


def test_word_projection_joins_every_logit_of_d_and_g():
  """With a word projection head, D's real, fake and mismatched logits, the
  MA-GP's and G's all add the mean of its scores over the pair's caption
  words: the mismatched pairs' are the other caption's."""
  models, state, new_state, metrics, ref = _one_step_with_heads(
      "word", 0.0, None, discriminator=ProjectionDiscriminator())
  assert models.discriminator_projects_words
  _assert_step_follows(state, new_state, metrics, ref.d_loss, ref.g_loss)
  terms = ref.d_terms(state.discriminator, state.text_encoder)
  for name in ("real", "fake", "mismatched"):
    np.testing.assert_allclose(metrics[f"d_{'mismatch' if name == 'mismatched' else name}_logit"],
                               jnp.mean(terms[name]), rtol=1e-5, atol=1e-6)
  # The checks above can tell the words apart: the real logit is not the
  # matching head's alone, and mismatched pairs scored with their image's
  # own words give another loss.
  features = models.d_features(state.discriminator, ref.real)
  matching = models.discriminator.apply({"params": state.discriminator}, features,
                                        ref.sentence(state.text_encoder), method="logits")
  assert np.abs(np.asarray(terms["real"] - matching)).max() > 1e-3
  own_words = ref.d_terms(state.discriminator, state.text_encoder, ref.words)
  assert abs(float(own_words["adv"] - terms["adv"])) > 1e-4
  # A projection head's scores reach D's loss through the adversarial terms.
  assert np.abs(_leaves(jax.grad(ref.d_loss)(state.discriminator,
                                            state.text_encoder)["projection_out"])[0]).max() > 0


def test_word_loss_over_caption_ids_labels_each_scored_id_by_its_output():
  """With ``word_ids`` the head's output i answers for id ``word_ids[i]``, and
  an id it does not score is no label at all."""
  weight = 0.7
  # _batch(): caption 0 holds ids 1 and 3 (3 is not scored), caption 1 id 2:
  # outputs 0 and 1 (not the ids themselves).
  models, state, new_state, metrics, ref = _one_step_with_heads("word", weight, None,
                                                                word_ids=(1, 2), word_g_scale=1.0)
  head_ids = jnp.array([[0, 0, 0], [1, 0, 0]])
  head_mask = jnp.array([[True, False, False], [True, False, False]])

  def words(d_params, images):
    return losses.word_prediction_loss(
        models.d_word_logits(d_params, models.d_features(d_params, images)), head_ids, head_mask)

  def g_loss(g_params, d_params):
    sentence = ref.sentence(state.text_encoder)
    return ref.g_loss(g_params, d_params) + weight * words(d_params,
                                                           ref.generate(g_params, sentence))

  assert models.d_word_logits(state.discriminator, jnp.zeros((2, 3))).shape == (2, 2)
  np.testing.assert_allclose(metrics["d_words"], words(state.discriminator, ref.real),
                             rtol=1e-5)
  np.testing.assert_allclose(metrics["g_loss"], g_loss(state.generator,
                                                       new_state.discriminator), rtol=1e-5)
  # The binary search that maps them needs sorted, distinct ids.
  for bad in [(2, 1), (1, 1, 2), ()]:
    with pytest.raises(ValueError, match="sorted, distinct"):
      dataclasses.replace(models, word_ids=bad)


class RegionWordDiscriminator(ContrastiveDiscriminator):
  """With a word-region head: each of the three features is a region,
  embedded (with its own learned offset) in two dimensions, as are the
  caption's token states."""

  region_dim: int = 2

  def setup(self):
    super().setup()
    self.region_embed = nn.Dense(self.region_dim, name="region_embed")
    self.token_embed = nn.Dense(self.region_dim, name="token_embed")

  def region_word_embeddings(self, features, words):
    regions = self.region_embed(features[..., None])
    return _unit(regions), _unit(self.token_embed(words))

  def __call__(self, images, sentence, words=None):
    if self.is_initializing():
      self.region_word_embeddings(self.features(images), words)
    return super().__call__(images, sentence)


def test_region_word_loss_trains_d_the_text_encoder_and_g():
  # Heavy and sharp enough that the term turns some of the text encoder's
  # gradient signs (checked below), so the step's moves show it was applied.
  weight, temperature = 3.0, 0.1
  models, state, new_state, metrics, ref = _one_step_with_heads(
      "region_word", weight, temperature, discriminator=RegionWordDiscriminator())
  assert state.discriminator["token_embed"]["kernel"].shape == (SENTENCE_DIM, 2)
  mask = jnp.asarray(ref.mask)

  def words(text_params):
    return models.text_encoder.apply({"params": text_params}, ref.ids, mask).words

  def region_words(d_params, images, text_params):
    features = models.d_features(d_params, images)
    return losses.region_word_loss(
        *models.d_region_word_embeddings(d_params, features, words(text_params)), mask,
        temperature)

  def d_loss(d_params, text_params):
    return (ref.d_loss(d_params, text_params)
            + weight * region_words(d_params, ref.real, text_params))

  def g_loss(g_params, d_params):
    # G's words are those before D's update, with no gradient to the text.
    sentence = ref.sentence(state.text_encoder)
    return (ref.g_loss(g_params, d_params)
            + weight * region_words(d_params, ref.generate(g_params, sentence),
                                    state.text_encoder))

  np.testing.assert_allclose(
      metrics["d_region_words"],
      region_words(state.discriminator, ref.real, state.text_encoder), rtol=1e-5)
  _, text_grad, g_grad = _assert_step_follows(state, new_state, metrics, d_loss, g_loss)
  # The term is not negligible here, so the checks above can tell it is
  # there, for the text encoder (the words) and for G.
  plain_text_grad = jax.grad(ref.d_loss, argnums=1)(state.discriminator, state.text_encoder)
  assert any(np.any(np.sign(a) != np.sign(b))
             for a, b in zip(_leaves(text_grad), _leaves(plain_text_grad)))
  g_adv_grad = jax.grad(ref.g_loss)(state.generator, new_state.discriminator)
  assert any(np.any(np.sign(a) != np.sign(b))
             for a, b in zip(_leaves(g_grad), _leaves(g_adv_grad)))


def _swap_batch(has_swap) -> dict[str, np.ndarray]:
  """``_batch()`` with swapped captions: other tokens than the captions' own
  (the bag-of-words test encoder would embed a mere permutation alike)."""
  return {**_batch(), "swap_ids": np.array([[2, 3, 1], [3, 1, 0]], np.int32),
          "swap_mask": np.array([[True, True, True], [True, True, False]]),
          "has_swap": np.asarray(has_swap)}


def _swap_step(swap_weight: float, batch, contrastive_weight=0.7, temperature=0.5):
  return _one_step_with_heads("contrastive", contrastive_weight, temperature, batch=batch,
                              swap_weight=swap_weight)


def test_swapped_captions_are_mismatched_for_d_and_negatives_for_d_and_g():
  """Only the examples that have a swapped caption count (here the first)."""
  weight, swap_weight, temperature = 0.7, 10.0, 0.5
  batch = _swap_batch([True, False])
  models, state, new_state, metrics, ref = _swap_step(swap_weight, batch, weight, temperature)
  valid = batch["has_swap"]

  def swapped(text_params):
    return models.encode_text(text_params, batch["swap_ids"], batch["swap_mask"])

  def contrastive(d_params, images, sentence, swapped_sentence, swaps_count=True):
    features = models.d_features(d_params, images)
    image_embeddings, sentence_embeddings = models.d_embeddings(d_params, features, sentence)
    _, negatives = models.d_embeddings(d_params, features, swapped_sentence)
    return losses.contrastive_loss(image_embeddings, sentence_embeddings, temperature,
                                   negatives, valid & swaps_count)

  def swap_loss(d_params, text_params):
    logits = ref.logits(d_params, ref.real, swapped(text_params))
    # Hinge, first example only, half weight as DF-GAN's mismatched term.
    return 0.5 * jax.nn.relu(1.0 + logits[0])

  def d_loss(d_params, text_params):
    return (ref.d_loss(d_params, text_params) + swap_weight * swap_loss(d_params, text_params)
            + weight * contrastive(d_params, ref.real, ref.sentence(text_params),
                                   swapped(text_params)))

  def g_loss(g_params, d_params, swaps_count=True):
    # G's captions and their swaps are the text before D's update, fixed.
    sentence = ref.sentence(state.text_encoder)
    return ref.g_loss(g_params, d_params) + weight * contrastive(
        d_params, ref.generate(g_params, sentence), sentence, swapped(state.text_encoder),
        swaps_count)

  np.testing.assert_allclose(metrics["d_swap_loss"],
                             swap_loss(state.discriminator, state.text_encoder), rtol=1e-5)
  np.testing.assert_allclose(
      metrics["d_swap_logit"],
      ref.logits(state.discriminator, ref.real, swapped(state.text_encoder))[0], rtol=1e-5)
  # The swapped captions teach the text encoder too (through D's loss only).
  _, text_grad, g_grad = _assert_step_follows(state, new_state, metrics, d_loss, g_loss)
  # The terms are not negligible here, so the checks above can tell they are there.
  assert float(metrics["d_swap_loss"]) > 0.1
  # (Adam's first step moves by the gradient's sign: compare signs.) D's
  # swap term reaches the text; G's swapped negatives reach G.
  plain_text_grad = jax.grad(lambda t: d_loss(state.discriminator, t) - swap_weight
                             * swap_loss(state.discriminator, t))(state.text_encoder)
  plain_g_grad = jax.grad(g_loss)(state.generator, new_state.discriminator, False)
  for name, grad, plain in (("text", text_grad, plain_text_grad), ("G", g_grad, plain_g_grad)):
    assert any(np.any(np.sign(a) != np.sign(b))
               for a, b in zip(_leaves(grad), _leaves(plain))), name


def _four_swap_batch(has_swap) -> dict[str, np.ndarray]:
  """Four examples, each with its own image, caption and swapped caption."""
  images = np.random.default_rng(1).integers(0, 256, (4, IMAGE_SIZE, IMAGE_SIZE, 3),
                                             dtype=np.uint8)
  return {"image": images,
          "ids": np.array([[1, 3, 0], [2, 0, 0], [3, 1, 0], [1, 2, 3]], np.int32),
          "mask": np.array([[True, True, False], [True, False, False],
                            [True, True, False], [True, True, True]]),
          "swap_ids": np.array([[2, 3, 1], [3, 1, 0], [1, 1, 2], [3, 3, 0]], np.int32),
          "swap_mask": np.array([[True, True, True], [True, True, False],
                                 [True, True, True], [True, True, False]]),
          "has_swap": np.asarray(has_swap)}


def test_swap_rows_shows_d_only_every_nth_examples_edit():
  """With swap_rows=2 of 4 examples, D sees the edits of examples 0 and 2
  (every second one): the step is the one where only those have edits, and
  neither the one with all four nor the one with the first two."""
  def step(has_swap):
    return _swap_step(batch=_four_swap_batch(has_swap), swap_weight=10.0)

  _, _, every_second, expected_metrics, _ = step([True, False, True, False])
  _, _, subset, metrics, _ = _one_step_with_heads(
      "contrastive", 0.7, 0.5, batch=_four_swap_batch([True] * 4), swap_weight=10.0,
      swap_rows=2)
  for name in ("d_swap_loss", "d_loss", "g_loss", "d_contrastive", "g_contrastive"):
    np.testing.assert_allclose(metrics[name], expected_metrics[name], rtol=1e-6, err_msg=name)
  # (Summed over other rows, so equal up to float rounding: 4e-6 seen where
  # the leaf's entries reach 217.)
  for a, b in zip(_leaves(every_second), _leaves(subset), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=2e-5)
  for other in ([True] * 4, [True, True, False, False]):
    other_metrics = step(other)[3]
    assert abs(float(other_metrics["d_swap_loss"]) - float(metrics["d_swap_loss"])) > 1e-3, other


def test_a_batch_without_swapped_captions_trains_as_without_them():
  _, _, plain, plain_metrics, _ = _swap_step(0.0, _batch())
  _, _, swapped, metrics, _ = _swap_step(0.6, _swap_batch([False, False]))
  for name in ("d_loss", "g_loss", "d_contrastive", "g_contrastive"):
    np.testing.assert_allclose(metrics[name], plain_metrics[name], rtol=1e-6, err_msg=name)
  assert float(metrics["d_swap_loss"]) == 0.0
  for a, b in zip(_leaves(plain), _leaves(swapped), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_word_projection_scores_each_edited_caption_by_its_own_words():
  """D's logit for a real image with its edited caption scores the edit's
  words (here other words than the caption's), not the caption's."""
  batch = _swap_batch([True, False])
  models, state, _, metrics, ref = _one_step_with_heads(
      "word", 0.0, None, batch=batch, discriminator=ProjectionDiscriminator(),
      swap_weight=10.0)
  swapped = models.encode_text(state.text_encoder, batch["swap_ids"], batch["swap_mask"])

  def swap_logit(words):
    return ref.logits(state.discriminator, ref.real, swapped, words)[0]

  edit_words = models.word_head_ids(jnp.asarray(batch["swap_ids"]),
                                    jnp.asarray(batch["swap_mask"]))
  np.testing.assert_allclose(metrics["d_swap_logit"], swap_logit(edit_words), rtol=1e-5)
  assert abs(float(swap_logit(ref.words) - swap_logit(edit_words))) > 1e-3


def test_contrastive_queue_scores_d_and_g_against_the_earlier_captions():
  weight, temperature = 0.7, 0.5
  models = GanModels(generator=NoiseFreeGenerator(), discriminator=ContrastiveDiscriminator(),
                     text_encoder=BagOfWords(), text_frozen=False,
                     generator_has_state=False, z_dim=4)
  config = _config()
  config.loss.contrastive_weight = weight
  config.loss.contrastive_temperature = temperature
  config.loss.contrastive_queue = True
  config.loss.mismatch_queue = 4
  state = init_state(models, config, jax.random.key(0))
  assert state.caption_queue.shape == (4, SENTENCE_DIM)
  step = jax.jit(make_train_step(models, config, STEP_KEY))
  other = {**_batch(), "ids": np.array([[3, 3, 1], [1, 2, 0]], np.int32),
           "mask": np.ones((2, LENGTH), bool)}
  ring = np.zeros((4, SENTENCE_DIM), np.float32)

  def contrastive(d_params, images, sentence, written):
    images, embedded = models.d_embeddings(
        d_params, models.d_features(d_params, images), np.concatenate([sentence, ring]))
    return losses.contrastive_loss(images, embedded[:2], temperature, embedded[2:],
                                   np.arange(4) < min(written, 4))

  # The third step overwrites the first's entries; the fourth reads that.
  for i, batch in enumerate([_batch(), other, _batch(), other]):
    ref = Reference(models, config, state, batch)
    sentence = ref.sentence(state.text_encoder)
    new_state, metrics = step(state, batch)
    # D's term on the reals and G's on the fakes (through the updated D) both
    # count the queue's entries written by earlier steps, and only those.
    np.testing.assert_allclose(
        metrics["d_contrastive"],
        contrastive(state.discriminator, ref.real, sentence, 2 * i), rtol=1e-5)
    np.testing.assert_allclose(
        metrics["g_contrastive"],
        contrastive(new_state.discriminator, ref.fake, sentence, 2 * i), rtol=1e-5)
    np.testing.assert_allclose(metrics["d_adv_loss"],
                               ref.d_terms(state.discriminator, state.text_encoder)["adv"],
                               rtol=1e-5)  # the mismatched pairs stay DF-GAN's
    if i:  # the queue holds entries, and they count: the batch-only term differs
      batch_only = losses.contrastive_loss(*models.d_embeddings(
          state.discriminator, models.d_features(state.discriminator, ref.real), sentence),
          temperature)
      assert abs(float(metrics["d_contrastive"]) - float(batch_only)) > 1e-3
    ring[2 * (i % 2):2 * (i % 2) + 2] = sentence
    np.testing.assert_allclose(new_state.caption_queue, ring, rtol=1e-6)
    state = new_state


def test_hardest_mismatch_with_an_empty_queue_draws_from_the_batch():
  models = GanModels(generator=NoiseFreeGenerator(), discriminator=ContrastiveDiscriminator(),
                     text_encoder=BagOfWords(), text_frozen=False,
                     generator_has_state=False, z_dim=4)
  config = _config()
  config.loss.mismatch, config.loss.mismatch_queue = "hardest", 0
  state = init_state(models, config, jax.random.key(0))
  assert state.caption_queue.shape == (0, SENTENCE_DIM)
  batch = _batch()
  ref = Reference(models, config, state, batch)
  new_state, metrics = jax.jit(make_train_step(models, config, STEP_KEY))(state, batch)
  # In a batch of two the only other caption is the other example's.
  np.testing.assert_allclose(metrics["d_adv_loss"],
                             ref.d_terms(state.discriminator, state.text_encoder)["adv"],
                             rtol=1e-5)
  assert new_state.caption_queue.shape == (0, SENTENCE_DIM)


def test_hardest_mismatch_draws_from_the_batch_then_the_caption_queue():
  temperature = 1e-4  # the draw is the closest candidate
  models = GanModels(generator=NoiseFreeGenerator(), discriminator=ContrastiveDiscriminator(),
                     text_encoder=BagOfWords(), text_frozen=False,
                     generator_has_state=False, z_dim=4)
  config = _config()
  config.loss.mismatch = "hardest"
  config.loss.mismatch_queue = 4
  config.loss.contrastive_temperature = temperature
  # (Runs also train the head with the contrastive loss; here its params are
  # whatever they are, the draw is what is checked.)
  state = init_state(models, config, jax.random.key(0))
  assert state.caption_queue.shape == (4, SENTENCE_DIM)
  step = jax.jit(make_train_step(models, config, jax.random.key(7)))
  other = {**_batch(), "ids": np.array([[3, 3, 1], [1, 2, 0]], np.int32),
           "mask": np.ones((2, LENGTH), bool)}
  # The third step overwrites the first's entries; the fourth draws from that.
  batches = [_batch(), other, _batch(), other]
  ring = np.zeros((4, SENTENCE_DIM), np.float32)
  for i, batch in enumerate(batches):
    ref = Reference(models, config, state, batch)
    sentence = ref.sentence(state.text_encoder)
    if i == 0:
      # An empty queue: in a batch of two the only other caption is the
      # other example's, DF-GAN's pairing.
      expected = ref.d_terms(state.discriminator, state.text_encoder)["adv"]
    else:
      candidates = np.concatenate([sentence, ring])
      features = models.d_features(state.discriminator, ref.real)
      images, embedded = models.d_embeddings(state.discriminator, features, candidates)
      scores = np.array(images @ embedded.T)
      scores[[0, 1], [0, 1]] = -np.inf
      scores[:, 2 + 2 * i:] = -np.inf  # queue slots not written yet
      mismatched = candidates[np.argmax(scores, axis=1)]
      expected = ref.d_loss_fn(ref.logits(state.discriminator, ref.real, sentence),
                               ref.logits(state.discriminator, ref.fake, sentence),
                               ref.logits(state.discriminator, ref.real, mismatched))
    state, metrics = step(state, batch)
    np.testing.assert_allclose(metrics["d_adv_loss"], expected, rtol=1e-5)
    # The step's captions, as D saw them before its update, fill the ring.
    ring[2 * (i % 2):2 * (i % 2) + 2] = sentence
    np.testing.assert_allclose(state.caption_queue, ring, rtol=1e-6)
  assert float(metrics["d_negatives_from_queue"]) > 0
