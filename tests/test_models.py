"""Tests of the generators and discriminators (jaxgan.models)."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import (ARCHS, Discriminator, Generator, MLPDiscriminator,
                           MLPGenerator, build_models, uses_batch_stats)
from jaxgan.models import dfgan
from jaxgan.models.dfgan import Affine, Downsample4x4

B, Z, DS = 2, 16, 12  # batch, noise size, sentence size


def _inputs(size, seed=0):
  kz, ks, kx = jax.random.split(jax.random.key(seed), 3)
  z = jax.random.normal(kz, (B, Z))
  s = jax.random.normal(ks, (B, DS))
  x = jax.random.uniform(kx, (B, size, size, 3), minval=-1.0, maxval=1.0)
  return z, s, x


def _num_params(tree):
  return sum(math.prod(a.shape) for a in jax.tree.leaves(tree))


def _perturb(params, key, match, scale=0.5):
  """Adds noise to every leaf whose path contains ``match``."""
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  keys = jax.random.split(key, len(leaves))
  out = []
  for (path, leaf), k in zip(leaves, keys):
    if match in jax.tree_util.keystr(path):
      leaf = leaf + scale * jax.random.normal(k, leaf.shape, leaf.dtype)
    out.append(leaf)
  return jax.tree_util.tree_unflatten(treedef, out)


# The DF-GAN architecture written out from the paper's description, to check
# the module's parameter count against an independent count.
def _widths(nf, size):
  return [nf * min(2**i, 8) for i in range(int(math.log2(size)) - 1)]


def _expected_g_params(nf, size):
  w = _widths(nf, size)[::-1]
  cond = Z + DS
  conv = lambda k, cin, cout: k * k * cin * cout + cout
  dense = lambda cin, cout: cin * cout + cout
  affine = lambda c: 2 * (dense(cond, c) + dense(c, c))  # gamma and beta MLPs
  fuse = lambda c: 2 * affine(c)
  n = dense(Z, 16 * w[0])
  for cin, cout in zip(w[:-1], w[1:]):
    n += conv(1, cin, cout) if cin != cout else 0
    n += fuse(cin) + conv(3, cin, cout) + fuse(cout) + conv(3, cout, cout)
  return n + conv(3, w[-1], 3)


def _expected_d_params(nf, size):
  w = _widths(nf, size)
  conv = lambda k, cin, cout: k * k * cin * cout + cout
  n = conv(3, 3, w[0])
  for cin, cout in zip(w[:-1], w[1:]):
    n += conv(4, cin, cout) + conv(3, cout, cout) + 1  # + gamma
    n += conv(1, cin, cout) if cin != cout else 0
  return n + conv(3, w[-1] + DS, 2 * nf) + conv(4, 2 * nf, 1)


@pytest.mark.parametrize("size,nf", [(16, 8), (32, 8), (64, 4)])
def test_dfgan_shapes_dtypes_and_param_count(size, nf):
  z, s, x = _inputs(size)
  g, d = Generator(nf=nf, image_size=size), Discriminator(nf=nf, image_size=size)
  # eval_shape: shapes, dtypes and counts without compiling the models.
  gv = jax.eval_shape(g.init, jax.random.key(0), z, s)
  dv = jax.eval_shape(d.init, jax.random.key(0), x, s)
  assert set(gv) == {"params"} and set(dv) == {"params"}
  img = jax.eval_shape(g.apply, gv, z, s)
  assert img.shape == (B, size, size, 3) and img.dtype == jnp.float32
  logits = jax.eval_shape(d.apply, dv, x, s)
  assert logits.shape == (B,) and logits.dtype == jnp.float32
  feats = jax.eval_shape(lambda v: d.apply(v, x, method=d.features), dv)
  # DF-GAN widths: 8 * nf at 4x4 from 32x32 up; 16x16 only reaches 4 * nf.
  assert feats.shape == (B, 4, 4, _widths(nf, size)[-1])
  assert _num_params(gv) == _expected_g_params(nf, size)
  assert _num_params(dv) == _expected_d_params(nf, size)
  n_blocks = int(math.log2(size)) - 2
  assert set(gv["params"]) == (
      {"fc", "to_rgb"} | {f"block_{i}" for i in range(n_blocks)})
  assert set(dv["params"]) == ({"conv_img", "joint_conv", "out_conv"}
                              | {f"blocks_{i}" for i in range(n_blocks)})


def test_param_count_grows_with_nf():
  z, s, x = _inputs(32)
  counts = []
  for nf in (4, 8, 16):
    gv = jax.eval_shape(Generator(nf, 32).init, jax.random.key(0), z, s)
    dv = jax.eval_shape(Discriminator(nf, 32).init, jax.random.key(0), x, s)
    counts.append((_num_params(gv), _num_params(dv)))
  assert counts[0] < counts[1] < counts[2]
  # Convolutions dominate, so doubling nf roughly quadruples the count.
  for net in (0, 1):
    assert 3.0 < counts[2][net] / counts[1][net] <= 4.0


@pytest.mark.parametrize("param_dtype", [jnp.float32, jnp.bfloat16])
def test_bf16_compute_gives_float32_outputs(param_dtype):
  z, s, x = _inputs(16)
  g, d = build_models("dfgan", 16, 4, "bfloat16", jnp.dtype(param_dtype).name)
  gv = jax.eval_shape(g.init, jax.random.key(0), z, s)
  dv = jax.eval_shape(d.init, jax.random.key(0), x, s)
  for leaf in jax.tree.leaves((gv, dv)):
    assert leaf.dtype == param_dtype
  assert jax.eval_shape(g.apply, gv, z, s).dtype == jnp.float32
  assert jax.eval_shape(d.apply, dv, x, s).dtype == jnp.float32


def test_bf16_forward_runs_and_is_finite():
  z, s, x = _inputs(16)
  g, d = build_models("dfgan", 16, 4, "bfloat16", "bfloat16")
  # One jitted function: compiling once beats dispatching every op eagerly.
  @jax.jit
  def run(z, s, x):
    gv = g.init(jax.random.key(0), z, s)
    dv = d.init(jax.random.key(1), x, s)
    img = g.apply(gv, z, s)
    return img, d.apply(dv, img, s)
  img, logits = run(z, s, x)
  assert img.dtype == jnp.float32 and logits.dtype == jnp.float32
  assert np.all(np.isfinite(img)) and np.all(np.isfinite(logits))


@pytest.mark.parametrize("size", [0, 8, 48, 100, 512, 16.0])
def test_invalid_image_size_raises(size):
  with pytest.raises(ValueError, match="image_size"):
    Generator(nf=4, image_size=size)
  with pytest.raises(ValueError, match="image_size"):
    Discriminator(nf=4, image_size=size)


def test_unknown_arch_raises_listing_valid_ones():
  with pytest.raises(ValueError, match="dfgan, mlp"):
    build_models("stylegan", 64, 8)
  with pytest.raises(ValueError, match="dfgan"):
    uses_batch_stats("nope")
  assert ARCHS == ("dfgan", "mlp")
  assert not uses_batch_stats("dfgan") and uses_batch_stats("mlp")


def test_affine_is_identity_at_init():
  key = jax.random.key(3)
  x = jax.random.normal(key, (B, 4, 4, 6))
  aff = Affine(6)
  v = aff.init(jax.random.key(0), x, jnp.ones((B, 5)))
  for c in (jnp.ones((B, 5)), -3.0 * jnp.arange(B * 5.0).reshape(B, 5)):
    np.testing.assert_array_equal(aff.apply(v, x, c), x)
  p = v["params"]
  np.testing.assert_array_equal(p["gamma_fc2"]["kernel"], 0.0)
  np.testing.assert_array_equal(p["gamma_fc2"]["bias"], 1.0)
  np.testing.assert_array_equal(p["beta_fc2"]["kernel"], 0.0)
  np.testing.assert_array_equal(p["beta_fc2"]["bias"], 0.0)


@pytest.fixture(scope="module")
def dfgan16():
  z, s, x = _inputs(16)
  g, d = Generator(nf=4, image_size=16), Discriminator(nf=4, image_size=16)
  gv = jax.jit(g.init)(jax.random.key(0), z, s)
  dv = jax.jit(d.init)(jax.random.key(1), x, s)
  return g, d, gv, dv


def test_generator_range_and_conditioning(dfgan16):
  g, _, gv, _ = dfgan16
  z, s, _ = _inputs(16)
  z2, s2, _ = _inputs(16, seed=1)
  img = g.apply(gv, z, s)
  assert np.all(np.abs(img) <= 1.0)
  # Affines are the identity at init: the text has no effect yet...
  np.testing.assert_array_equal(img, g.apply(gv, z, s2))
  # ...but the noise does, through the stem.
  assert not np.allclose(img, g.apply(gv, z2, s), atol=1e-4)
  # Once the affines have moved, the sentence changes the image.
  gv2 = _perturb(gv, jax.random.key(5), "fc2")
  assert not np.allclose(g.apply(gv2, z, s), g.apply(gv2, z, s2), atol=1e-4)
  # The `train` flag exists for a uniform interface and changes nothing.
  np.testing.assert_array_equal(img, g.apply(gv, z, s, train=True))


def test_text_stem_lets_the_sentence_lay_out_the_image_from_init():
  z, s, _ = _inputs(16)
  _, s2, _ = _inputs(16, seed=1)
  g = Generator(nf=4, image_size=16, text_stem=True)
  gv = jax.jit(g.init)(jax.random.key(0), z, s)
  kernel = gv["params"]["fc"]["kernel"]
  assert kernel.shape == (Z + DS, 4 * 4 * 16)  # 16 px: a 4 x nf stem
  # The affines are still the identity, yet the sentence moves the image.
  assert not np.allclose(g.apply(gv, z, s), g.apply(gv, z, s2), atol=1e-4)
  # The sentence's rows of the stem are all it adds to DF-GAN's generator.
  plain = Generator(nf=4, image_size=16)
  plain_params = dict(gv["params"], fc=dict(gv["params"]["fc"], kernel=kernel[:Z]))
  silent_params = dict(gv["params"], fc=dict(gv["params"]["fc"],
                                             kernel=kernel.at[Z:].set(0.0)))
  np.testing.assert_allclose(g.apply({"params": silent_params}, z, s),
                             plain.apply({"params": plain_params}, z, s),
                             rtol=1e-6, atol=1e-6)


def _gan_of_tiny_config(**model_settings):
  """The GanModels that run.build_gan makes of configs/tiny.py with these model.* values."""
  from configs import tiny  # pylint: disable=g-import-not-at-top
  from jaxgan import data, run as run_lib, text  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  config.model.update(model_settings)
  source = data.build_source(config)
  tokenizer = text.build_tokenizer(config.text, data.vocabulary_captions(source, 50))
  return run_lib.build_gan(config, tokenizer)[0]


def test_with_coordinates_appends_pixel_centre_rows_and_columns():
  x = jnp.ones((2, 4, 8, 3), jnp.bfloat16)
  out = dfgan.with_coordinates(x)
  assert out.shape == (2, 4, 8, 5) and out.dtype == jnp.bfloat16
  np.testing.assert_array_equal(out[..., :3], x)
  rows, cols = np.asarray(out[0, :, 0, 3], np.float32), np.asarray(out[0, 0, :, 4], np.float32)
  np.testing.assert_array_equal(rows, [-0.75, -0.25, 0.25, 0.75])
  np.testing.assert_array_equal(cols, np.linspace(-7 / 8, 7 / 8, 8))
  # Rows vary down the image only, columns across it only.
  np.testing.assert_array_equal(out[1, :, 5, 3], out[1, :, 0, 3])
  np.testing.assert_array_equal(out[1, 2, :, 4], out[1, 0, :, 4])
  # At 256 px in bf16 every column still has its own coordinate.
  wide = dfgan.with_coordinates(jnp.zeros((1, 1, 256, 1), jnp.bfloat16))
  assert len(np.unique(np.asarray(wide[0, 0, :, 2], np.float32))) == 256


def test_coordinates_are_all_they_add_to_dfgan_generator():
  z, s, _ = _inputs(16)
  g = Generator(nf=4, image_size=16, coordinates=True)
  plain = Generator(nf=4, image_size=16)
  params = jax.jit(g.init)(jax.random.key(0), z, s)["params"]
  plain_params = jax.jit(plain.init)(jax.random.key(1), z, s)["params"]
  # Each fusion has two more channels, and the convolution after it two more
  # input rows; the shortcut does not read them.
  block = params["block_0"]
  assert block["conv1"]["kernel"].shape == (3, 3, 16 + 2, 8)
  assert block["conv2"]["kernel"].shape == (3, 3, 8 + 2, 8)
  assert block["fuse1"]["affine0"]["gamma_fc2"]["kernel"].shape == (16 + 2, 16 + 2)
  assert block["shortcut"]["kernel"].shape == (1, 1, 16, 8)
  # DF-GAN's params padded with zeros (the coordinates' hidden units, affines
  # and kernel rows) give DF-GAN's images.
  padded = jax.tree.map(
      lambda p, c: jnp.pad(p, [(0, n - m) for m, n in zip(p.shape, c.shape)]),
      plain_params, params)
  np.testing.assert_allclose(g.apply({"params": padded}, z, s),
                             plain.apply({"params": plain_params}, z, s),
                             rtol=1e-6, atol=1e-6)
  # From G's own initialisation (the affines the identity) they are read:
  # without the last convolution's coordinate rows the image changes.
  kernel = params["block_1"]["conv2"]["kernel"]
  blind = dict(params, block_1=dict(params["block_1"], conv2=dict(
      params["block_1"]["conv2"], kernel=kernel.at[:, :, -2:].set(0.0))))
  assert not np.allclose(g.apply({"params": blind}, z, s), g.apply({"params": params}, z, s),
                         atol=1e-4)


def _words(seed=1, length=5, dim=12):
  words = jax.random.normal(jax.random.key(seed), (B, length, dim))
  mask = jnp.arange(length)[None, :] < jnp.array([length, 2] * (B // 2))[:, None]
  return words, mask


def _randomised(params, seed=3):
  """``params`` with every leaf redrawn, so no zero-initialised path stays closed."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(treedef, [0.3 * jax.random.normal(k, x.shape, x.dtype)
                                      for k, x in zip(keys, leaves)])


