"""What the user sees while training: a progress bar, log lines, TensorBoard."""

from __future__ import annotations

import logging
import os
import time
from typing import Mapping

import jax
import numpy as np
import tqdm

log = logging.getLogger("jaxgan")


class Monitor:
  """Progress bar (step, img/s, ETA, losses), periodic log lines and TensorBoard.

  Only process 0 writes; other hosts keep quiet.
  """

  def __init__(self, workdir: str, *, start_step: int, num_steps: int,
               batch_size: int, log_every: int, progress_bar: bool):
    self._batch_size = batch_size
    self._log_every = log_every
    self._is_chief = jax.process_index() == 0
    self._last_time = time.perf_counter()
    self._last_step = start_step
    self._img_per_s = float("nan")
    self._skipped = 0
    self._writer = None
    self._bar = None
    if self._is_chief:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._writer = SummaryWriter(os.path.join(workdir, "tensorboard"))
      if progress_bar:
        self._bar = tqdm.tqdm(total=num_steps, initial=start_step, unit="step",
                              dynamic_ncols=True)

  @property
  def images_per_second(self) -> float:
    return self._img_per_s

  def step(self, step: int, metrics: Mapping[str, float] | None) -> None:
    """Called after every dispatched step.

    Args:
      step: the step just dispatched.
      metrics: its host-side scalar metrics; None on steps whose metrics the
        loop did not fetch (it fetches them on every log step), so the device
        is not waited for.
    """
    if not self._is_chief:
      return
    logs = metrics is not None and step % self._log_every == 0
    if logs:
      now = time.perf_counter()
      self._img_per_s = (step - self._last_step) * self._batch_size / (now - self._last_time)
      self._last_time, self._last_step = now, step
    if self._bar is not None:
      self._bar.update(step - self._bar.n)
      if metrics is not None:
        # The rate is measured over log intervals: none yet before the first.
        rate = {} if np.isnan(self._img_per_s) else {"img_s": f"{self._img_per_s:.1f}"}
        self._bar.set_postfix(d=f"{metrics['d_loss']:.3f}", g=f"{metrics['g_loss']:.3f}",
                              **rate, refresh=False)
    if logs:
      for name, value in metrics.items():
        self._writer.add_scalar(f"train/{name}", value, step)
      self._writer.add_scalar("train/images_per_second", self._img_per_s, step)
      shown = " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
      message = f"step {step}: {self._img_per_s:.1f} img/s {shown}"
      if self._bar is not None:
        self._bar.write(message)
      else:
        log.info(message)

  def count_skipped(self, step: int, count: int) -> None:
    """Unreadable images the input pipeline skipped (on this host) before this step's batch."""
    self._skipped += count
    if self._is_chief:
      self._writer.add_scalar("data/skipped", self._skipped, step)
      self.info(f"step {step}: skipped {count} unreadable image(s), {self._skipped} "
                f"since the run (re)started; see the warnings above for the files.")

  def scalars(self, values: Mapping[str, float], step: int) -> None:
    if self._is_chief:
      for name, value in values.items():
        self._writer.add_scalar(name, value, step)

  def images(self, tag: str, grid: np.ndarray, step: int) -> None:
    if self._is_chief:
      self._writer.add_image(tag, grid, step, dataformats="HWC")

  def info(self, message: str) -> None:
    if not self._is_chief:
      return
    if self._bar is not None:
      self._bar.write(message)
    else:
      log.info(message)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
    if self._writer is not None:
      self._writer.close()
