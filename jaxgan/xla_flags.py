"""Defaults set before JAX initialises: XLA's CPU flags, the compilation cache.

Imports nothing heavy: entry points call :func:`set_default_cpu_flags` (and
:func:`set_default_compilation_cache`) before their first ``import jax``: XLA
reads ``XLA_FLAGS`` once, when the backend starts, and JAX reads
``JAX_COMPILATION_CACHE_DIR`` when it is imported. A user's own setting of
either variable always wins, an empty one included (which turns it off).
"""

from __future__ import annotations

import os

from jaxgan import paths

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


def set_entry_point_defaults() -> None:
  """What ``train.py``, ``sample.py``, ``evaluate.py`` and the scripts set
  before JAX starts: the CPU flags and the compilation cache (benchmarks take
  the flags only, so that they time compiles)."""
  set_default_cpu_flags()
  set_default_compilation_cache()


def default_compilation_cache_dir() -> str:
  """``jax/`` in jaxgan's cache directory (``~/.cache/jaxgan/jax`` by default)."""
  return os.path.join(paths.cache_dir(), "jax")


def set_default_compilation_cache(directory: str | None = None) -> bool:
  """Turns on JAX's persistent compilation cache unless the user has set it.

  The training step takes 20-30 s to compile on a 2-core CPU; with the cache,
  a resumed run, a second run of the same config, ``sample.py`` and
  ``evaluate.py`` load the compiled programs from disk instead (JAX keys them
  by program, JAX/XLA version, flags and device kind, so a change to any of
  them compiles afresh). Programs that compile in under a second are not
  stored. The directory grows with every new program (no size limit is set):
  delete it to clear it, also if a process killed while writing left an entry
  JAX cannot read (it then warns and compiles afresh every time).
  ``JAX_COMPILATION_CACHE_DIR=`` (empty) turns the cache off.

  Args:
    directory: where to keep the cache; None: :func:`default_compilation_cache_dir`.

  Returns:
    Whether it was set (False: ``JAX_COMPILATION_CACHE_DIR`` was already set).
  """
  if "JAX_COMPILATION_CACHE_DIR" in os.environ:
    if not os.environ["JAX_COMPILATION_CACHE_DIR"]:
      # JAX skips an empty directory for compiled programs but still counts
      # the cache as on for XLA's own (GPU autotuning) caches: off means off.
      os.environ.setdefault("JAX_ENABLE_COMPILATION_CACHE", "false")
    return False
  os.environ["JAX_COMPILATION_CACHE_DIR"] = directory or default_compilation_cache_dir()
  return True
