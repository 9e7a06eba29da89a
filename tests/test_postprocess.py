"""Tests for jaxgan.postprocess: each step on known inputs, and the chain."""

import numpy as np
import pytest

from jaxgan import images
from jaxgan import postprocess as pp


def _ramp(n=1, h=10, w=10):
  """Channel c of every image holds 0..99 / 99 scaled into [0.2, 0.6]."""
  values = np.linspace(0.2, 0.6, h * w, dtype=np.float32).reshape(h, w, 1)
  return np.broadcast_to(values, (n, h, w, 3)).copy()


def test_denormalize_uses_to_uint8():
  x = np.array([[-1.0, 0.0, 1.0]], np.float32)
  np.testing.assert_array_equal(pp.denormalize(x), images.to_uint8(x))


def test_auto_levels_maps_percentiles_to_0_and_1():
  x = _ramp()
  y = pp.auto_levels(x, low_pct=0, high_pct=100)
  assert y.min() == 0.0 and y.max() == 1.0
  np.testing.assert_allclose(y[0, :, :, 0].ravel(), np.linspace(0, 1, 100),
                             atol=1e-6)
  # With 10 / 90: values below the 10th percentile clip to 0, above 90th to 1.
  y = pp.auto_levels(x, low_pct=10, high_pct=90)
  lo, hi = np.percentile(x[0, :, :, 0], [10, 90])
  flat = y[0, :, :, 0].ravel()
  src = x[0, :, :, 0].ravel()
  assert (flat[src <= lo] == 0).all() and (flat[src >= hi] == 1).all()
  np.testing.assert_allclose(flat[50], (src[50] - lo) / (hi - lo), rtol=1e-5)


def test_auto_levels_flat_channel_stays_finite_and_per_image():
  x = _ramp(n=2)
  x[0, :, :, 1] = 0.3  # A flat channel.
  x[1] *= 0.5  # A different range in the second image.
  y = pp.auto_levels(x, 0, 100)
  assert np.isfinite(y).all()
  np.testing.assert_allclose(y[0, :, :, 1], 0.3)
  # Each image is stretched on its own, so both reach [0, 1].
  np.testing.assert_allclose(y[1].min(), 0.0)
  np.testing.assert_allclose(y[1].max(), 1.0)
  # [H, W, 3] in, [H, W, 3] out.
  assert pp.auto_levels(x[0]).shape == (10, 10, 3)


def test_grey_world_equalises_channel_means():
  rng = np.random.default_rng(0)
  x = rng.uniform(0.1, 0.4, (2, 8, 8, 3)).astype(np.float32)
  x[..., 0] *= 1.5  # A red cast, kept below 1 so nothing clips.
  x[..., 2] *= 0.6
  y = pp.grey_world(x)
  means = y.mean(axis=(1, 2))
  np.testing.assert_allclose(means, np.repeat(means[:, :1], 3, axis=1),
                             rtol=1e-5)
  np.testing.assert_allclose(means.mean(axis=-1), x.mean(axis=(1, 2, 3)),
                             rtol=1e-5)
  assert y.min() >= 0 and y.max() <= 1
  # A black channel cannot be scaled and must not produce NaN.
  x[..., 1] = 0
  assert np.isfinite(pp.grey_world(x)).all()


def test_denoise_smooths_flat_regions_and_keeps_edges():
  rng = np.random.default_rng(0)
  clean = np.full((1, 32, 32, 3), 0.2, np.float32)
  clean[:, :, 16:] = 0.8
  noisy = np.clip(clean + rng.normal(0, 0.04, clean.shape), 0, 1).astype(
      np.float32)
  out = pp.denoise(noisy, radius=2, sigma_space=1.5, sigma_color=0.1)
  assert out.shape == noisy.shape and out.dtype == np.float32
  # Flat region away from the edge: noise std goes down clearly.
  region = (slice(None), slice(4, 28), slice(2, 12))
  assert out[region].std() < 0.5 * noisy[region].std()
  # The step is still a step: the columns next to it keep their levels.
  np.testing.assert_allclose(out[0, :, 15].mean(), 0.2, atol=0.02)
  np.testing.assert_allclose(out[0, :, 16].mean(), 0.8, atol=0.02)
  # A clean edge passes through unchanged.
  np.testing.assert_allclose(pp.denoise(clean), clean, atol=1e-6)


def test_resize_sizes_and_constant_stays_constant():
  x = np.full((2, 8, 12, 3), 0.37, np.float32)
  up = pp.resize(x, scale=2)
  assert up.shape == (2, 16, 24, 3) and up.dtype == np.float32
  np.testing.assert_allclose(up, 0.37, atol=1e-5)
  down = pp.resize(x, scale=0.5)
  assert down.shape == (2, 4, 6, 3)
  np.testing.assert_allclose(down, 0.37, atol=1e-5)
  assert pp.resize(x[0], size=(5, 7)).shape == (5, 7, 3)
  with pytest.raises(ValueError):
    pp.resize(x)
  with pytest.raises(ValueError):
    pp.resize(x, scale=2, size=(4, 4))


