"""Orbax checkpoints of the training state and the input iterator, with auto-resume.

A checkpoint is one step directory under ``workdir/checkpoints`` holding two
items: ``state`` (the :class:`TrainState` pytree) and ``data`` (the grain
iterator's position, one small JSON per host). Orbax writes each step into a
temporary directory and renames it when complete, so an interrupted save never
replaces the last good checkpoint.
"""

from __future__ import annotations

import os
import re
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

# The run directory's layout lives in jaxgan.run, which sampling reads without
# the trainer; re-exported here for the loop.
from jaxgan.run import abstract_like, checkpoint_dir  # pylint: disable=unused-import


class Checkpointer:
  """Saves every N steps and on request, keeps the last K, restores the latest."""

  def __init__(self, workdir: str, *, keep: int, create: bool = True):
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create)
    self._manager = ocp.CheckpointManager(checkpoint_dir(workdir), options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, data_iterator: Any = None) -> None:
    items = {"state": ocp.args.StandardSave(state)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    self._manager.save(step, args=ocp.args.Composite(**items), force=True)

  def restore(self, step: int, abstract_state: Any, data_iterator: Any = None) -> Any:
    """Restores ``state`` (shaped and sharded like ``abstract_state``) and the iterator.

    Args:
      step: the checkpoint to read.
      abstract_state: a pytree of ``jax.ShapeDtypeStruct`` with shardings.
      data_iterator: a fresh grain iterator whose position is set in place.

    Returns:
      The restored state.
    """
    items = {"state": ocp.args.StandardRestore(abstract_state)}
    if data_iterator is not None:
      self._check_host_count(step)
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    return restored["state"]

  def _check_host_count(self, step: int) -> None:
    """Raises ValueError if another number of hosts wrote the iterator positions.

    Each host saves its own input position (grain writes
    ``data/process_<i>-of-<n>.json``); with another host count the data would
    be split differently, so the run cannot continue where it stopped.
    """
    directory = os.path.join(str(self._manager.directory), str(step), "data")
    counts = set()
    for name in os.listdir(directory) if os.path.isdir(directory) else ():
      match = re.fullmatch(r"process_\d+-of-(\d+)\.json", name)
      if match:
        counts.add(int(match.group(1)))
    hosts = jax.process_count()
    if counts and counts != {hosts}:
      raise ValueError(
          f"the checkpoint at step {step} in {str(self._manager.directory)!r} was written "
          f"by {', '.join(map(str, sorted(counts)))} host(s) and this run has {hosts}: "
          f"the input pipeline's position is per host. Resume with the same number of "
          f"hosts, or start a new --workdir.")

  def wait_until_finished(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

