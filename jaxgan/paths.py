"""Where jaxgan keeps what it computes once and reuses across runs.

``$JAXGAN_CACHE_DIR``, default ``~/.cache/jaxgan``: trained shapes probes,
FID reference statistics, and (under ``jax/``) JAX's compilation cache.
Imports nothing heavy: entry points read it before JAX starts.
"""

from __future__ import annotations

import os

CACHE_ENV = "JAXGAN_CACHE_DIR"


def cache_dir() -> str:
  """``$JAXGAN_CACHE_DIR`` if set, else ``~/.cache/jaxgan``."""
  return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "jaxgan")
