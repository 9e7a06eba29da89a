"""Data parallelism over every device of every host with ``jit`` + ``NamedSharding``.

One mesh axis, ``data``. The training state is replicated; batches are split
along their leading axis. Each host loads only its local rows; the global batch
is assembled with ``jax.make_array_from_process_local_data``, so the same code
runs on one CPU, one GPU, or all accelerators of several hosts.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


# How long (seconds) a host may go silent before the others give up on it:
# a host that dies then stops the run within about this time instead of
# leaving the others waiting in a collective. JAX's default is 100 s.
HEARTBEAT_TIMEOUT_ENV = "JAXGAN_HEARTBEAT_TIMEOUT"
DEFAULT_HEARTBEAT_TIMEOUT = 60


def maybe_initialize_distributed() -> None:
  """Joins a multi-host run when the environment describes one.

  ``jax.distributed.initialize()`` finds the coordinator address, process
  count and id in the cluster environment (SLURM, Cloud TPU), or they come from
  the ``JAX_COORDINATOR_ADDRESS``/``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID``
  variables. On a single machine nothing describes a cluster and we stay local.
  Processes on CPU exchange arrays through gloo. A host silent for
  ``$JAXGAN_HEARTBEAT_TIMEOUT`` seconds (default 60) is declared dead and the
  others stop with an error.
  """
  import os  # pylint: disable=g-import-not-at-top
  explicit = ("JAX_COORDINATOR_ADDRESS", "TPU_WORKER_HOSTNAMES",
              "MEGASCALE_COORDINATOR_ADDRESS")
  # A SLURM allocation with one task (sbatch without srun) is a single host.
  slurm_tasks = int(os.environ.get("SLURM_NTASKS", "1") or 1)
  if slurm_tasks > 1 or any(os.environ.get(name) for name in explicit):
    # Only CPU backends read it; without a cross-process implementation a
    # CPU computation spanning processes fails.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    timeout = _env_int(HEARTBEAT_TIMEOUT_ENV, DEFAULT_HEARTBEAT_TIMEOUT, minimum=1)
    # jax reads only the coordinator address from the environment; the count
    # and id are ours to pass (cluster auto-detection fills them otherwise).
    num_processes = _env_int("JAX_NUM_PROCESSES", None, minimum=1)
    process_id = _env_int("JAX_PROCESS_ID", None, minimum=0)
    if num_processes is not None and process_id is not None and process_id >= num_processes:
      raise ValueError(f"JAX_PROCESS_ID={process_id} must be below "
                       f"JAX_NUM_PROCESSES={num_processes}")
    jax.distributed.initialize(num_processes=num_processes, process_id=process_id,
                               heartbeat_timeout_seconds=timeout)


def _env_int(name: str, default: int | None, *, minimum: int) -> int | None:
  """An integer environment variable, or ``default`` when unset or empty."""
  import os  # pylint: disable=g-import-not-at-top
  raw = os.environ.get(name, "")
  if not raw:
    return default
  try:
    value = int(raw)
  except ValueError:
    value = minimum - 1
  if value < minimum:
    raise ValueError(f"{name}={raw!r} must be an integer >= {minimum}")
  return value


def make_mesh(devices: list[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over all devices (of all hosts) on the ``data`` axis."""
  if devices is None:
    # jax.make_mesh orders devices so each host's are contiguous on the axis.
    # Auto axis: shardings are propagated by the compiler, not typed.
    return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                         axis_types=(jax.sharding.AxisType.Auto,))
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(global_batch_size: int, mesh: Mesh) -> None:
  if global_batch_size % mesh.size:
    raise ValueError(f"batch_size={global_batch_size} must be divisible by the "
                     f"number of devices ({mesh.size}).")


def shard_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Joins every host's local rows into global arrays split over ``data``."""
  sharding = batch_sharded(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
      local_batch)


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places a host-identical pytree on every device."""
  return jax.device_put(tree, replicated(mesh))
