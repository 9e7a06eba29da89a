"""End-to-end training behaviour on the tiny config: checkpoints, resume, devices, guards."""

import os
import signal

import jax
import numpy as np
import pytest

from configs import tiny
from jaxgan import config as config_lib
from jaxgan.train import NonFiniteLossError, train_and_evaluate
from jaxgan.train import checkpointing, loop


def _config(**overrides):
  config = tiny.get_config()
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for part in parents:
      node = node[part]
    node[leaf] = value
  return config


def _restore_state(workdir, step):
  """The raw saved state pytree of one checkpoint, as NumPy arrays."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  manager = ocp.CheckpointManager(checkpointing.checkpoint_dir(workdir))
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  manager.close()
  return jax.tree.map(np.asarray, restored["state"])


def _assert_trees_close(a, b, **tolerance):
  flat_a, tree_a = jax.tree.flatten(a)
  flat_b, tree_b = jax.tree.flatten(b)
  assert tree_a == tree_b
  for x, y in zip(flat_a, flat_b):
    np.testing.assert_allclose(x, y, **tolerance)


def test_train_checkpoint_resume_matches_uninterrupted_run(tmp_path):
  resumed_dir, straight_dir = str(tmp_path / "resumed"), str(tmp_path / "straight")
  first = train_and_evaluate(_config(num_steps=10), resumed_dir)
  assert first["step"] == 10
  assert checkpointing.Checkpointer(resumed_dir, keep=3).latest_step() == 10
  second = train_and_evaluate(_config(num_steps=20), resumed_dir)
  assert second["step"] == 20
  train_and_evaluate(_config(num_steps=20), straight_dir)

  # Same parameters, optimizer state and data position as a run never stopped.
  _assert_trees_close(_restore_state(resumed_dir, 20), _restore_state(straight_dir, 20),
                      rtol=1e-5, atol=1e-6)
  samples = sorted(os.listdir(os.path.join(resumed_dir, "samples")))
  assert samples == ["prompts.txt", "step_0000010.png", "step_0000020.png"]
  assert os.path.exists(os.path.join(resumed_dir, "tokenizer.json"))
  assert os.path.exists(os.path.join(resumed_dir, "config.json"))
  assert os.listdir(os.path.join(resumed_dir, "tensorboard"))
  assert np.isfinite(second["metrics"]["d_loss"]) and np.isfinite(second["metrics"]["g_loss"])


@pytest.mark.slow  # four short runs, each compiling the contrastive step
def test_resume_with_hard_negatives_continues_the_caption_queue(tmp_path):
  overrides = {"model.contrastive_dim": 8, "loss.contrastive_weight": 1.0,
               "loss.mismatch": "hardest", "loss.mismatch_queue": 16,
               "checkpoint_every": 1, "sample_every": 5}
  resumed_dir, straight_dir = str(tmp_path / "resumed"), str(tmp_path / "straight")
  # Stopped at step 3, after the 16-entry ring wrapped (8 captions a step).
  train_and_evaluate(_config(num_steps=3, **overrides), resumed_dir)
  train_and_evaluate(_config(num_steps=5, **overrides), resumed_dir)
  train_and_evaluate(_config(num_steps=5, **overrides), straight_dir)
  resumed, straight = _restore_state(resumed_dir, 5), _restore_state(straight_dir, 5)
  assert resumed["caption_queue"].shape == (16, tiny.get_config().text.embed_dim)
  _assert_trees_close(resumed, straight, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("contrastive, mismatch, swaps", [
    (False, "roll", False), pytest.param(True, "roll", False, marks=pytest.mark.slow),
    pytest.param(True, "hardest", False, marks=pytest.mark.slow),
    pytest.param(True, "roll", True, marks=pytest.mark.slow)])
def test_one_and_eight_devices_give_the_same_training(tmp_path, contrastive, mismatch, swaps):
  """Also with the base config's contrastive loss, whose negatives are the
  whole global batch (every device's examples), with mismatched captions
  drawn from the global batch and the caption queue, and with edited
  captions, swapped or replaced words (the Transformer encoder: bag-of-words
  cannot take swaps)."""
  assert jax.device_count() == 8, "conftest sets 8 fake CPU devices"
  config = _config(num_steps=3, checkpoint_every=3, sample_every=3)
  if contrastive:
    config.model.contrastive_dim, config.loss.contrastive_weight = 16, 1.0
  config.loss.mismatch, config.loss.mismatch_queue = mismatch, 16
  if swaps:
    config.text.encoder, config.text.num_layers, config.loss.swap_weight = "transformer", 1, 1.0
    config.loss.swap_edits = "both"
  one = train_and_evaluate(config, str(tmp_path / "one"), devices=jax.devices()[:1])
  eight = train_and_evaluate(config, str(tmp_path / "eight"), devices=jax.devices())
  if swaps:
    assert one["metrics"]["d_swap_loss"] > 0
  for name in ("d_loss", "g_loss", "d_ma_gp") + (("d_contrastive", "g_contrastive")
                                                   if contrastive else ()) + (
                                                       ("d_swap_loss",) if swaps else ()):
    np.testing.assert_allclose(one["metrics"][name], eight["metrics"][name], rtol=1e-4)
  one_state, eight_state = (_restore_state(str(tmp_path / run), 3) for run in ("one", "eight"))
  if swaps:
    # Attention's key bias shifts every score of a query alike, which the
    # softmax ignores: its gradient is zero but for rounding, whose sign Adam
    # turns into a full step (+-lr), differently on 1 and 8 devices.
    def key_bias_left_out(state):
      return {jax.tree_util.keystr(path): leaf
              for path, leaf in jax.tree_util.tree_leaves_with_path(state)
              if "['key']['bias']" not in jax.tree_util.keystr(path)}
    one_state, eight_state = key_bias_left_out(one_state), key_bias_left_out(eight_state)
    assert len(one_state) < len(jax.tree.leaves(_restore_state(str(tmp_path / "one"), 3)))
  _assert_trees_close(one_state, eight_state, rtol=1e-4, atol=1e-5)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  workdir = str(tmp_path / "run")
  train_and_evaluate(_config(num_steps=10), workdir)
  good = _restore_state(workdir, 10)
  # An absurd learning rate overflows the parameters within a few steps.
  with pytest.raises(NonFiniteLossError, match=r"loss .* at step \d+"):
    train_and_evaluate(_config(num_steps=40, checkpoint_every=40, **{"optim.d_lr": 1e30,
                                                                   "optim.g_lr": 1e30}),
                       workdir)
  assert checkpointing.Checkpointer(workdir, keep=3).latest_step() == 10
  _assert_trees_close(_restore_state(workdir, 10), good, rtol=0, atol=0)


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path, monkeypatch):
  workdir = str(tmp_path / "run")
  original_step = loop.Monitor.step

  def step_then_sigterm(self, step, metrics):
    original_step(self, step, metrics)
    if step == 3:
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(loop.Monitor, "step", step_then_sigterm)
  summary = train_and_evaluate(_config(num_steps=50), workdir)
  assert summary["stopped_by"] == "SIGTERM"
  assert summary["step"] == 3
  assert checkpointing.Checkpointer(workdir, keep=3).latest_step() == 3


def test_resuming_on_another_number_of_hosts_fails_clearly(tmp_path):
  workdir = str(tmp_path / "run")
  train_and_evaluate(_config(num_steps=1, checkpoint_every=1, sample_every=1), workdir)
  data_dir = os.path.join(checkpointing.checkpoint_dir(workdir), "1", "data")
  assert os.listdir(data_dir) and "process_0-of-1.json" in os.listdir(data_dir)
  # As if two hosts had written it.
  os.rename(os.path.join(data_dir, "process_0-of-1.json"),
            os.path.join(data_dir, "process_0-of-2.json"))
  with pytest.raises(ValueError, match="written by 2 host"):
    train_and_evaluate(_config(num_steps=2), workdir)


def test_resuming_with_another_architecture_fails_clearly(tmp_path):
  workdir = str(tmp_path / "run")
  train_and_evaluate(_config(num_steps=1, checkpoint_every=1, sample_every=1), workdir)
  with pytest.raises(ValueError, match="model.nf=8"):
    train_and_evaluate(_config(num_steps=2, **{"model.nf": 16}), workdir)


def test_runs_saved_before_the_adapter_keys_existed_still_resume():
  from jaxgan import run as run_lib  # pylint: disable=g-import-not-at-top

  def saved_without_adapter_keys(encoder):
    config = _config(**{"text.encoder": encoder}).to_dict()
    del config["text"]["adapter"], config["text"]["adapter_layers"]
    return type(_config())(config)

  # A learned encoder never had an adapter: the keys do not matter.
  run_lib.check_compatible(saved_without_adapter_keys("bow"), _config(), "runs/old")
  # A MiniLM run made before the adapter ran without one: it resumes with the
  # adapter off, and a config asking for one is told what differs.
  saved = saved_without_adapter_keys("minilm")
  run_lib.check_compatible(saved, _config(**{"text.encoder": "minilm",
                                             "text.adapter": False}), "runs/old")
  with pytest.raises(ValueError, match="text.adapter=False"):
    run_lib.check_compatible(saved, _config(**{"text.encoder": "minilm",
                                               "text.adapter": True}), "runs/old")


def test_checkpoints_saved_before_the_caption_queue_existed_resume(tmp_path):
  import dataclasses  # pylint: disable=g-import-not-at-top
  from jaxgan import sharding  # pylint: disable=g-import-not-at-top
  from jaxgan.train import state as state_lib  # pylint: disable=g-import-not-at-top
  config = _config()
  models = _tiny_models(config)
  state = state_lib.init_state(models, config, jax.random.key(0))
  assert state.caption_queue is None  # "roll" keeps no queue
  # What older code saved: the state without the field.
  old = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)
         if f.name != "caption_queue"}
  checkpointer = checkpointing.Checkpointer(str(tmp_path), keep=2)
  checkpointer.save(5, old)
  checkpointer.wait_until_finished()
  replicated = sharding.replicated(sharding.make_mesh())
  restored = loop._restore_state(  # pylint: disable=protected-access
      checkpointer, str(tmp_path), 5, jax.eval_shape(lambda: state), replicated, None,
      models, config)
  assert restored.caption_queue is None
  _assert_trees_close(restored, state, rtol=0, atol=0)
  checkpointer.close()
  # A run that kept no queue cannot be resumed with one, and is told why.
  from jaxgan import run as run_lib  # pylint: disable=g-import-not-at-top
  with_head = _config(**{"model.contrastive_dim": 8})
  hardest = _config(**{"model.contrastive_dim": 8, "loss.mismatch": "hardest"})
  with pytest.raises(ValueError, match="loss.mismatch='roll'"):
    run_lib.check_compatible(with_head, hardest, "runs/old")
  saved = config.to_dict()
  del saved["loss"]["mismatch"], saved["loss"]["mismatch_queue"]
  run_lib.check_compatible(type(config)(saved), config, "runs/old")


def test_resume_checks_the_caption_queue_and_ignores_d_residual_init():
  from jaxgan import run as run_lib  # pylint: disable=g-import-not-at-top
  head = {"model.contrastive_dim": 8, "loss.contrastive_weight": 1.0}
  # A run without a queue cannot take one on for the contrastive loss (its
  # state has none); the message names the option.
  with pytest.raises(ValueError, match="loss.contrastive_queue"):
    run_lib.check_compatible(_config(**head),
                             _config(**head, **{"loss.contrastive_queue": True}), "runs/old")
  # Hard negatives already keep the queue: adding the contrastive use of it
  # changes no state.
  hardest = {**head, "loss.mismatch": "hardest"}
  run_lib.check_compatible(_config(**hardest),
                           _config(**hardest, **{"loss.contrastive_queue": True}), "runs/old")
  # The gammas' starting value is not part of a saved run (its gammas are),
  # and runs saved before the key existed resume with any.
  saved = _config().to_dict()
  del saved["model"]["d_residual_init"], saved["loss"]["contrastive_queue"]
  run_lib.check_compatible(type(_config())(saved), _config(**{"model.d_residual_init": 1.0}),
                           "runs/old")


def test_resume_checks_the_word_vocabulary_only_where_it_sizes_the_head():
  from jaxgan import run as run_lib  # pylint: disable=g-import-not-at-top
  minilm_words = {"text.encoder": "minilm", "model.word_dim": 8}
  with pytest.raises(ValueError, match="model.word_vocab='tokenizer'"):
    run_lib.check_compatible(_config(**minilm_words, **{"model.word_vocab": "tokenizer"}),
                             _config(**minilm_words, **{"model.word_vocab": "captions"}),
                             "runs/old")
  # No head, or a learned vocabulary (already the captions' words): the same run.
  for overrides in ({"text.encoder": "minilm", "model.word_dim": 0},
                    {"text.encoder": "bow", "model.word_dim": 8}):
    run_lib.check_compatible(_config(**overrides, **{"model.word_vocab": "tokenizer"}),
                             _config(**overrides, **{"model.word_vocab": "captions"}),
                             "runs/old")


@pytest.mark.parametrize("option", ["text_stem", "coordinates"])
def test_runs_saved_before_a_generator_option_existed_resume_without_it(option):
  from jaxgan import run as run_lib  # pylint: disable=g-import-not-at-top
  config = _config().to_dict()
  del config["model"][option]
  saved = type(_config())(config)
  run_lib.check_compatible(saved, _config(**{f"model.{option}": False}), "runs/old")
  with pytest.raises(ValueError, match=f"model.{option}=False"):
    run_lib.check_compatible(saved, _config(**{f"model.{option}": True}), "runs/old")


@pytest.mark.parametrize("key,value,message", [
    ("image_size", 48, "image_size"),
    ("batch_size", 0, "batch_size"),
    ("model.arch", "unet", "model.arch"),
    ("loss.kind", "wgan", "loss.kind"),
    ("model.param_dtype", "bfloat16", "use model.dtype=bfloat16"),
])
def test_bad_config_values_fail_at_start(tmp_path, key, value, message):
  with pytest.raises(ValueError, match=message):
    train_and_evaluate(_config(**{key: value}), str(tmp_path / "run"))


@pytest.mark.parametrize("option,value", [("text_stem", True), ("coordinates", True),
                                          ("word_attention", 16)])
def test_generator_options_need_dfgan(option, value):
  with pytest.raises(ValueError, match=f"{option}={value} needs model.arch='dfgan'"):
    # Only the option under test is on (tiny.py has the coordinates).
    config_lib.validate(_config(**{"model.arch": "mlp", "model.coordinates": False,
                                   f"model.{option}": value}))


@pytest.mark.parametrize("value", [-1, True])
def test_word_attention_width_is_a_natural_number(value):
  with pytest.raises(ValueError, match="word_attention=.* must be an integer >= 0"):
    config_lib.validate(_config(**{"model.word_attention": value}))


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_pack_fraction_is_a_fraction(value):
  with pytest.raises(ValueError, match="pack_fraction=.* must be from 0 .off. to 1"):
    config_lib.validate(_config(**{"text.pack_fraction": value}))


def test_runs_resume_with_either_pack_fraction():
  """Packing is how the frozen encoder is computed, not what it is: a run
  saved without the key, or with another value, resumes."""
  from jaxgan import run as run_lib  # pylint: disable=g-import-not-at-top
  saved = _config(**{"text.encoder": "minilm", "text.pack_fraction": 0.0}).to_dict()
  del saved["text"]["pack_fraction"]
  saved = type(_config())(saved)
  for fraction in (0.0, 0.75):
    run_lib.check_compatible(saved, _config(**{"text.encoder": "minilm",
                                               "text.pack_fraction": fraction}), "runs/old")


def test_cli_config_typo_is_one_clear_line(tmp_path):
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  result = subprocess.run(
      [sys.executable, "train.py", "--config", "configs/tiny.py",
       "--workdir", str(tmp_path / "run"), "--config.num_step=5"],
      cwd=root, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2
  assert 'Did you mean "num_steps"' in result.stderr
  assert "Traceback" not in result.stderr
  assert not os.path.exists(tmp_path / "run")
  result = subprocess.run(
      [sys.executable, "train.py", "--config", "configs/tiny.py",
       "--workdir", str(tmp_path / "run"), "--config.batch_size=abc"],
      cwd=root, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2 and "batch_size" in result.stderr
  assert "Traceback" not in result.stderr


def test_ema_decay_follows_the_half_life_in_images():
  from jaxgan.train.step import ema_decay  # pylint: disable=g-import-not-at-top
  step = lambda s: jax.numpy.asarray(s, jax.numpy.int32)
  # No ramp-up: the half-life of 320 images at batch 32 is 10 steps.
  np.testing.assert_allclose(ema_decay(step(0), 32, 320.0, 0.0), 0.5 ** 0.1, rtol=1e-6)
  # Ramp-up: at step 0 the average copies G; at step 1000 (32k images, rampup
  # 0.05) the half-life is 1,600 images; later it is capped at 10k images.
  assert float(ema_decay(step(0), 32, 10_000.0, 0.05)) == 0.0
  np.testing.assert_allclose(ema_decay(step(1000), 32, 10_000.0, 0.05), 0.5 ** (32 / 1600),
                             rtol=1e-6)
  np.testing.assert_allclose(ema_decay(step(10**6), 32, 10_000.0, 0.05),
                             0.5 ** (32 / 10_000), rtol=1e-6)
  assert float(ema_decay(step(5), 32, 0.0, 0.0)) == 0.0  # half-life 0: EMA = G


def test_in_training_evaluation_runs_on_its_checkpoints(tmp_path, monkeypatch):
  # The metrics themselves are tested in test_metrics.py (and need a trained
  # probe); here: the loop evaluates the checkpoint it just wrote, every
  # eval_every steps, and logs the numbers.
  from jaxgan import metrics  # pylint: disable=g-import-not-at-top
  calls = []

  def fake_evaluate_run(workdir, step, num_prompts, log):
    del log
    assert checkpointing.Checkpointer(workdir, keep=3).latest_step() == step
    calls.append((step, num_prompts))
    return {"align/train/all_correct": 0.25, "align/holdout/all_correct": 0.125,
            "step": step}

  monkeypatch.setattr(metrics, "evaluate_run", fake_evaluate_run)
  train_and_evaluate(_config(num_steps=20, eval_every=10, eval_prompts=7),
                     str(tmp_path / "run"))
  assert calls == [(10, 7), (20, 7)]
  with pytest.raises(ValueError, match="eval_every"):
    train_and_evaluate(_config(eval_every=15), str(tmp_path / "other"))


def test_resuming_with_another_seed_or_batch_size_fails_clearly(tmp_path):
  workdir = str(tmp_path / "run")
  train_and_evaluate(_config(num_steps=1, checkpoint_every=1, sample_every=1), workdir)
  with pytest.raises(ValueError, match="seed=0"):
    train_and_evaluate(_config(num_steps=2, seed=1), workdir)
  with pytest.raises(ValueError, match="batch_size=8"):
    train_and_evaluate(_config(num_steps=2, batch_size=16), workdir)


def test_bfloat16_compute_keeps_float32_weights_and_ema():
  from jaxgan import run as run_lib  # pylint: disable=g-import-not-at-top
  from jaxgan.text import build_tokenizer  # pylint: disable=g-import-not-at-top
  from jaxgan.train.state import init_state  # pylint: disable=g-import-not-at-top
  from jaxgan.train.step import make_train_step  # pylint: disable=g-import-not-at-top
  config = _config(**{"model.dtype": "bfloat16"})
  tokenizer = build_tokenizer(config.text, ["a red circle", "a blue square"])
  models, _ = run_lib.build_gan(config, tokenizer)
  state = init_state(models, config, jax.random.key(0))
  size, length = config.image_size, config.text.max_length
  batch = {"image": np.full((config.batch_size, size, size, 3), 128, np.uint8),
           "ids": np.ones((config.batch_size, length), np.int32),
           "mask": np.ones((config.batch_size, length), bool)}
  step = jax.jit(make_train_step(models, config, jax.random.key(1)))
  for _ in range(2):  # the second step would recompile if a dtype had drifted
    state, metrics = step(state, batch)
  assert bool(metrics["finite"])
  for tree in (state.generator, state.generator_ema, state.discriminator):
    assert {str(x.dtype) for x in jax.tree.leaves(tree)} == {"float32"}
  assert step._cache_size() == 1  # pylint: disable=protected-access


def test_runs_saved_before_the_contrastive_head_existed_resume_without_it():
  from jaxgan import run as run_lib  # pylint: disable=g-import-not-at-top
  config = _config().to_dict()
  del config["model"]["contrastive_dim"]
  saved = type(_config())(config)
  # Such a run had no head: it resumes with the head off, and a config with
  # one (the base config's) is told which key differs.
  run_lib.check_compatible(saved, _config(**{"model.contrastive_dim": 0}), "runs/old")
  with pytest.raises(ValueError, match="model.contrastive_dim=0, but the config asks for 16"):
    run_lib.check_compatible(saved, _config(**{"model.contrastive_dim": 16}), "runs/old")


def _tiny_models(config):
  from jaxgan import run as run_lib  # pylint: disable=g-import-not-at-top
  from jaxgan.text import build_tokenizer  # pylint: disable=g-import-not-at-top
  tokenizer = build_tokenizer(config.text, ["a red circle", "a blue square"])
  models, _ = run_lib.build_gan(config, tokenizer)
  return models


def _like(tree, seed):
  """A tree shaped like ``tree`` with distinct random entries."""
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape, x.dtype)
                                      for k, x in zip(keys, leaves)])


def test_adam_on_raveled_params_is_per_leaf_adam():
  import optax  # pylint: disable=g-import-not-at-top
  from jaxgan.train import state as state_lib  # pylint: disable=g-import-not-at-top
  config = _config()
  params = _tiny_models(config).init(jax.random.key(0), image_size=config.image_size,
                                     max_length=config.text.max_length)["generator"]
  (raveled, _), (per_leaf, _) = (state_lib.make_optimizers(config),
                                 state_lib._per_leaf_optimizers(config))  # pylint: disable=protected-access
  a, b = params, params
  a_state, b_state = raveled.init(a), per_leaf.init(b)
  assert jax.tree.structure(a_state) != jax.tree.structure(b_state)  # one vector
  for i in range(3):
    grads = _like(params, i)
    a_updates, a_state = raveled.update(grads, a_state, a)
    b_updates, b_state = per_leaf.update(grads, b_state, b)
    a, b = optax.apply_updates(a, a_updates), optax.apply_updates(b, b_updates)
  _assert_trees_close(a, b, rtol=1e-6, atol=1e-7)


def test_checkpoints_with_per_leaf_adam_moments_resume_raveled(tmp_path):
  """Runs saved before the optimizers raveled the params still resume, each
  moment in its place: the next update is the one the old layout gives."""
  import optax  # pylint: disable=g-import-not-at-top
  from jaxgan import sharding  # pylint: disable=g-import-not-at-top
  from jaxgan.train import state as state_lib  # pylint: disable=g-import-not-at-top
  config = _config()
  models = _tiny_models(config)
  state = state_lib.init_state(models, config, jax.random.key(0))
  g_tx, d_tx = state_lib._per_leaf_optimizers(config)  # pylint: disable=protected-access
  d_params = state_lib.d_trainable_params(models, state)
  # Moments that differ entry by entry: one update on random gradients.
  g_grads, d_grads = _like(state.generator, 1), _like(d_params, 2)
  _, g_opt = g_tx.update(g_grads, g_tx.init(state.generator))
  _, d_opt = d_tx.update(d_grads, d_tx.init(d_params))
  checkpointer = checkpointing.Checkpointer(str(tmp_path), keep=2)
  checkpointer.save(3, state.replace(g_opt_state=g_opt, d_opt_state=d_opt))
  checkpointer.wait_until_finished()

  replicated = sharding.replicated(sharding.make_mesh())
  restored = loop._restore_state(  # pylint: disable=protected-access
      checkpointer, str(tmp_path), 3, jax.eval_shape(lambda: state), replicated, None,
      models, config)
  assert jax.tree.structure(restored) == jax.tree.structure(state)
  g_raveled, d_raveled = state_lib.make_optimizers(config)
  # The moments a run with raveled params would hold after the same update
  # (DF-GAN's beta1 = 0 leaves the next update blind to the first moment).
  _assert_trees_close(restored.g_opt_state,
                      g_raveled.update(g_grads, g_raveled.init(state.generator))[1])
  _assert_trees_close(restored.d_opt_state,
                      d_raveled.update(d_grads, d_raveled.init(d_params))[1])
  for raveled, per_leaf, params, old, new, seed in (
      (g_raveled, g_tx, state.generator, g_opt, restored.g_opt_state, 3),
      (d_raveled, d_tx, d_params, d_opt, restored.d_opt_state, 4)):
    grads = _like(params, seed)
    expected = optax.apply_updates(params, per_leaf.update(grads, old, params)[0])
    got = optax.apply_updates(params, raveled.update(grads, new, params)[0])
    _assert_trees_close(got, expected, rtol=1e-6, atol=1e-7)

  # A legacy checkpoint that also differs elsewhere gets Orbax's error naming
  # where (here: a generator with batch statistics the run did not have).
  other = jax.eval_shape(lambda: state.replace(generator_state={"unknown": state.step}))
  with pytest.raises(ValueError, match="generator_state"):
    loop._restore_state(  # pylint: disable=protected-access
        checkpointer, str(tmp_path), 3, other, replicated, None, models, config)
  checkpointer.close()