def test_word_attention_starts_as_the_generator_without_it():
  z, s, _ = _inputs(16)
  words, mask = _words()
  g = Generator(nf=4, image_size=16, coordinates=True, word_attention=8)
  params = jax.jit(g.init)(jax.random.key(0), z, s, words=words, word_mask=mask)["params"]
  block = params["block_1"]["words"]
  assert block["query"]["kernel"].shape == (8 + 2, 8)  # the fused features (+ coordinates)
  assert block["key"]["kernel"].shape == (12, 8)
  assert block["gamma"]["kernel"].shape == (8, 8 + 2)
  # gamma and beta start at zero: the image is the generator's without it.
  plain = Generator(nf=4, image_size=16, coordinates=True)
  plain_params = {name: {k: v for k, v in p.items() if k != "words"} if "words" in p else p
                  for name, p in params.items()}
  np.testing.assert_allclose(g.apply({"params": params}, z, s, words=words, word_mask=mask),
                             plain.apply({"params": plain_params}, z, s), rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match="needs the caption's words"):
    g.apply({"params": params}, z, s)


def test_word_attention_reads_the_words_but_not_the_padding():
  z, s, _ = _inputs(16)
  words, mask = _words()
  g = Generator(nf=4, image_size=16, word_attention=8)
  params = _randomised(jax.jit(g.init)(jax.random.key(0), z, s, words=words,
                                       word_mask=mask)["params"])
  generate = jax.jit(lambda w, m: g.apply({"params": params}, z, s, words=w, word_mask=m))
  images = generate(words, mask)
  # Padding (every odd example has 2 words) may hold anything.
  noisy_padding = jnp.where(mask[..., None], words, 100.0)
  np.testing.assert_allclose(generate(noisy_padding, mask), images, rtol=1e-5, atol=1e-5)
  # A word that is read changes its example's image, and no other's.
  changed = generate(words.at[1, 0].add(1.0), mask)
  differs = np.abs(np.asarray(changed - images)).max(axis=(1, 2, 3)) > 1e-4
  assert differs.tolist() == [False, True] + [False] * (B - 2)


