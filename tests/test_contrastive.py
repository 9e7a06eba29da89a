"""XMC-GAN's image-sentence contrastive loss (the formula, D's head, the step),
and the caption-word and word-region losses and heads beside it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from jaxgan import config as config_lib
from jaxgan import data, losses, run as run_lib, text
from jaxgan.models.dfgan import Discriminator
from jaxgan.models.gan import GanModels
from jaxgan.train.state import init_state
from jaxgan.train.step import images_to_float, make_train_step


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _reference(images, sentences, temperature):
  """Both softmax cross-entropies written out in numpy (float64)."""
  logits = images.astype(np.float64) @ sentences.astype(np.float64).T / temperature
  rows = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
  cols = logits - np.log(np.exp(logits).sum(axis=0, keepdims=True))
  return 0.5 * (-np.mean(np.diag(rows)) - np.mean(np.diag(cols)))


def test_word_prediction_loss_matches_the_formula():
  logits = np.array([[2.0, -1.0, 0.5, -3.0], [0.0, 1.5, -0.5, 4.0]], np.float32)
  ids = np.array([[1, 3, 3], [2, 0, 1]], np.int32)
  mask = np.array([[True, True, False], [True, False, False]])
  # Caption 0 holds ids 1 and 3 (its third token is padding), caption 1 id 2.
  targets = np.array([[0, 1, 0, 1], [0, 0, 1, 0]], np.float64)
  np.testing.assert_array_equal(losses.caption_words(ids, mask, 4), targets)
  p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
  expected = np.mean(np.sum(-(targets * np.log(p) + (1 - targets) * np.log(1 - p)), axis=1))
  np.testing.assert_allclose(losses.word_prediction_loss(logits, ids, mask), expected,
                             rtol=1e-6)


def test_dfgan_word_head_scores_every_token_id():
  d = Discriminator(nf=4, image_size=16, word_dim=6, word_vocab=11)
  images, sentence = jnp.zeros((3, 16, 16, 3)), jnp.zeros((3, 5))
  params = d.init(jax.random.key(0), images, sentence)["params"]
  assert params["word_out"]["kernel"].shape == (6, 11)
  logits = d.apply({"params": params}, d.apply({"params": params}, images, method="features"),
                   method="word_logits")
  assert logits.shape == (3, 11) and logits.dtype == jnp.float32
  # Every word starts unlikely (sigmoid = 1 / vocabulary at zero input).
  np.testing.assert_allclose(params["word_out"]["bias"], -np.log(11), rtol=1e-6)
  with pytest.raises(ValueError, match="word_vocab >= 1"):
    Discriminator(nf=4, image_size=16, word_dim=6)
  with pytest.raises(ValueError, match="no caption-word head"):
    Discriminator(nf=4, image_size=16).apply({"params": params}, jnp.zeros((3, 4, 4, 16)),
                                             method="word_logits")


def test_dfgan_word_projection_joins_the_logit_as_its_caption_words_mean():
  """D's logit with a word projection head: the matching head's, plus the mean
  of the head's scores over the caption's distinct words; zero at init."""
  d = Discriminator(nf=4, image_size=16, word_dim=6, word_vocab=5, projection_dim=7)
  models = GanModels(generator=None, discriminator=d, text_encoder=None, text_frozen=False,
                     generator_has_state=False, z_dim=1)
  images = jax.random.uniform(jax.random.key(1), (2, 16, 16, 3), minval=-1.0, maxval=1.0)
  sentence = jax.random.normal(jax.random.key(2), (2, 5))
  params = d.init(jax.random.key(0), images, sentence)["params"]
  assert params["projection_out"]["kernel"].shape == (7, 5)
  features = models.d_features(params, images)
  matching = d.apply({"params": params}, features, sentence, method="logits")
  # Caption 0 holds ids 1 and 3 (3 twice), caption 1 only padding.
  words = (jnp.array([[1, 3, 3], [4, 0, 0]]),
           jnp.array([[True, True, True], [False, False, False]]))
  np.testing.assert_allclose(models.d_logits(params, features, sentence, words), matching,
                             rtol=1e-6)
  params["projection_out"]["kernel"] = jax.random.normal(jax.random.key(3), (7, 5))
  scores = np.asarray(d.apply({"params": params}, features, method="word_projection"),
                      np.float64)
  assert np.abs(scores).max() > 1e-3
  np.testing.assert_allclose(models.d_logits(params, features, sentence, words),
                             np.asarray(matching) + [(scores[0, 1] + scores[0, 3]) / 2, 0.0],
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="pass words="):
    models.d_logits(params, features, sentence)
  with pytest.raises(ValueError, match="word_vocab >= 1"):
    Discriminator(nf=4, image_size=16, projection_dim=6)


def test_contrastive_loss_matches_the_formula():
  rng = np.random.default_rng(0)
  images = _unit(rng.normal(size=(6, 5))).astype(np.float32)
  sentences = _unit(rng.normal(size=(6, 5))).astype(np.float32)
  for temperature in (0.1, 1.0):
    np.testing.assert_allclose(losses.contrastive_loss(images, sentences, temperature),
                               _reference(images, sentences, temperature), rtol=1e-5)


def test_contrastive_loss_with_queued_negatives_matches_the_formula():
  rng = np.random.default_rng(1)
  images = _unit(rng.normal(size=(4, 5))).astype(np.float32)
  sentences = _unit(rng.normal(size=(4, 5))).astype(np.float32)
  queued = _unit(rng.normal(size=(6, 5))).astype(np.float32)
  valid = np.array([True, True, False, True, False, True])
  temperature = 0.3
  # Image-to-sentence: a softmax over the batch's sentences and the valid
  # queued ones; sentence-to-image: over the batch's images, as without a queue.
  logits = images.astype(np.float64) @ np.concatenate([sentences, queued[valid]]).T
  logits /= temperature
  rows = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
  square = logits[:, :4]
  cols = square - np.log(np.exp(square).sum(axis=0, keepdims=True))
  expected = 0.5 * (-np.mean(np.diag(rows)) - np.mean(np.diag(cols)))
  np.testing.assert_allclose(
      losses.contrastive_loss(images, sentences, temperature, queued, valid), expected,
      rtol=1e-5)
  # No valid entry: the batch-only loss, and finite gradients.
  none = np.zeros(6, bool)
  np.testing.assert_allclose(
      losses.contrastive_loss(images, sentences, temperature, queued, none),
      _reference(images, sentences, temperature), rtol=1e-5)
  grads = jax.grad(losses.contrastive_loss, argnums=(0, 3))(
      images, sentences, temperature, queued, none)
  assert all(np.all(np.isfinite(g)) for g in grads)
  np.testing.assert_array_equal(grads[1], 0.0)


def test_contrastive_loss_limits():
  batch = 8
  same = np.ones((batch, 4), np.float32) / 2.0
  # No information: every pair is as likely as every other.
  np.testing.assert_allclose(losses.contrastive_loss(same, same), np.log(batch), rtol=1e-6)
  # Orthonormal pairs, sharp temperature: each picks its own partner.
  eye = np.eye(batch, dtype=np.float32)
  assert float(losses.contrastive_loss(eye, eye, temperature=0.05)) < 1e-6
  # And the loss is a function of the pairing: shuffled partners cost more.
  assert float(losses.contrastive_loss(eye, eye[::-1], temperature=0.05)) > np.log(batch)


def test_discriminator_head_params_shapes_and_positions():
  x = jnp.zeros((2, 16, 16, 3))
  s = jnp.zeros((2, 12))
  plain = Discriminator(nf=4, image_size=16).init(jax.random.key(0), x, s)["params"]
  assert "image_embed" not in plain and "sentence_embed" not in plain
  d = Discriminator(nf=4, image_size=16, contrastive_dim=10)
  params = d.init(jax.random.key(0), x, s)["params"]
  assert params["sentence_embed"]["kernel"].shape == (12, 10)
  features = jax.random.normal(jax.random.key(1), (2, 4, 4, 16))
  sentence = jax.random.normal(jax.random.key(2), (2, 12))
  images, sentences = d.apply({"params": params}, features, sentence, method="embeddings")
  assert images.shape == sentences.shape == (2, 10)
  assert images.dtype == sentences.dtype == jnp.float32
  np.testing.assert_allclose(np.linalg.norm(images, axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(sentences, axis=-1), 1.0, rtol=1e-5)
  # The head reads where things are: moving the features to other cells
  # changes the embedding (a pooled head would not see it).
  moved, _ = d.apply({"params": params}, jnp.roll(features, 1, axis=1), sentence,
                     method="embeddings")
  assert float(jnp.max(jnp.abs(moved - images))) > 1e-3
  with pytest.raises(ValueError, match="no contrastive head"):
    Discriminator(nf=4, image_size=16).apply({"params": plain}, features, sentence,
                                             method="embeddings")


def test_discriminator_view_head_is_unit_norm_and_ignores_where_features_are():
  x = jnp.zeros((2, 16, 16, 3))
  plain = Discriminator(nf=4, image_size=16).init(jax.random.key(0), x, jnp.zeros((2, 12)))
  assert "view_embed" not in plain["params"] and "view_hidden" not in plain["params"]
  d = Discriminator(nf=4, image_size=16, view_dim=10)
  variables = d.init(jax.random.key(0), x, jnp.zeros((2, 12)))
  assert variables["params"]["view_embed"]["kernel"].shape == (16, 10)

  def embed(features, module=d, variables=variables):
    return module.apply(variables, features, method="view_embeddings")

  features = jax.random.normal(jax.random.key(1), (2, 4, 4, 16))
  embeddings = embed(features)
  assert embeddings.shape == (2, 10) and embeddings.dtype == jnp.float32
  np.testing.assert_allclose(np.linalg.norm(embeddings, axis=-1), 1.0, rtol=1e-5)
  # It reads the features averaged over the grid (a view may be moved):
  # moving them changes nothing, other features change it.
  np.testing.assert_allclose(embed(jnp.roll(features, (1, 2), axis=(1, 2))), embeddings,
                             rtol=1e-5, atol=1e-6)
  assert float(jnp.max(jnp.abs(embed(features[::-1]) - embeddings))) > 1e-3
  with pytest.raises(ValueError, match="no self-supervised head"):
    embed(features, Discriminator(nf=4, image_size=16), plain)


def _region_word_reference(regions, words, mask, attention_scale=4.0,
                           aggregation_scale=5.0):
  """The word-region score written out in numpy (float64): each word's
  attended region, its cosine with the word, a soft mean over the words."""
  regions, words = regions.astype(np.float64), words.astype(np.float64)
  scores = np.zeros((len(regions), len(words)))
  for i, image in enumerate(regions):
    for j, caption in enumerate(words):
      agreements = []
      for word in caption[mask[j]]:
        logits = attention_scale * image @ word
        attention = np.exp(logits - logits.max())
        attention /= attention.sum()
        context = attention @ image
        agreements.append(context @ word / np.linalg.norm(context) / np.linalg.norm(word))
      scores[i, j] = np.log(np.mean(np.exp(aggregation_scale * np.array(agreements)))
                            ) / aggregation_scale
  return scores


def test_region_word_scores_and_loss_match_the_formula():
  rng = np.random.default_rng(3)
  regions = _unit(rng.normal(size=(3, 5, 4))).astype(np.float32)
  words = _unit(rng.normal(size=(4, 6, 4))).astype(np.float32)
  mask = np.array([[True] * 6, [True, True, False, False, False, False],
                   [True, False, True, True, False, True], [True] + [False] * 5])
  expected = _region_word_reference(regions, words, mask)
  scores = losses.region_word_scores(regions, words, mask)
  assert scores.shape == (3, 4) and scores.dtype == jnp.float32
  np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
      losses.region_word_scores(regions, words, mask, 2.0, 1.0),
      _region_word_reference(regions, words, mask, 2.0, 1.0), rtol=1e-5, atol=1e-6)
  # The loss: the symmetric InfoNCE of the square part's scores.
  temperature = 0.2
  square = expected[:, :3] / temperature
  rows = square - np.log(np.exp(square).sum(axis=1, keepdims=True))
  cols = square - np.log(np.exp(square).sum(axis=0, keepdims=True))
  np.testing.assert_allclose(
      losses.region_word_loss(regions, words[:3], mask[:3], temperature),
      0.5 * (-np.mean(np.diag(rows)) - np.mean(np.diag(cols))), rtol=1e-5)


def test_region_word_scores_find_words_where_they_are_drawn():
  # Four orthonormal "things"; image i draws things i and i+1 (mod 4) in two
  # of its three regions, the third is empty (a direction no word has).
  eye = np.eye(5, dtype=np.float32)
  regions = np.stack([[eye[i], eye[(i + 1) % 4], eye[4]] for i in range(4)])
  # Caption j names things j and j+1; caption 4 the same as caption 0 with
  # each word said twice (and padded): the score is a mean over words, so
  # saying more does not score more.
  words = np.stack([[eye[j], eye[(j + 1) % 4], eye[j], eye[(j + 1) % 4]] for j in range(4)]
                   + [[eye[0], eye[1], eye[0], eye[1]]])
  mask = np.array([[True, True, False, False]] * 4 + [[True] * 4])
  scores = np.asarray(losses.region_word_scores(regions, words, mask, 20.0, 5.0))
  # Each image scores its own caption highest, the two that share a thing
  # with it next, the one sharing none lowest.
  for i in range(4):
    own, shared, none = scores[i, i], scores[i, [(i + 1) % 4, (i + 3) % 4]], scores[i, (i + 2) % 4]
    assert own > shared.max() and shared.min() > none
  np.testing.assert_allclose(scores[:, 4], scores[:, 0], rtol=1e-6)
  # Where a thing is drawn does not enter the score (D's head adds the cell's
  # embedding for that): the regions in another order score alike.
  np.testing.assert_allclose(
      losses.region_word_scores(regions[:, ::-1], words, mask, 20.0, 5.0), scores, rtol=1e-6)
  assert float(losses.region_word_loss(regions, words[:4], mask[:4], 0.05)) < 0.5
  # No information: every image alike and every caption alike.
  same_regions = np.broadcast_to(regions[:1], regions.shape)
  same_words = np.broadcast_to(words[:1], (4,) + words.shape[1:])
  np.testing.assert_allclose(
      losses.region_word_loss(same_regions, same_words, mask[:4]), np.log(4), rtol=1e-6)


def test_dfgan_region_head_embeds_each_cell_where_it_is():
  x, s = jnp.zeros((2, 16, 16, 3)), jnp.zeros((2, 12))
  words = jnp.zeros((2, 5, 7))
  plain = Discriminator(nf=4, image_size=16).init(jax.random.key(0), x, s)["params"]
  assert "region_embed" not in plain and "token_embed" not in plain
  d = Discriminator(nf=4, image_size=16, region_dim=6)
  params = d.init(jax.random.key(0), x, s, words=words)["params"]
  assert params["token_embed"]["kernel"].shape == (7, 6)
  assert params["region_position"].shape == (16, 6)
  features = jax.random.normal(jax.random.key(1), (2, 4, 4, 16))
  tokens_in = jax.random.normal(jax.random.key(2), (3, 5, 7))
  regions, tokens = d.apply({"params": params}, features, tokens_in,
                            method="region_word_embeddings")
  assert regions.shape == (2, 16, 6) and tokens.shape == (3, 5, 6)
  assert regions.dtype == tokens.dtype == jnp.float32
  np.testing.assert_allclose(np.linalg.norm(regions, axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(tokens, axis=-1), 1.0, rtol=1e-5)
  # The same features in two cells embed differently: the cell is part of it.
  one_thing = jnp.broadcast_to(features[:1, :1, :1], (1, 4, 4, 16))
  cells, _ = d.apply({"params": params}, one_thing, tokens_in, method="region_word_embeddings")
  assert float(jnp.max(jnp.abs(cells[0, 0] - cells[0, 5]))) > 1e-3
  with pytest.raises(ValueError, match="pass words="):
    d.init(jax.random.key(0), x, s)
  with pytest.raises(ValueError, match="no word-region head"):
    Discriminator(nf=4, image_size=16).apply({"params": plain}, features, tokens_in,
                                             method="region_word_embeddings")


def test_real_fake_contrastive_loss_is_infonce_over_flattened_feature_cosines():
  rng = np.random.default_rng(2)
  fake = rng.normal(size=(5, 2, 2, 3)).astype(np.float32)
  real = rng.normal(size=(5, 2, 2, 3)).astype(np.float32)
  temperature = 0.2
  expected = _reference(_unit(fake.reshape(5, -1)), _unit(real.reshape(5, -1)), temperature)
  np.testing.assert_allclose(losses.real_fake_contrastive_loss(fake, real, temperature),
                             expected, rtol=1e-5)
  # Scale-free: features twice as large are the same cosines.
  np.testing.assert_allclose(losses.real_fake_contrastive_loss(2 * fake, real, temperature),
                             expected, rtol=1e-5)
  # A fake that is its own real image's twin picks it; paired with another's, it does not.
  assert float(losses.real_fake_contrastive_loss(real, real, 0.05)) < 0.05
  assert float(losses.real_fake_contrastive_loss(real[::-1], real, 0.05)) > np.log(5)
  # All-zero features (a dead D) give the no-information value, finitely.
  zeros = np.zeros_like(real)
  np.testing.assert_allclose(losses.real_fake_contrastive_loss(zeros, real), np.log(5),
                             rtol=1e-6)
  grad = jax.grad(losses.real_fake_contrastive_loss)(zeros, real)
  assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("overrides, message", [
    ({"loss.contrastive_weight": 1.0}, "needs D's contrastive head"),
    ({"model.contrastive_dim": 8, "model.arch": "mlp"}, "needs model.arch='dfgan'"),
    ({"model.contrastive_dim": -1}, "must be an integer >= 0"),
    ({"model.contrastive_dim": 8, "loss.contrastive_weight": 1.0,
      "loss.contrastive_temperature": 0.0}, "must be > 0"),
    ({"loss.mismatch": "hardest"}, "picks captions with D's contrastive head"),
    ({"model.contrastive_dim": 8, "loss.mismatch": "hardest"},
     "loss.contrastive_weight > 0"),
    ({"model.contrastive_dim": 8, "loss.contrastive_weight": 1.0, "loss.mismatch": "hardest",
      "loss.mismatch_queue": 0, "batch_size": 1}, "must be at least 2"),
    ({"model.contrastive_dim": 8, "loss.contrastive_weight": 1.0, "loss.mismatch": "hardest",
      "loss.mismatch_queue": 12},
     "must be a multiple of batch_size=8"),
    ({"loss.mismatch": "random"}, "valid: roll, hardest"),
    ({"loss.contrastive_queue": True}, "contrastive_queue=True adds negatives"),
    ({"model.contrastive_dim": 8, "loss.contrastive_weight": 1.0,
      "loss.contrastive_queue": True, "loss.mismatch_queue": 12},
     "must be a multiple of batch_size=8"),
    ({"model.contrastive_dim": 8, "loss.contrastive_weight": 1.0,
      "loss.contrastive_queue": True, "loss.mismatch_queue": 0}, "mismatch_queue > 0"),
    # D's self-supervised loss (view pairs) and its head.
    ({"loss.view_contrastive_weight": 1.0}, "needs D's self-supervised head"),
    ({"model.view_dim": 8, "model.arch": "mlp"}, "needs model.arch='dfgan'"),
    ({"model.view_dim": -1}, "must be an integer >= 0"),
    ({"model.view_dim": 8, "loss.view_contrastive_weight": -1.0}, "must be >= 0"),
    ({"model.view_dim": 8, "loss.view_contrastive_weight": 1.0,
      "loss.view_contrastive_temperature": 0.0}, "must be > 0"),
    ({"model.view_dim": 8, "loss.view_contrastive_weight": 1.0, "batch_size": 1},
     "must be at least 2"),
    # The caption-word loss and its head.
    ({"loss.word_weight": 1.0}, "needs D's caption-word head"),
    ({"model.word_dim": 8, "model.arch": "mlp"}, "needs model.arch='dfgan'"),
    ({"model.word_dim": 8, "loss.word_weight": -1.0}, "must be >= 0"),
    ({"model.word_dim": 8, "loss.word_weight": 1.0, "loss.word_g_scale": -1.0},
     "word_g_scale=-1.0 must be >= 0"),
    ({"loss.word_fake_weight": 1.0}, "word_fake_weight=1.0 needs D's caption-word head"),
    ({"model.word_dim": 8, "loss.word_fake_weight": -0.5}, "must be a number >= 0"),
    # D's word projection head scores the caption-word head's ids, and the
    # words of every mismatched caption.
    ({"model.projection_dim": 8}, "set model.word_dim"),
    ({"model.projection_dim": -1}, "projection_dim=-1 must be an integer >= 0"),
    ({"model.projection_dim": True}, "projection_dim=True must be an integer >= 0"),
    ({"model.projection_dim": 8, "model.arch": "mlp"}, "projection_dim=8 needs model.arch"),
    ({"model.word_dim": 8, "model.projection_dim": 8, "model.contrastive_dim": 8,
      "loss.contrastive_weight": 1.0, "loss.mismatch": "hardest"},
     "use loss.mismatch='roll'"),
    # Swapped-word negatives need an encoder that reads word order.
    ({"loss.swap_weight": 1.0, "text.encoder": "bow"}, "encodes identically"),
    ({"loss.swap_weight": -0.5, "text.encoder": "transformer"}, "must be a number >= 0"),
    ({"loss.swap_weight": 1.0, "loss.swap_edits": "both", "text.encoder": "bow"},
     "encodes identically"),
    ({"loss.swap_weight": 1.0, "loss.swap_edits": "swaps"}, "must be one of"),
    ({"loss.swap_weight": 1.0, "loss.swap_rows": -1}, "swap_rows=-1 must be an integer"),
    ({"loss.swap_weight": 1.0, "loss.swap_rows": 3}, "swap_rows=3 must divide batch_size=8"),
    ({"loss.swap_weight": 0.0, "loss.swap_rows": 4}, "loss.swap_weight=0 shows it none"),
    ({"model.word_vocab": "caption"}, "word_vocab='caption' must be one of"),
    # The word-region loss and its head.
    ({"loss.region_word_weight": 1.0}, "needs D's word-region head"),
    ({"model.region_dim": 8, "model.arch": "mlp"}, "needs model.arch='dfgan'"),
    ({"model.region_dim": 8, "loss.region_word_weight": -1.0}, "must be >= 0"),
    ({"model.region_dim": 8, "loss.region_word_weight": 1.0,
      "loss.region_word_temperature": 0.0}, "must be > 0"),
    # G's image-image contrastive loss.
    ({"loss.real_fake_weight": -1.0}, "real_fake_weight=-1.0 must be a number >= 0"),
    ({"loss.real_fake_weight": 1.0, "loss.real_fake_temperature": 0.0},
     "real_fake_temperature=0.0 must be > 0"),
    ({"loss.real_fake_weight": 1.0, "batch_size": 1}, "batch_size=1 must be at least 2"),
])
def test_config_refuses_a_contrastive_loss_without_its_head(overrides, message):
  config = tiny.get_config()
  for key, value in overrides.items():
    *sections, name = key.split(".")
    node = config
    for section in sections:
      node = node[section]
    node[name] = value
  with pytest.raises(ValueError, match=message):
    config_lib.validate(config)


def test_swap_rows_warns_when_the_devices_cannot_share_them_evenly():
  config = tiny.get_config()
  config.loss.swap_weight, config.loss.swap_rows = 1.0, 4
  assert config_lib.swap_rows_warning(config, 1) is None
  assert config_lib.swap_rows_warning(config, 4) is None
  assert "swap_rows=4 is not a multiple of the 8 devices" in config_lib.swap_rows_warning(
      config, 8)
  config.loss.swap_rows = 0  # every example's edit: each device has its own rows
  assert config_lib.swap_rows_warning(config, 8) is None


@pytest.mark.slow  # 40 s, mostly compiling a DF-GAN step
def test_the_dfgan_step_adds_the_loss_to_d_and_g():
  # The contract (which gradient reaches which params) is checked on
  # hand-built modules in test_train_step.py; this runs DF-GAN's own head.
  config = tiny.get_config()
  config.model.contrastive_dim = 16
  config.loss.contrastive_weight = 1.0
  config_lib.validate(config)
  source = data.build_source(config)
  tokenizer = text.build_tokenizer(config.text, data.vocabulary_captions(source, 200))
  models, _ = run_lib.build_gan(config, tokenizer)
  batch = next(iter(data.make_dataset(source, tokenizer, global_batch_size=config.batch_size,
                                      seed=0, num_threads=1)))
  state = init_state(models, config, jax.random.key(0))
  new_state, metrics = jax.jit(make_train_step(models, config, jax.random.key(1)))(state, batch)
  # D's term on the params before the update: real features against the
  # batch's own sentences.
  d_params = state.discriminator
  sentence = models.encode_text(state.text_encoder, batch["ids"], batch["mask"])
  features = models.d_features(d_params, images_to_float(batch["image"]))
  expected = losses.contrastive_loss(*models.d_embeddings(d_params, features, sentence))
  np.testing.assert_allclose(metrics["d_contrastive"], expected, rtol=1e-5)
  np.testing.assert_allclose(metrics["d_loss"],
                             metrics["d_adv_loss"] + metrics["d_ma_gp"] + expected, rtol=1e-5)
  np.testing.assert_allclose(metrics["g_loss"],
                             metrics["g_adv_loss"] + metrics["g_contrastive"], rtol=1e-5)
  assert bool(metrics["finite"])
  head = new_state.discriminator["image_embed"]["kernel"]
  assert float(jnp.max(jnp.abs(head - d_params["image_embed"]["kernel"]))) > 0
