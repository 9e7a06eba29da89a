"""Sampling from a trained run: loading, determinism, prompts, errors, and sample.py."""

import json
import os
import shutil
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from orbax.checkpoint import type_handlers
from PIL import Image

import sample as sample_cli
from configs import tiny
from jaxgan import sampling
from jaxgan.train import checkpointing, train_and_evaluate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = ["a small red circle in the top left", "a blue square", "a green star"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """One tiny run on all 8 fake devices, with checkpoints at steps 2 and 4."""
  assert jax.device_count() == 8, "conftest sets 8 fake CPU devices"
  config = tiny.get_config()
  config.num_steps = 4
  config.checkpoint_every = 2
  config.sample_every = 4
  path = str(tmp_path_factory.mktemp("sampling") / "run")
  train_and_evaluate(config, path)
  return path


@pytest.fixture(scope="module")
def pipe(workdir):
  """Loaded on one device: unlike training, which used eight."""
  return sampling.load_pipeline(workdir, devices=jax.devices()[:1])


@pytest.fixture(scope="module")
def pipe8(workdir):
  return sampling.load_pipeline(workdir)


def _copy_run(workdir, destination, with_checkpoints=True):
  os.makedirs(destination)
  for name in ("config.json", "tokenizer.json"):
    shutil.copy(os.path.join(workdir, name), destination)
  if with_checkpoints:
    shutil.copytree(os.path.join(workdir, "checkpoints"),
                    os.path.join(destination, "checkpoints"))
  return destination


def test_restores_only_what_sampling_needs(workdir, monkeypatch):
  read = []
  original = type_handlers.ArrayHandler.deserialize

  async def spy(self, infos, args=None):
    read.extend(info.name for info in infos)
    return await original(self, infos, args)

  monkeypatch.setattr(type_handlers.ArrayHandler, "deserialize", spy)
  loaded = sampling.load_pipeline(workdir, devices=jax.devices()[:1])
  assert loaded.step == 4
  assert sorted(loaded.params) == sorted(sampling.RESTORED_KEYS + ("frozen_text",))
  # The optimizer states (and the raw generator, the step) were never read.
  assert read and {name.split(".")[0] for name in read} == {
      "generator_ema", "discriminator", "text_encoder"}

  monkeypatch.undo()
  manager = ocp.CheckpointManager(checkpointing.checkpoint_dir(workdir))
  full = manager.restore(4, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  manager.close()
  for key in sampling.RESTORED_KEYS:
    jax.tree.map(np.testing.assert_array_equal,
                 jax.tree.map(np.asarray, loaded.params[key]),
                 jax.tree.map(np.asarray, full["state"][key]))


def test_same_prompt_and_seed_give_the_same_image(pipe, pipe8):
  reference = pipe.generate(PROMPTS, num_per_prompt=2, seed=7, batch_size=8)
  assert reference.shape == (6, 16, 16, 3) and reference.dtype == np.float32
  assert np.all(np.abs(reference) <= 1.0)
  # Same batch size, other companions and order: bit for bit.
  shuffled = pipe.generate(["a purple hexagon", PROMPTS[2], PROMPTS[0]],
                           num_per_prompt=2, seed=7, batch_size=8)
  np.testing.assert_array_equal(shuffled[2:4], reference[4:6])
  np.testing.assert_array_equal(shuffled[4:6], reference[0:2])
  # Other batch sizes: the same noise exactly, images up to float rounding.
  for batch_size in (1, 3):
    other = pipe.generate(PROMPTS, num_per_prompt=2, seed=7, batch_size=batch_size)
    np.testing.assert_allclose(other, reference, atol=1e-5, rtol=0)
  np.testing.assert_array_equal(pipe.noise([PROMPTS[1]], 2, seed=7),
                                pipe.noise(PROMPTS, 2, seed=7)[2:4])
  # Every batch size is padded to the 8 devices: one shape, bit for bit.
  eight = [pipe8.generate(PROMPTS, num_per_prompt=2, seed=7, batch_size=b)
           for b in (1, 3, 8)]
  np.testing.assert_array_equal(eight[0], eight[1])
  np.testing.assert_array_equal(eight[0], eight[2])
  # A different seed or image index is a different image.
  assert not np.allclose(reference[0], reference[1])
  assert not np.allclose(pipe.generate(PROMPTS[:1], seed=8, batch_size=8)[0], reference[0])


def test_generate_from_noise_is_generate_with_the_noise_given(pipe, pipe8):
  noise = pipe.noise(PROMPTS, 1, seed=7)
  for p in (pipe, pipe8):
    np.testing.assert_allclose(p.generate_from_noise(PROMPTS, noise, batch_size=8),
                               p.generate(PROMPTS, seed=7, batch_size=8), atol=1e-5, rtol=0)
  # One noise under two captions: only the caption differs.
  shared = np.repeat(noise[:1], 2, axis=0)
  images = pipe.generate_from_noise(PROMPTS[:2], shared, batch_size=8)
  assert not np.allclose(images[0], images[1])
  np.testing.assert_allclose(images[0], pipe.generate(PROMPTS[:1], seed=7, batch_size=8)[0],
                             atol=1e-5, rtol=0)
  with pytest.raises(ValueError, match="noise must be"):
    pipe.generate_from_noise(PROMPTS, noise[:2])


def test_loads_on_another_device_count(pipe, pipe8):
  assert len(jax.tree.leaves(pipe.params)[0].sharding.device_set) == 1
  assert len(jax.tree.leaves(pipe8.params)[0].sharding.device_set) == 8
  np.testing.assert_allclose(pipe.generate(PROMPTS, seed=3, batch_size=8),
                             pipe8.generate(PROMPTS, seed=3, batch_size=8), atol=1e-5)


def test_step_selects_a_checkpoint(workdir, pipe):
  older = sampling.load_pipeline(workdir, step=2, devices=jax.devices()[:1])
  assert older.step == 2
  assert not np.allclose(older.generate(PROMPTS[:1], batch_size=8),
                         pipe.generate(PROMPTS[:1], batch_size=8))
  with pytest.raises(ValueError, match=r"no checkpoint at step 3 .*available steps: 2, 4"):
    sampling.load_pipeline(workdir, step=3)


def test_load_networks_reads_every_network_of_a_step(workdir, pipe):
  networks = sampling.load_networks(workdir)
  assert networks.step == 4 and networks.config.model.arch == pipe.config.model.arch
  assert {"generator", "generator_ema", "discriminator", "text_encoder"} <= set(networks.state)
  # The same D the sampler restored, and a usable one.
  jax.tree.map(np.testing.assert_array_equal, networks.state["discriminator"],
               jax.device_get(pipe.params["discriminator"]))
  ids, mask = networks.tokenizer.encode(PROMPTS)
  sentence = networks.models.encode_text(networks.state["text_encoder"], ids, mask,
                                         networks.frozen_text)
  images = jnp.zeros((len(PROMPTS), networks.config.image_size,
                      networks.config.image_size, 3))
  logits = networks.models.d_logits(
      networks.state["discriminator"],
      networks.models.d_features(networks.state["discriminator"], images), sentence)
  assert logits.shape == (len(PROMPTS),)
  assert sampling.load_networks(workdir, step=2).step == 2
  with pytest.raises(ValueError, match=r"no checkpoint at step 3 .*available steps: 2, 4"):
    sampling.load_networks(workdir, step=3)


def test_workdir_without_checkpoint(workdir, tmp_path):
  empty = _copy_run(workdir, str(tmp_path / "fresh"), with_checkpoints=False)
  with pytest.raises(FileNotFoundError, match="no checkpoint in .*train first"):
    sampling.load_pipeline(empty)
  with pytest.raises(FileNotFoundError, match="not a jaxgan run"):
    sampling.load_pipeline(str(tmp_path / "nothing"))


def test_checkpoint_of_another_config(workdir, tmp_path):
  other = _copy_run(workdir, str(tmp_path / "edited"))
  path = os.path.join(other, "config.json")
  with open(path) as f:
    config = json.load(f)
  config["model"]["nf"] = 16
  with open(path, "w") as f:
    json.dump(config, f)
  with pytest.raises(ValueError, match="does not match the run's config.json"):
    sampling.load_pipeline(other, devices=jax.devices()[:1])


@pytest.mark.parametrize("prompt", ["", "   ", "?!.,;", "日本語"])
def test_empty_prompts_fail(pipe, prompt):
  with pytest.raises(ValueError, match="empty prompt"):
    pipe.generate(["a red circle", prompt])


def test_long_unknown_and_non_ascii_prompts(pipe):
  with pytest.warns(UserWarning, match="longer than the text encoder's 32 tokens"):
    pipe.generate([" ".join(["red circle"] * 40)], batch_size=8)
  with pytest.warns(UserWarning, match="read as <unk>.*zorblax"):
    images = pipe.generate(["a zorblax circle"], batch_size=8)
  assert np.all(np.isfinite(images))
  # Case and accents fold to ASCII, punctuation and other scripts vanish: the
  # same ids as the plain text (the noise still follows the text as typed).
  plain_ids = pipe.tokenize(["a red circle"])[0]
  np.testing.assert_array_equal(pipe.tokenize(["A Réd círcle, 日本!"])[0], plain_ids)
  assert np.all(np.isfinite(pipe.generate(["A Réd círcle, 日本!"], batch_size=8)))


def test_truncation(pipe):
  plain = pipe.noise(PROMPTS, 4, seed=1, truncation=1.0)
  assert np.abs(plain).max() > 1.0
  truncated = pipe.noise(PROMPTS, 4, seed=1, truncation=0.25)
  assert np.abs(truncated).max() <= 0.5 + 1e-6
  for bad in (0.0, 1.5):
    with pytest.raises(ValueError, match="truncation"):
      pipe.generate(PROMPTS[:1], truncation=bad)


def test_best_of_keeps_the_candidate_d_scores_best(pipe):
  k = 3
  candidates = pipe.generate(PROMPTS, num_per_prompt=2 * k, seed=5, batch_size=8)
  best = pipe.generate(PROMPTS, num_per_prompt=2, seed=5, batch_size=8, best_of=k,
                       rank_by="match")
  # Candidate c of image j is image j * k + c of the plain call.
  scores = pipe.score(np.repeat(PROMPTS, 2 * k), candidates, by="match").reshape(-1, k)
  picked = np.argmax(scores, axis=1)
  np.testing.assert_array_equal(
      best, candidates.reshape((-1, k) + candidates.shape[1:])[np.arange(len(picked)), picked])
  assert np.any(picked != 0)  # else the check could not tell ranking from none
  # Image 0's first candidate is best_of=1's image 0.
  np.testing.assert_array_equal(candidates[::k][:1],
                                pipe.generate(PROMPTS[:1], seed=5, batch_size=8)[:1])
  for kwargs, message in (({"best_of": 0}, "best_of"), ({"best_of": 2, "rank_by": "clip"},
                                                        "unknown score 'clip'"),
                          # The tiny run's D has no caption-word head.
                          ({"best_of": 2, "rank_by": "words"}, "no caption-word head")):
    with pytest.raises(ValueError, match=message):
      pipe.generate(PROMPTS[:1], **kwargs)
  with pytest.raises(ValueError, match=r"images must be \[number of prompts, 16, 16, 3\]"):
    pipe.score(PROMPTS, candidates[:2], by="match")


def test_scores_read_ds_caption_heads():
  from jaxgan import data, run as run_lib  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  config.model.update(word_dim=8, word_vocab="captions", contrastive_dim=8)
  tokenizer = run_lib.build_tokenizer(config, data.build_source(config))
  models, frozen = run_lib.build_gan(config, tokenizer)
  params = models.init(jax.random.key(0), image_size=config.image_size,
                       max_length=config.text.max_length, frozen_text=frozen)
  pipe = sampling.Pipeline(
      config, tokenizer, models,
      {"generator_ema": params["generator"], "generator_state": params["generator_state"],
       "text_encoder": params["text_encoder"], "discriminator": params["discriminator"],
       "frozen_text": frozen}, devices=jax.devices()[:1])
  images = pipe.generate(PROMPTS, batch_size=4)
  d = params["discriminator"]
  features = models.d_features(d, jnp.asarray(images))
  # Words: each of the head's outputs is one of the captions' ids, present
  # (log sigmoid) or absent (log 1 - sigmoid), counted once however often said.
  logits = np.asarray(models.d_word_logits(d, features), np.float64)
  ids, mask = pipe.tokenize(PROMPTS)
  # A learned vocabulary is the captions' words: the head scores every id.
  assert models.word_ids is None
  scored = np.arange(logits.shape[1])
  expected = []
  for row, (prompt_ids, prompt_mask) in enumerate(zip(ids, mask)):
    present = np.isin(scored, prompt_ids[prompt_mask])
    assert present.any()
    log_p = -np.log1p(np.exp(-logits[row]))
    log_not_p = -np.log1p(np.exp(logits[row]))
    expected.append(np.sum(np.where(present, log_p, log_not_p)))
  np.testing.assert_allclose(pipe.score(PROMPTS, images, by="words"), expected, rtol=1e-5)
  # Contrastive: the cosine of D's image and caption embeddings.
  sentence = models.encode_text(params["text_encoder"], jnp.asarray(ids), jnp.asarray(mask))
  image_embeddings, text_embeddings = models.d_embeddings(d, features, sentence)
  np.testing.assert_allclose(pipe.score(PROMPTS, images, by="contrastive"),
                             np.sum(np.asarray(image_embeddings) * np.asarray(text_embeddings),
                                    axis=-1), rtol=1e-5, atol=1e-6)
  # The prompt is read: other prompts' words give the images other scores.
  assert not np.allclose(pipe.score(PROMPTS[::-1], images, by="words"), expected)


def test_images_and_interpolation(pipe):
  images = pipe.images(PROMPTS[:2], num_per_prompt=2, batch_size=8, postprocess="resize:2")
  assert len(images) == 4 and images[0].size == (32, 32) and images[0].mode == "RGB"
  frames = pipe.interpolate(PROMPTS[0], PROMPTS[1], steps=5, seed=2)
  assert frames.shape == (5, 16, 16, 3) and frames.dtype == np.uint8
  first = sampling.postprocess_lib.denormalize(pipe.generate(PROMPTS[:1], seed=2,
                                                             batch_size=8))[0]
  assert np.abs(frames[0].astype(int) - first).max() <= 1
  seeds = pipe.interpolate(PROMPTS[0], steps=3, seed=2, seed_b=5)
  last = sampling.postprocess_lib.denormalize(pipe.generate(PROMPTS[:1], seed=5,
                                                            batch_size=8))[0]
  assert np.abs(seeds[-1].astype(int) - last).max() <= 1
  with pytest.raises(ValueError, match="two prompts"):
    pipe.interpolate(PROMPTS[0])


def _run_cli(args):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["JAX_PLATFORMS"] = "cpu"
  return subprocess.run([sys.executable, os.path.join(REPO, "sample.py"), *args],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_sample_py_end_to_end(workdir, tmp_path):
  grid = str(tmp_path / "grid.png")
  done = _run_cli(["--workdir", workdir, "--prompt", PROMPTS[0], "--prompt", PROMPTS[1],
                   "--num", "3", "--out", grid])
  assert done.returncode == 0, done.stderr
  # Two rows of three 16x16 cells with 2 pixels of padding.
  assert Image.open(grid).size == (3 * 18 + 2, 2 * 18 + 2)

  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  failed = _run_cli(["--workdir", workdir, "--prompt", PROMPTS[0],
                     "--out", str(blocker / "grid.png")])
  assert failed.returncode == 1
  assert "Traceback" not in failed.stderr
  assert failed.stderr.count("\n") == 1 and "sample.py: error:" in failed.stderr


def test_sample_main_folder_and_animation(workdir, tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
  prompts_file = tmp_path / "prompts.txt"
  prompts_file.write_text(f"{PROMPTS[0]}\n\n{PROMPTS[2]}\n")
  folder = str(tmp_path / "out")
  assert sample_cli.main(["--workdir", workdir, "--prompts-file", str(prompts_file),
                          "--num", "2", "--seed", "5", "--truncation", "0.7",
                          "--best-of", "2", "--rank-by", "match",
                          "--postprocess", "auto_levels resize:2", "--out", folder]) == 0
  names = sorted(os.listdir(folder))
  assert len([n for n in names if n.endswith(".png")]) == 4
  assert len([n for n in names if n.endswith(".json")]) == 4
  with open(os.path.join(folder, [n for n in names if n.endswith(".json")][-1])) as f:
    sidecar = json.load(f)
  assert sidecar["prompt"] == PROMPTS[2] and sidecar["image_index"] == 1
  assert sidecar["seed"] == 5 and sidecar["step"] == 4 and sidecar["truncation"] == 0.7
  assert sidecar["best_of"] == 2 and sidecar["rank_by"] == "match"
  assert [s["name"] for s in sidecar["postprocess"]] == ["auto_levels", "resize"]
  assert Image.open(os.path.join(folder, sidecar["image"])).size == (32, 32)

  gif = str(tmp_path / "walk.gif")
  assert sample_cli.main(["--workdir", workdir, "--prompt", PROMPTS[0], "--prompt",
                          PROMPTS[1], "--interpolate", "--frames", "4", "--out", gif]) == 0
  with Image.open(gif) as animation:
    assert animation.n_frames >= 2  # GIF merges identical consecutive frames
  assert sample_cli.main(["--workdir", workdir, "--prompt", PROMPTS[0], "--step", "3",
                          "--out", str(tmp_path / "x.png")]) == 1
  assert "available steps: 2, 4" in capsys.readouterr().err
  # Ranking by a head this D lacks (the default, words) is one clear line.
  assert sample_cli.main(["--workdir", workdir, "--prompt", PROMPTS[0], "--best-of", "3",
                          "--out", str(tmp_path / "y.png")]) == 1
  err = capsys.readouterr().err
  assert "no caption-word head" in err and err.count("\n") == 1


def test_interpolation_to_a_folder_writes_frames_and_metadata(workdir, tmp_path):
  from jaxgan import sample_writer  # pylint: disable=g-import-not-at-top
  folder = str(tmp_path / "frames")
  summary = sample_writer.write_interpolation(workdir, [PROMPTS[0]], folder, frames=3,
                                              seed=1, seed_b=2)
  assert summary.startswith("wrote 3 frames")
  assert sorted(os.listdir(folder)) == ["frame_000.png", "frame_001.png", "frame_002.png",
                                        "interpolation.json"]
  with open(os.path.join(folder, "interpolation.json")) as f:
    assert json.load(f)["frames"] == 3