def test_word_modulation_scales_and_shifts_each_pixel_by_its_own_words():
  # Two words, and queries that pick word 0 at one pixel and word 1 at
  # another: each pixel is modulated by its own word's value.
  module = dfgan.WordModulation(features=1, dim=1)
  x = jnp.array([1.0, -1.0]).reshape(1, 1, 2, 1)           # two pixels, one channel
  words = jnp.array([[[1.0], [-1.0]]])                      # two words, one number each
  mask = jnp.array([[True, True]])
  params = {"query": {"kernel": jnp.array([[50.0]])}, "key": {"kernel": jnp.array([[1.0]])},
            "value": {"kernel": jnp.array([[1.0]]), "bias": jnp.zeros(1)},
            "gamma": {"kernel": jnp.array([[0.5]]), "bias": jnp.zeros(1)},
            "beta": {"kernel": jnp.array([[2.0]]), "bias": jnp.zeros(1)}}
  out = module.apply({"params": params}, x, words, mask)
  # pixel 0 (x=1) attends word 0 (value 1): 1 * 1.5 + 2; pixel 1 (x=-1)
  # attends word 1 (value -1): -1 * 0.5 - 2.
  np.testing.assert_allclose(np.asarray(out).ravel(), [3.5, -2.5], atol=1e-5)


