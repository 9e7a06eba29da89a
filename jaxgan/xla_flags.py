"""Defaults set before JAX initialises: XLA's CPU flags, the compilation cache,
and huge pages for the memory XLA allocates.

Imports nothing heavy: entry points call :func:`set_default_cpu_flags` (and
:func:`set_default_compilation_cache`) before their first ``import jax``: XLA
reads ``XLA_FLAGS`` once, when the backend starts, and JAX reads
``JAX_COMPILATION_CACHE_DIR`` when it is imported. Scripts run as programs
first call :func:`restart_with_huge_pages` (``GLIBC_TUNABLES`` is read when
a process starts). A user's own setting of any of these variables always
wins, an empty one included (which turns it off).
"""

from __future__ import annotations

import os
import platform
import sys

from jaxgan import paths

# oneDNN takes XLA:CPU's convolutions and matmuls through its custom call
# (measured in benchmarks/README.md, "XLA CPU flags"); the flags that would
# route them to XNNPACK/YNNPACK instead are turned off so oneDNN gets them.
# An empty YNN fusion list compiles the same step as the value "invalid" did
# (the same optimised HLO, checked) without XLA logging "Unsupported fusion
# type: 0" for every fusion it considers.
ONEDNN_CPU_FLAGS = (
    "--xla_cpu_experimental_onednn_custom_call=true "
    "--xla_cpu_use_onednn=false "
    "--xla_cpu_experimental_ynn_fusion_type= "
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


# XLA's CPU runtime allocates each run's scratch memory with malloc (708 MB
# for the 64x64 training step), which glibc serves with mmap and gives back
# with munmap when the run ends, from the threads' arenas whatever its mmap
# settings: every step then faults all of it in again 4 KiB at a time
# (174,000 minor faults and 0.42 s of kernel time per step on a 2-core CPU).
# glibc >= 2.35 can mark the memory it maps for transparent huge pages, which
# the kernel then faults in 2 MiB at a time (1,064-1,856 faults, 0.06-0.11 s) and
# maps with fewer TLB entries: the step ran about 20% faster (medians of six
# measurements, 23.8 against 19.6 img/s; benchmarks/README.md, "Huge pages").
HUGE_PAGE_TUNABLES = "glibc.malloc.hugetlb=1"
_THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled"


def huge_page_tunables() -> str | None:
  """The ``GLIBC_TUNABLES`` value :func:`restart_with_huge_pages` would set.

  None where it would change nothing or is not ours to set: the user set
  ``GLIBC_TUNABLES`` (empty included), the C library is not glibc >= 2.35,
  or the kernel's transparent huge pages are not in ``madvise`` mode (with
  ``always`` every large mapping has them already; with ``never`` none can).
  """
  if "GLIBC_TUNABLES" in os.environ or not sys.platform.startswith("linux"):
    return None
  libc, version = platform.libc_ver()
  try:
    if libc != "glibc" or tuple(int(v) for v in version.split(".")[:2]) < (2, 35):
      return None
    with open(_THP_MODE, encoding="ascii") as f:
      if "[madvise]" not in f.read():
        return None
  except (OSError, ValueError):
    return None
  return HUGE_PAGE_TUNABLES


def restart_with_huge_pages() -> None:
  """Re-executes this program with glibc's malloc asking for huge pages.

  Call it first thing in a script's ``if __name__ == "__main__":`` (never
  where the script may be imported: it replaces the running process). The
  process keeps its id, arguments, interpreter options and environment, plus
  ``GLIBC_TUNABLES`` (:data:`HUGE_PAGE_TUNABLES`), which also stops the new
  process from doing this again. Does nothing where
  :func:`huge_page_tunables` says so, or where the program is not a file
  (``python -c``, standard input). ``GLIBC_TUNABLES=`` (empty) turns it off.
  """
  tunables = huge_page_tunables()
  if tunables is None or not os.path.isfile(sys.argv[0]):
    return
  os.environ["GLIBC_TUNABLES"] = tunables
  sys.stdout.flush()
  sys.stderr.flush()
  try:
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
  except OSError:
    del os.environ["GLIBC_TUNABLES"]  # carry on without


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
