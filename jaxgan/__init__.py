"""jaxgan: text-to-image GANs in JAX/Flax.

In a notebook::

    import jaxgan
    pipe = jaxgan.load_pipeline("runs/base")          # EMA generator, text encoder
    images = pipe.images(["a large red circle in the center on a black background"])

The modules (``jaxgan.Generator``, ``jaxgan.Discriminator``, the text encoders
in ``jaxgan.text``) are plain Flax linen modules for one's own training code.
The names below load on first use: ``import jaxgan.sampling`` brings in no
training code, ``import jaxgan`` nothing heavy at all.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "Discriminator": "jaxgan.models",
    "Generator": "jaxgan.models",
    "MLPDiscriminator": "jaxgan.models",
    "MLPGenerator": "jaxgan.models",
    "GanModels": "jaxgan.models",
    "Pipeline": "jaxgan.sampling",
    "load_pipeline": "jaxgan.sampling",
    "export_run": "jaxgan.export",
    "train_and_evaluate": "jaxgan.train",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module 'jaxgan' has no attribute {name!r}")