@pytest.mark.slow
def test_word_attention_is_a_no_op_at_init_through_a_train_step():
  """A word-attending G starts as the G without it, through a whole step: the
  same images, so D and the text encoder take the same update and G's shared
  params too; only its word modulation moves off zero."""
  from configs import tiny  # pylint: disable=g-import-not-at-top
  from jaxgan import config as config_lib  # pylint: disable=g-import-not-at-top
  from jaxgan.train.state import init_state  # pylint: disable=g-import-not-at-top
  from jaxgan.train.step import make_train_step  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  config.batch_size = 2
  config.model.word_attention = 8
  config_lib.validate(config)
  words_gan = _gan_of_tiny_config(word_attention=8)
  plain_gan = _gan_of_tiny_config(word_attention=0)
  assert words_gan.generator_reads_words and not plain_gan.generator_reads_words
  state = init_state(words_gan, config, jax.random.key(0))
  drop = lambda g: {k: {n: p for n, p in v.items() if n != "words"} for k, v in g.items()}
  plain_state = init_state(plain_gan, config, jax.random.key(0))
  plain_state = plain_state.replace(
      generator=drop(state.generator), generator_ema=drop(state.generator_ema),
      discriminator=state.discriminator, text_encoder=state.text_encoder,
      g_opt_state=plain_state.g_opt_state)
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8),
           "ids": np.array([[2, 3, 4, 0], [5, 6, 0, 0]], np.int32),
           "mask": np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)}
  batch["ids"] = np.pad(batch["ids"], ((0, 0), (0, config.text.max_length - 4)))
  batch["mask"] = np.pad(batch["mask"], ((0, 0), (0, config.text.max_length - 4)))
  new, _ = jax.jit(make_train_step(words_gan, config, jax.random.key(1)))(state, batch)
  plain_new, _ = jax.jit(make_train_step(plain_gan, config, jax.random.key(1)))(
      plain_state, batch)
  close = lambda a, b: jax.tree.map(
      lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), a, b)
  close(new.discriminator, plain_new.discriminator)
  close(new.text_encoder, plain_new.text_encoder)
  close(drop(new.generator), plain_new.generator)
  moved = new.generator["block_1"]["words"]["gamma"]["kernel"]
  assert np.abs(np.asarray(moved)).max() > 0


