"""Default XLA flags for the CPU backend, set before JAX initialises.

Imports nothing heavy: entry points call :func:`set_default_cpu_flags` before
their first ``import jax`` (XLA reads ``XLA_FLAGS`` once, when the backend
starts). A user's own ``XLA_FLAGS`` always wins: nothing is set then.
"""

from __future__ import annotations

import os

# oneDNN takes XLA:CPU's convolutions and matmuls through its custom call
# (measured in benchmarks/README.md, "XLA CPU flags"); the flags that would
# route them to XNNPACK/YNNPACK instead are turned off so oneDNN gets them.
ONEDNN_CPU_FLAGS = (
    "--xla_cpu_experimental_onednn_custom_call=true "
    "--xla_cpu_use_onednn=false "
    "--xla_cpu_experimental_ynn_fusion_type=invalid "
    "--xla_cpu_use_xnnpack=false")

DEFAULT_CPU_FLAGS = ONEDNN_CPU_FLAGS


def set_default_cpu_flags(flags: str = DEFAULT_CPU_FLAGS) -> bool:
  """Sets ``XLA_FLAGS`` to ``flags`` unless the user has set it.

  The flags only concern XLA's CPU backend; on GPU/TPU they change nothing.

  Args:
    flags: the flags to set.

  Returns:
    Whether they were set (False: ``XLA_FLAGS`` was already set, or empty
    ``flags``).
  """
  if "XLA_FLAGS" in os.environ or not flags:
    return False
  os.environ["XLA_FLAGS"] = flags
  return True
