"""Training: state, step, checkpoints, loop.

The names below load on first use, so importing one submodule (say
``jaxgan.train.state``) does not start the whole loop and its input pipeline.
"""

from __future__ import annotations

import importlib

_LAZY = {"train_and_evaluate": "jaxgan.train.loop",
         "NonFiniteLossError": "jaxgan.train.loop"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module 'jaxgan.train' has no attribute {name!r}")