def test_coordinates_need_dfgan_and_a_runs_config_reaches_them():
  with pytest.raises(ValueError, match="coordinates must be False"):
    build_models("mlp", 16, coordinates=True)
  with pytest.raises(ValueError, match="word_attention must be 0"):
    build_models("mlp", 16, word_attention=8)
  assert _gan_of_tiny_config(coordinates=True).generator.coordinates
  assert not _gan_of_tiny_config(coordinates=False).generator.coordinates


def test_text_stem_needs_dfgan():
  with pytest.raises(ValueError, match="text_stem must be False"):
    build_models("mlp", 16, text_stem=True)


def test_discriminator_is_shortcut_only_at_init(dfgan16):
  _, d, _, dv = dfgan16
  _, s, x = _inputs(16)
  gammas = [dv["params"][f"blocks_{i}"]["gamma"] for i in range(2)]
  assert all(gm.shape == () and gm == 0 for gm in gammas)
  logits = d.apply(dv, x, s)
  # With zero gains the residual convolutions cannot affect the output.
  moved = _perturb(dv, jax.random.key(6), "'conv1'")
  moved = _perturb(moved, jax.random.key(7), "'conv2'")
  np.testing.assert_array_equal(d.apply(moved, x, s), logits)
  opened = jax.tree_util.tree_map_with_path(
      lambda p, a: a + 0.5 if "gamma" in jax.tree_util.keystr(p) else a, dv)
  assert not np.allclose(d.apply(opened, x, s), logits, atol=1e-5)


def test_residual_init_starts_d_with_its_nonlinear_branches_open():
  _, s, x = _inputs(16)
  d = Discriminator(nf=4, image_size=16, residual_init=1.0)
  dv = jax.jit(d.init)(jax.random.key(1), x, s)
  gammas = [dv["params"][f"blocks_{i}"]["gamma"] for i in range(2)]
  assert all(gm.shape == () and gm == 1.0 for gm in gammas)
  # The same params but the gammas are DF-GAN's D (the init key draws the
  # same weights), and the residual convolutions now change the output.
  plain = Discriminator(nf=4, image_size=16)
  closed = jax.tree_util.tree_map_with_path(
      lambda p, a: a * 0 if "gamma" in jax.tree_util.keystr(p) else a, dv)
  np.testing.assert_array_equal(d.apply(closed, x, s),
                                plain.apply(jax.jit(plain.init)(jax.random.key(1), x, s), x, s))
  moved = _perturb(dv, jax.random.key(6), "'conv1'")
  assert not np.allclose(d.apply(moved, x, s), d.apply(dv, x, s), atol=1e-5)
  with pytest.raises(ValueError, match="d_residual_init must be 0"):
    build_models("mlp", 16, d_residual_init=1.0)
  assert build_models("dfgan", 16, nf=4, d_residual_init=0.5)[1].residual_init == 0.5
  with pytest.raises(ValueError, match="d_nf must be 0"):
    build_models("mlp", 16, d_nf=8)
  generator, discriminator = build_models("dfgan", 16, nf=4, d_nf=8)
  assert (generator.nf, discriminator.nf) == (4, 8)
  assert build_models("dfgan", 16, nf=4)[1].nf == 4
  # And a run's config reaches it.
  assert _gan_of_tiny_config(d_residual_init=0.5).discriminator.residual_init == 0.5


