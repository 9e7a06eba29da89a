"""Orbax checkpoints of the training state and the input iterator, with auto-resume.

A checkpoint is one step directory under ``workdir/checkpoints`` holding two
items: ``state`` (the :class:`TrainState` pytree) and ``data`` (the grain
iterator's position, one small JSON per host). Orbax writes each step into a
temporary directory and renames it when complete, so an interrupted save never
replaces the last good checkpoint.
"""

from __future__ import annotations

import os
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "checkpoints")


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
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    return restored["state"]

  def wait_until_finished(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def abstract_like(tree: Any, sharding: jax.sharding.Sharding) -> Any:
  """Shapes and dtypes of ``tree`` with ``sharding``: the restore target."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