def test_resize_keeps_content():
  # A left/right split stays a left/right split after a Lanczos upscale.
  x = np.zeros((1, 8, 8, 3), np.float32)
  x[:, :, 4:] = 1.0
  up = pp.resize(x, scale=2)
  assert up.min() >= 0 and up.max() <= 1
  # Lanczos-3 reaches 3 input pixels (6 output pixels) from the edge.
  np.testing.assert_allclose(up[0, :, :2], 0.0, atol=1e-5)
  np.testing.assert_allclose(up[0, :, 14:], 1.0, atol=1e-5)
  assert (up[0, :, 7] < 0.5).all() and (up[0, :, 8] > 0.5).all()


def test_linear_colour_identity_and_known_matrix():
  rng = np.random.default_rng(0)
  x = rng.uniform(0, 1, (2, 4, 4, 3)).astype(np.float32)
  np.testing.assert_allclose(pp.linear_colour(x, np.eye(3), np.zeros(3)), x,
                             atol=1e-6)
  # Swap red and blue, halve green, then offset; W acts on column vectors.
  w = np.array([[0, 0, 1], [0, 0.5, 0], [1, 0, 0]], np.float32)
  b = np.array([0.1, 0.0, -0.05], np.float32)
  pixel = np.array([0.2, 0.4, 0.6], np.float32)
  np.testing.assert_allclose(pp.linear_colour(pixel[None, None], w, b)[0, 0],
                             [0.7, 0.2, 0.15], atol=1e-6)
  # Results are clipped to [0, 1]; flat W is accepted row-major.
  y = pp.linear_colour(x, (2 * np.eye(3)).ravel(), [0.5, 0.5, 0.5])
  assert y.min() >= 0 and y.max() == 1.0
  with pytest.raises(ValueError):
    pp.linear_colour(x, np.eye(2))


def test_steps_are_pure():
  x = _ramp()
  before = x.copy()
  for name in ("auto_levels", "grey_world", "denoise"):
    pp.STEPS[name](x)
  pp.resize(x, scale=2)
  pp.linear_colour(x, np.eye(3))
  np.testing.assert_array_equal(x, before)


def test_default_chain_is_denormalisation():
  rng = np.random.default_rng(0)
  x = rng.uniform(-1.2, 1.2, (2, 4, 4, 3)).astype(np.float32)
  for spec in (None, [], ""):
    chain = pp.build_postprocess(spec)
    np.testing.assert_array_equal(chain(x), images.to_uint8(x))


def test_chain_string_spec_runs_steps_in_order():
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (2, 6, 6, 3)).astype(np.float32)
  spec = ["auto_levels:0;100", "denoise:sigma_color=0.05", "resize:2",
          "linear:W=1,0,0,0,1,0,0,0,1;b=0,0,0"]
  chain = pp.build_postprocess(spec)
  assert [s.name for s in chain.steps] == ["auto_levels", "denoise", "resize",
                                           "linear"]
  assert chain.steps[0].params == {"low_pct": 0, "high_pct": 100}
  assert chain.steps[2].params == {"scale": 2}
  out = chain(x)
  assert out.shape == (2, 12, 12, 3) and out.dtype == np.uint8
  unit = (x + 1) / 2
  expected = pp.linear_colour(pp.resize(pp.denoise(
      pp.auto_levels(unit, 0, 100), sigma_color=0.05), scale=2), np.eye(3))
  np.testing.assert_array_equal(out, images.to_uint8(expected * 2 - 1))


def test_chain_dict_and_whitespace_specs_agree():
  rng = np.random.default_rng(1)
  x = rng.uniform(-1, 1, (1, 4, 6, 3)).astype(np.float32)
  a = pp.build_postprocess([{"name": "grey_world"},
                            {"name": "resize", "size": "8x9"}])
  b = pp.build_postprocess("grey_world resize:size=8x9")
  c = pp.build_postprocess([{"name": "grey_world"},
                            {"name": "resize", "size": (8, 9)}])
  assert a(x).shape == (1, 8, 9, 3)
  np.testing.assert_array_equal(a(x), b(x))
  np.testing.assert_array_equal(a(x), c(x))
  assert a.to_spec() == [{"name": "grey_world"},
                         {"name": "resize", "size": [8, 9]}]
  # to_spec round-trips through build_postprocess.
  np.testing.assert_array_equal(pp.build_postprocess(a.to_spec())(x), a(x))


def test_chain_maps_nan_to_black():
  x = np.full((1, 4, 4, 3), np.nan, np.float32)
  assert (pp.build_postprocess(["grey_world"])(x) == 0).all()


def test_unknown_step_lists_valid_names():
  with pytest.raises(ValueError, match="sharpen") as info:
    pp.build_postprocess(["auto_levels", "sharpen"])
  for name in pp.STEPS:
    assert name in str(info.value)


@pytest.mark.parametrize("spec, match", [
    (["denoise:radius=2;sigmaa=1"], "parameters are"),
    (["auto_levels:1;2;3"], "parameters are"),
    (["resize:scale=abc"], "cannot parse"),
    (["denoise:radius=1;2"], "bare value"),
    ([{"scale": 2}], "no 'name'"),
    ([3], "string or a dict"),
])
def test_bad_specs(spec, match):
  with pytest.raises(ValueError, match=match):
    pp.build_postprocess(spec)