def test_discriminator_features_logits_compose_and_use_text(dfgan16):
  _, d, _, dv = dfgan16
  _, s, x = _inputs(16)
  _, s2, _ = _inputs(16, seed=1)
  feats = d.apply(dv, x, method=d.features)
  np.testing.assert_allclose(d.apply(dv, feats, s, method=d.logits),
                             d.apply(dv, x, s), rtol=1e-6, atol=1e-6)
  assert not np.allclose(d.apply(dv, feats, s2, method=d.logits),
                         d.apply(dv, x, s), atol=1e-5)


def test_mlp_shapes_and_batch_stats():
  size = 8
  z, s, x = _inputs(size)
  g, d = build_models("mlp", size, nf=8)
  assert isinstance(g, MLPGenerator) and isinstance(d, MLPDiscriminator)
  # Narrow hidden layers keep the test fast.
  g = g.clone(hidden=(16, 32))
  gv = g.init(jax.random.key(0), z, s)
  assert set(gv) == {"params", "batch_stats"}
  assert set(gv["params"]) == {"dense_0", "bn_0", "dense_1", "bn_1", "out"}
  img, upd = g.apply(gv, z, s, train=True, mutable=["batch_stats"])
  assert img.shape == (B, size, size, 3) and img.dtype == jnp.float32
  assert np.all(np.abs(img) <= 1.0)
  for old, new in zip(jax.tree.leaves(gv["batch_stats"]),
                      jax.tree.leaves(upd["batch_stats"])):
    assert old.shape == new.shape and not np.allclose(old, new)
  # Eval mode reads the running averages and needs no mutable collection.
  out = g.apply({"params": gv["params"], **upd}, z, s)
  assert out.shape == (B, size, size, 3)

  dv = d.init(jax.random.key(1), x, s)
  assert set(dv["params"]) == {"out"}
  assert dv["params"]["out"]["kernel"].shape == (size * size * 3 + DS, 1)
  feats = d.apply(dv, x, method=d.features)
  assert feats.shape == (B, size * size * 3)
  logits = d.apply(dv, x, s)
  assert logits.shape == (B,) and logits.dtype == jnp.float32
  np.testing.assert_allclose(d.apply(dv, feats, s, method=d.logits), logits,
                             rtol=1e-6)
  # Linear: the logit is exactly <w, [x, s]> + b.
  k, b = dv["params"]["out"]["kernel"], dv["params"]["out"]["bias"]
  want = jnp.concatenate([x.reshape(B, -1), s], -1) @ k[:, 0] + b[0]
  np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="shape"):
    d.apply(dv, jnp.zeros((B, 4, 4, 3)), s)


def test_mlp_bf16_params_and_float32_outputs():
  z, s, x = _inputs(8)
  g = MLPGenerator(image_size=8, hidden=(16,), dtype=jnp.bfloat16,
                   param_dtype=jnp.bfloat16)
  d = MLPDiscriminator(image_size=8, dtype=jnp.bfloat16,
                       param_dtype=jnp.bfloat16)
  gv = jax.eval_shape(g.init, jax.random.key(0), z, s)
  dv = jax.eval_shape(d.init, jax.random.key(0), x, s)
  assert all(a.dtype == jnp.bfloat16 for a in jax.tree.leaves(gv["params"]))
  assert all(a.dtype == jnp.bfloat16 for a in jax.tree.leaves(dv))
  assert jax.eval_shape(g.apply, gv, z, s).dtype == jnp.float32
  assert jax.eval_shape(d.apply, dv, x, s).dtype == jnp.float32


