"""export.py: the exported model gives the run's images, through load_pipeline and
through the deserialised StableHLO function alone."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import export as export_cli
from jaxgan import export, sampling

PROMPTS = ["a small red circle in the top left", "a blue square", "a green star"]


@pytest.fixture(scope="module")
def run(tiny_run):
  """The shared 4-step tiny run (conftest.py)."""
  return tiny_run


@pytest.fixture(scope="module")
def model(run, tmp_path_factory):
  out = str(tmp_path_factory.mktemp("exported") / "model")
  assert export_cli.main(["--workdir", run, "--out", out]) == 0
  return out


def test_writes_a_self_describing_directory(model):
  assert sorted(os.listdir(model)) == sorted([
      "config.json", "tokenizer.json", "params.msgpack", "generate.stablehlo",
      "export.json"])
  with open(os.path.join(model, "export.json")) as f:
    manifest = json.load(f)
  assert manifest["step"] == 4 and manifest["frozen_text"] is None


def test_load_pipeline_gives_the_runs_images(run, model):
  from_run = sampling.load_pipeline(run, devices=jax.devices()[:1])
  exported = sampling.load_pipeline(model, devices=jax.devices()[:1])
  assert exported.step == from_run.step == 4
  np.testing.assert_array_equal(exported.generate(PROMPTS, 2, seed=4),
                                from_run.generate(PROMPTS, 2, seed=4))
  # Ranking candidates needs D, which the export leaves out: said before generating.
  with pytest.raises(ValueError, match="discriminator.*exported"):
    exported.generate(PROMPTS, best_of=2, rank_by="match")


def test_stablehlo_function_gives_the_runs_images(run, model):
  pipe = sampling.load_pipeline(run, devices=jax.devices()[:1])
  expected = pipe.generate(PROMPTS, 1, seed=7)
  ids, mask = pipe.tokenize(PROMPTS)
  z = pipe.noise(PROMPTS, 1, seed=7)
  function = export.load_function(model)
  # Symbolic batch: one serialisation serves any batch size.
  for rows in (3, 1):
    images = np.asarray(function.call(ids[:rows], mask[:rows], z[:rows]))
    np.testing.assert_allclose(images, expected[:rows], atol=1e-5)


def test_stablehlo_runs_without_jaxgan(model, tmp_path):
  """A fresh interpreter with JAX only: jaxgan is not even importable."""
  code = (
      "import sys, jax, numpy as np\n"
      "sys.path = [p for p in sys.path if p not in ('', '.')]\n"
      "exported = jax.export.deserialize(bytearray(open(sys.argv[1], 'rb').read()))\n"
      "ids = np.ones((2, 32), np.int32); mask = np.ones((2, 32), bool)\n"
      "z = np.zeros((2, 16), np.float32)\n"
      "images = np.asarray(exported.call(ids, mask, z))\n"
      "assert 'jaxgan' not in sys.modules\n"
      "print(images.shape)\n")
  out = subprocess.run([sys.executable, "-c", code, os.path.join(model, "generate.stablehlo")],
                       capture_output=True, text=True, cwd=str(tmp_path),
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip() == "(2, 16, 16, 3)"


def test_bad_input_is_one_line(run, model, tmp_path, capsys):
  cases = [
      (["--workdir", str(tmp_path / "nope"), "--out", str(tmp_path / "a")], "nope"),
      (["--workdir", run, "--out", model], "not empty"),
  ]
  empty_run = tmp_path / "empty_run"
  empty_run.mkdir()
  (empty_run / "config.json").write_text(open(os.path.join(run, "config.json")).read())
  (empty_run / "tokenizer.json").write_text(open(os.path.join(run, "tokenizer.json")).read())
  cases.append((["--workdir", str(empty_run), "--out", str(tmp_path / "b")], "no checkpoint"))
  before = sorted(os.listdir(model))
  for argv, needle in cases:
    assert export_cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("export.py: error:"), err
    assert needle in err
  assert sorted(os.listdir(model)) == before
  assert not os.path.exists(tmp_path / "a") and not os.path.exists(tmp_path / "b")


@pytest.mark.slow
def test_a_word_attention_run_trains_samples_and_exports(tmp_path):
  """G reads the caption's token states: the run trains, its pipeline and its
  exported function give the same images, and its interpolation walks between
  two seeds of one prompt but refuses two prompts (words do not blend)."""
  from configs import tiny  # pylint: disable=g-import-not-at-top
  from jaxgan.train import train_and_evaluate  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  config.model.word_attention = 8
  config.num_steps = 2
  config.checkpoint_every = 2
  config.sample_every = 2
  run = str(tmp_path / "run")
  train_and_evaluate(config, run, devices=jax.devices()[:1])
  pipe = sampling.load_pipeline(run, devices=jax.devices()[:1])
  assert pipe.models.generator_reads_words
  params = pipe.params["generator_ema"]
  assert {"query", "key", "value", "gamma", "beta"} <= set(params["block_0"]["words"])
  images = pipe.generate(PROMPTS, 1, seed=3)
  assert images.shape == (3, 16, 16, 3) and np.all(np.isfinite(images))
  out = str(tmp_path / "model")
  assert export_cli.main(["--workdir", run, "--out", out]) == 0
  ids, mask = pipe.tokenize(PROMPTS)
  z = pipe.noise(PROMPTS, 1, seed=3)
  function = export.load_function(out)
  np.testing.assert_allclose(np.asarray(function.call(ids, mask, z)),
                             images, atol=1e-5)
  with pytest.raises(ValueError, match="do not blend between two prompts"):
    pipe.interpolate(PROMPTS[0], PROMPTS[1])
  # Between two seeds of one prompt only the noise moves: the ends are that
  # prompt's images of the two seeds.
  frames = pipe.interpolate(PROMPTS[0], steps=3, seed=3, seed_b=5)
  ends = [sampling.postprocess_lib.denormalize(pipe.generate(PROMPTS[:1], seed=s))[0]
          for s in (3, 5)]
  for frame, end in zip(frames[::2], ends):
    assert np.abs(frame.astype(int) - end).max() <= 1
