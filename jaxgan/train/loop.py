"""The training loop: set up a run, resume it if it exists, train, checkpoint, sample."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from jaxgan import config as config_lib
from jaxgan import data
from jaxgan import images as image_utils
from jaxgan import run as run_lib
from jaxgan import sharding
from jaxgan.models.gan import make_generate_fn
from jaxgan.train import checkpointing
from jaxgan.train.monitor import Monitor
from jaxgan.train.state import (flatten_optimizer_states, init_state,
                                per_leaf_optimizer_states)
from jaxgan.train.step import make_train_step


def _restore_state(checkpointer: checkpointing.Checkpointer, workdir: str, step: int,
                   abstract_state: Any, replicated: jax.sharding.Sharding,
                   iterator: Any, models: Any, config: ml_collections.ConfigDict) -> Any:
  """Restores the state at ``step``, also as older code saved it.

  A run saved before the optimizers raveled the params (per-leaf Adam
  moments, told apart by their leaf count in the checkpoint's metadata) is
  read in its layout and converted; one saved before a state field existed
  (``caption_queue``) is read without it.
  """
  saved = run_lib.saved_state_tree(workdir, step)
  legacy = per_leaf_optimizer_states(models, config, abstract_state)
  saved_count = (len(jax.tree.leaves(saved["g_opt_state"]))
                 if isinstance(saved, dict) and "g_opt_state" in saved else None)
  per_leaf = (saved_count == len(jax.tree.leaves(legacy.g_opt_state))
              != len(jax.tree.leaves(abstract_state.g_opt_state)))
  target = legacy if per_leaf else abstract_state
  # Read as a dict of the saved fields: a field added to the state later
  # (None in the runs that predate it, whose config keys default to off) is
  # left at its default.
  fields = {f.name: getattr(target, f.name) for f in dataclasses.fields(target)
            if not isinstance(saved, dict) or f.name in saved
            or getattr(target, f.name) is not None}
  restored = checkpointer.restore(
      step, checkpointing.abstract_like(fields, replicated), iterator)
  state = type(target)(**restored)
  if per_leaf:
    return jax.jit(flatten_optimizer_states, out_shardings=replicated)(state)
  return state


class NonFiniteLossError(RuntimeError):
  """A loss became NaN or Inf; the last good checkpoint is left as it was."""


class _StopRequest:
  """Turns SIGTERM / Ctrl-C into a flag the loop checks between steps."""

  def __init__(self):
    self.signal_name = None

  def _handle(self, signum, frame):
    del frame
    self.signal_name = signal.Signals(signum).name

  def requested(self) -> bool:
    """Whether any host was asked to stop: all hosts must stop at the same step,
    or the ones still stepping would wait forever for the others."""
    if jax.process_count() == 1:
      return self.signal_name is not None
    flags = multihost_utils.process_allgather(np.int32(self.signal_name is not None))
    if np.any(flags) and self.signal_name is None:
      self.signal_name = "SIGTERM (another host)"
    return bool(np.any(flags))

  @contextlib.contextmanager
  def installed(self):
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread (e.g. a notebook worker)
        pass
    try:
      yield self
    finally:
      for sig, handler in previous.items():
        signal.signal(sig, handler)


def _check_finite(pending: list[tuple[int, dict[str, Any]]]) -> None:
  """Fetches the device-side ``finite`` flags of the (step, metrics) not yet checked.

  Raises at the first bad step. Called before anything is written, so a
  checkpoint or a sample grid never holds NaN.
  """
  flags = jax.device_get([metrics["finite"] for _, metrics in pending])
  for (step, metrics), flag in zip(pending, flags):
    if not flag:
      values = _host_metrics(metrics)
      bad = next((k for k in ("d_loss", "g_loss") if not math.isfinite(values[k])), None)
      network = "generator" if bad == "g_loss" else "discriminator"
      what = f"{bad} is {values[bad]}" if bad else "the parameters after the update are not finite"
      raise NonFiniteLossError(
          f"The {network} loss or parameters are not finite at step {step} ({what}). The "
          f"run stopped; the last good checkpoint is kept. Lower the learning rate or "
          f"raise loss.ma_gp_weight, then resume.")
  pending.clear()


def _host_metrics(device_metrics: dict[str, Any]) -> dict[str, float]:
  return {k: float(v) for k, v in jax.device_get(device_metrics).items() if k != "finite"}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       devices: list[jax.Device] | None = None) -> dict[str, Any]:
  """Trains (or resumes) the run in ``workdir`` up to ``config.num_steps``.

  Args:
    config: the run config (see ``configs/base.py``).
    workdir: where config, tokenizer, checkpoints, samples and logs go.
    devices: devices of the data-parallel mesh; all devices of all hosts when None.

  Returns:
    A summary: final ``step``, last ``metrics``, ``images_per_second``, and
    ``stopped_by`` (a signal name) when the run was interrupted.
  """
  config_lib.validate(config)
  mesh = sharding.make_mesh(devices)
  sharding.check_batch_size(config.batch_size, mesh)
  workdir = os.path.abspath(workdir)
  checkpointer = checkpointing.Checkpointer(workdir, keep=config.keep_checkpoints)
  start_step = checkpointer.latest_step()
  if os.path.exists(os.path.join(workdir, run_lib.CONFIG_FILE)):
    saved = run_lib.load_config(workdir)
    run_lib.check_compatible(saved, config, workdir)
    if start_step is not None:
      run_lib.check_compatible(saved, config, workdir, keys=run_lib.RESUME_KEYS)
  run_lib.save_config(workdir, config)

  source = data.build_source(config, split="train")
  data_warning = run_lib.check_data_size(workdir, len(source))
  tokenizer = run_lib.prepare_tokenizer(config, workdir, source)
  models, pretrained_text = run_lib.build_gan(
      config, tokenizer, pack_captions=run_lib.packs_captions(mesh.devices.size))

  init_key, step_key, sample_key = run_lib.run_keys(config)
  replicated = sharding.replicated(mesh)
  frozen_text = (None if pretrained_text is None
                 else sharding.replicate(pretrained_text, mesh))
  init_fn = jax.jit(lambda key, text: init_state(models, config, key, frozen_text=text),
                    out_shardings=replicated)
  abstract_state = jax.eval_shape(init_fn, init_key, frozen_text)

  dataset = data.dataset_for(config, source, tokenizer)
  iterator = iter(dataset)
  if start_step is None:
    state = init_fn(init_key, frozen_text)
    start_step = 0
  else:
    state = _restore_state(checkpointer, workdir, start_step, abstract_state,
                           replicated, iterator, models, config)

  train_step = jax.jit(make_train_step(models, config, step_key),
                       in_shardings=(replicated, sharding.batch_sharded(mesh), replicated),
                       out_shardings=(replicated, replicated), donate_argnums=(0,))
  sampler = _SampleGrid(models, config, source, tokenizer, sample_key, mesh, workdir,
                        frozen_text)

  monitor = Monitor(workdir, start_step=start_step, num_steps=config.num_steps,
                    batch_size=config.batch_size, log_every=config.log_every,
                    progress_bar=config.progress_bar)
  monitor.info(f"jaxgan: {jax.device_count()} devices ({jax.devices()[0].platform}), "
               f"{jax.process_count()} hosts, workdir {workdir}, "
               f"{'resuming at step ' + str(start_step) if start_step else 'new run'}")
  for warning in (data_warning, config_lib.swap_rows_warning(config, mesh.size)):
    if warning:
      monitor.info(f"warning: {warning}")
  stop = _StopRequest()
  step, metrics = start_step, {}
  last_saved = start_step
  # Steps run ahead of the host: metrics are fetched only on log, sample and
  # checkpoint steps (and on a stop), with the NaN flags of every step since.
  unchecked: list[tuple[int, dict[str, Any]]] = []
  try:
    with stop.installed():
      while step < config.num_steps:
        local_batch = next(iterator)
        skipped = int(np.sum(local_batch.pop("skipped")))
        batch = sharding.shard_batch(local_batch, mesh)
        first = step == start_step
        started = time.perf_counter()
        state, device_metrics = train_step(state, batch, frozen_text)
        step += 1
        if first:  # compiling (or reading the compilation cache) dominates it
          jax.block_until_ready(device_metrics)
          monitor.info(f"first step, compiling or reading the compilation cache included: "
                       f"{time.perf_counter() - started:.1f} s")
        unchecked.append((step, device_metrics))
        if skipped:
          monitor.count_skipped(step, skipped)
        sample_now = step % config.sample_every == 0 or step == config.num_steps
        save_now = step % config.checkpoint_every == 0 or step == config.num_steps
        if sample_now or save_now or step % config.log_every == 0:
          _check_finite(unchecked)
          metrics = _host_metrics(device_metrics)
          monitor.step(step, metrics)
        else:
          monitor.step(step, None)
        if sample_now:
          sampler.write(state, step, monitor)
        if save_now:
          checkpointer.save(step, state, iterator)
          last_saved = step
          if config.eval_every and step % config.eval_every == 0:
            checkpointer.wait_until_finished()
            _evaluate(workdir, step, config, monitor)
        if stop.requested():
          _check_finite(unchecked)
          metrics = _host_metrics(device_metrics)
          if last_saved != step:
            checkpointer.save(step, state, iterator)
            last_saved = step
          monitor.info(f"{stop.signal_name}: saved a checkpoint at step {step}; exiting.")
          break
  finally:
    checkpointer.close()
    monitor.close()
  return {"step": step, "metrics": metrics,
          "images_per_second": monitor.images_per_second,
          "stopped_by": stop.signal_name}


def _evaluate(workdir: str, step: int, config, monitor: Monitor) -> None:
  """Runs evaluate.py's metrics on the checkpoint just written; logs them."""
  if jax.process_count() > 1:
    monitor.info("eval_every: in-training evaluation runs on single-host runs only; "
                 "run evaluate.py on the checkpoints instead.")
    return
  from jaxgan import metrics  # pylint: disable=g-import-not-at-top
  result = metrics.evaluate_run(workdir, step=step, num_prompts=config.eval_prompts,
                                log=monitor.info)
  # Metrics only: the sampler's settings (truncation) are not curves.
  monitor.scalars({f"eval/{k}": v for k, v in result.items()
                   if isinstance(v, float) and math.isfinite(v) and k != "truncation"}, step)
  monitor.info(f"step {step} evaluation: all correct {result['align/train/all_correct']:.3f} "
               f"(train), {result['align/holdout/all_correct']:.3f} (holdout)")


class _SampleGrid:
  """A grid of fixed prompts with fixed noise from the EMA generator, every N steps.

  Fixing both makes grids of different steps directly comparable by eye.
  """

  def __init__(self, models, config, source, tokenizer, key, mesh, workdir, frozen_text):
    self._frozen_text = frozen_text
    count = config.num_sample_prompts
    self._prompts = list(data.fixed_captions(source, count))
    ids, mask = tokenizer.encode(self._prompts)
    replicated = sharding.replicated(mesh)
    self._ids = jax.device_put(jnp.asarray(ids), replicated)
    self._mask = jax.device_put(jnp.asarray(mask), replicated)
    self._z = jax.device_put(jax.random.normal(key, (count, models.z_dim)), replicated)
    self._generate = jax.jit(make_generate_fn(models), out_shardings=replicated)
    self._directory = os.path.join(workdir, "samples")
    self._is_chief = jax.process_index() == 0
    if self._is_chief:
      os.makedirs(self._directory, exist_ok=True)
      with open(os.path.join(self._directory, "prompts.txt"), "w") as f:
        f.write("\n".join(self._prompts) + "\n")

  def write(self, state, step: int, monitor: Monitor) -> None:
    images = self._generate(state.generator_ema, state.generator_state,
                            state.text_encoder, self._frozen_text, self._z, self._ids,
                            self._mask)
    grid = image_utils.make_grid(image_utils.to_uint8(np.asarray(jax.device_get(images))))
    if self._is_chief:
      image_utils.save_image(grid, os.path.join(self._directory, f"step_{step:07d}.png"))
      monitor.images("samples/ema", grid, step)