def test_downsample_is_the_strided_convolution_to_second_order():
  """D's 4x4 stride-2 layer: nn.Conv's params, init, values and gradients.

  The MA-GP differentiates D's input gradient again, so second-order
  derivatives are compared too; and both branches (the CPU matmul and the
  convolution other platforms run) against each other.
  """
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 5))
  reference = nn.Conv(7, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))
  layer = Downsample4x4(7)
  params = reference.init(jax.random.key(1), x)["params"]
  fresh = layer.init(jax.random.key(1), x)["params"]
  for name in ("kernel", "bias"):
    np.testing.assert_array_equal(fresh[name], params[name])
  params = _perturb(params, jax.random.key(2), "", scale=0.1)  # a bias that is not 0

  def objective(module):
    def value(p, images):
      input_grad = jax.grad(lambda v: jnp.sum(jnp.tanh(module.apply({"params": p}, v))))(images)
      return jnp.sum(input_grad ** 2) + jnp.sum(jnp.sin(module.apply({"params": p}, images)))
    return value

  np.testing.assert_allclose(layer.apply({"params": params}, x),
                             reference.apply({"params": params}, x), atol=2e-6)
  np.testing.assert_allclose(dfgan._downsample_matmul(x, params["kernel"]),  # pylint: disable=protected-access
                             dfgan._downsample_conv(x, params["kernel"]), atol=2e-6)  # pylint: disable=protected-access
  got = jax.grad(objective(layer), argnums=(0, 1))(params, x)
  want = jax.grad(objective(reference), argnums=(0, 1))(params, x)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(w))))
  with pytest.raises(ValueError, match="even height and width"):
    layer.init(jax.random.key(1), jnp.zeros((1, 5, 5, 2)))


class _ReferenceBlock(nn.Module):
  """The fields of dfgan's blocks, which the Generator and Discriminator pass."""

  in_features: int
  out_features: int
  dtype: object = jnp.float32
  param_dtype: object = jnp.float32


class _DFGANGeneratorBlock(_ReferenceBlock):
  """DF-GAN's generator block as the paper writes it: upsample, then layers.

  With ``coordinates`` (not DF-GAN's), the first fusion reads the small
  image's coordinates upsampled with it, the second the output pixels' own.
  """

  coordinates: bool = False
  word_attention: int = 0

  @nn.compact
  def __call__(self, x, cond, words=None, word_mask=None):
    upsample = dfgan._upsample2x  # pylint: disable=protected-access
    shortcut = upsample(x)
    if self.in_features != self.out_features:
      shortcut = nn.Conv(self.out_features, (1, 1), name="shortcut")(shortcut)
    extra = 2 if self.coordinates else 0
    if self.coordinates:
      x = dfgan.with_coordinates(x)
    h = dfgan.DeepFusion(self.in_features + extra, name="fuse1")(upsample(x), cond)
    if self.word_attention:  # per pixel: after the upsampling here
      h = dfgan.WordModulation(self.in_features + extra, self.word_attention,
                               name="words")(h, words, word_mask)
    h = nn.Conv(self.out_features, (3, 3), name="conv1")(h)
    if self.coordinates:
      h = dfgan.with_coordinates(h)
    h = dfgan.DeepFusion(self.out_features + extra, name="fuse2")(h, cond)
    h = nn.Conv(self.out_features, (3, 3), name="conv2")(h)
    return shortcut + h


class _DFGANDiscriminatorBlock(_ReferenceBlock):
  """DF-GAN's discriminator block as the paper writes it: shortcut, then pool."""

  residual_init: float = 0.0  # passed by the Discriminator; the params are given

  @nn.compact
  def __call__(self, x):
    h = nn.leaky_relu(Downsample4x4(self.out_features, name="conv1")(x), 0.2)
    h = nn.leaky_relu(nn.Conv(self.out_features, (3, 3), name="conv2")(h), 0.2)
    s = x
    if self.in_features != self.out_features:
      s = nn.Conv(self.out_features, (1, 1), name="shortcut")(s)
    s = nn.avg_pool(s, (2, 2), strides=(2, 2))
    return s + self.param("gamma", nn.initializers.zeros, ()) * h


def test_upsample_conv_is_the_convolution_of_the_upsampled_image():
  """UpsampleConv3x3: nn.Conv's params and init; values and gradients of
  nn.Conv on the 2x nearest upsampling, odd sizes and borders included."""
  x = jax.random.normal(jax.random.key(0), (2, 5, 6, 3))
  reference = nn.Conv(4, (3, 3))
  layer = dfgan.UpsampleConv3x3(4)
  upsampled = dfgan._upsample2x(x)  # pylint: disable=protected-access
  params = reference.init(jax.random.key(1), upsampled)["params"]
  fresh = layer.init(jax.random.key(1), x)["params"]
  for name in ("kernel", "bias"):
    np.testing.assert_array_equal(fresh[name], params[name])
  params = _perturb(params, jax.random.key(2), "", scale=0.1)
  got = layer.apply({"params": params}, x)
  assert got.shape == (2, 10, 12, 4)
  np.testing.assert_allclose(got, reference.apply({"params": params}, upsampled), atol=3e-6)

  def objective(apply):
    return lambda p, v: jnp.sum(jnp.sin(apply(p, v)))
  got = jax.grad(objective(lambda p, v: layer.apply({"params": p}, v)), (0, 1))(params, x)
  want = jax.grad(objective(lambda p, v: reference.apply(
      {"params": p}, dfgan._upsample2x(v))), (0, 1))(params, x)  # pylint: disable=protected-access
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(w))))


@pytest.mark.slow  # the blocks alone are compared in the default stage (below)
@pytest.mark.parametrize("size,nf,coordinates,word_attention", [
    (16, 8, False, 0), (32, 4, False, 0), (16, 8, True, 0), (16, 8, True, 8)])
def test_blocks_compute_dfgans_functions(monkeypatch, size, nf, coordinates, word_attention):
  """G and D with their reordered blocks (layers that commute with resampling
  run on the small image) against the blocks as DF-GAN writes them, with the
  same params: outputs, params' gradients, and D's second order (the MA-GP)."""
  z, s, x = _inputs(size)
  words = dict(zip(("words", "word_mask"), _words())) if word_attention else {}
  g = Generator(nf=nf, image_size=size, coordinates=coordinates,
                word_attention=word_attention)
  d = Discriminator(nf=nf, image_size=size)
  gp = _perturb(g.init(jax.random.key(1), z, s, **words)["params"], jax.random.key(2), "fc2",
                0.3)
  # The word modulation's gamma and beta start at zero: perturbed, it counts.
  gp = _perturb(gp, jax.random.key(5), "'words'", 0.1)
  dp = _perturb(d.init(jax.random.key(3), x, s)["params"], jax.random.key(4), "gamma", 0.5)

  def g_loss(p):
    return jnp.sum(jnp.sin(3 * g.apply({"params": p}, z, s, **words)))

  def d_loss(p):  # an MA-GP-like objective: D's input gradient, differentiated again
    grad = jax.grad(lambda v: jnp.sum(d.apply({"params": p}, v, s)))(x)
    return jnp.sum(grad ** 2) + jnp.sum(d.apply({"params": p}, x, s))

  ours = (g.apply({"params": gp}, z, s, **words), d.apply({"params": dp}, x, s),
          jax.grad(g_loss)(gp), jax.grad(d_loss)(dp))
  fresh = (g.init(jax.random.key(1), z, s, **words), d.init(jax.random.key(3), x, s))
  monkeypatch.setattr(dfgan, "GeneratorBlock", _DFGANGeneratorBlock)
  monkeypatch.setattr(dfgan, "DiscriminatorBlock", _DFGANDiscriminatorBlock)
  # The same param tree and initial values: checkpoints carry over.
  jax.tree.map(np.testing.assert_array_equal, fresh,
               (g.init(jax.random.key(1), z, s, **words), d.init(jax.random.key(3), x, s)))
  theirs = (g.apply({"params": gp}, z, s, **words), d.apply({"params": dp}, x, s),
            jax.grad(g_loss)(gp), jax.grad(d_loss)(dp))
  # The reference really is another computation (not the same code twice).
  assert not np.array_equal(ours[0], theirs[0])
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * float(jnp.max(jnp.abs(b))))


@pytest.mark.parametrize("cin,cout,coordinates", [(8, 8, False), (8, 4, False),
                                                 (8, 4, True)])
def test_blocks_alone_compute_dfgans_functions(cin, cout, coordinates):
  """G's and D's blocks against DF-GAN's order: with an identity shortcut (the
  widest levels) and with a 1x1 one, G with and without coordinates; params,
  init, values and gradients."""
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, cin))
  cond = jax.random.normal(jax.random.key(1), (2, 6))
  for ours, theirs, args in (
      (dfgan.GeneratorBlock(cin, cout, coordinates=coordinates),
       _DFGANGeneratorBlock(cin, cout, coordinates=coordinates), (x, cond)),
      (dfgan.DiscriminatorBlock(cin, cout), _DFGANDiscriminatorBlock(cin, cout), (x,))):
    params = ours.init(jax.random.key(2), *args)["params"]
    jax.tree.map(np.testing.assert_array_equal, params,
                 theirs.init(jax.random.key(2), *args)["params"])
    params = _perturb(params, jax.random.key(3), "", scale=0.3)
    loss = lambda module, p, v: jnp.sum(jnp.sin(module.apply({"params": p}, v, *args[1:])))  # noqa: E731
    got = (ours.apply({"params": params}, *args), jax.grad(loss, (1, 2))(ours, params, x))
    want = (theirs.apply({"params": params}, *args), jax.grad(loss, (1, 2))(theirs, params, x))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * float(jnp.max(jnp.abs(b))))
