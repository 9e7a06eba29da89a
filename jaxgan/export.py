"""Hands a trained run over as one directory: params, tokenizer, config, StableHLO.

    python export.py --workdir runs/base --out model/

The directory holds:
  * ``config.json`` and the tokenizer (``tokenizer.json``, plus the Hugging
    Face tokenizer file for a pretrained encoder), as in a run directory;
  * ``params.msgpack``: the EMA generator (``generator_ema``), its non-param
    collections (``generator_state``) and the learned text params
    (``text_encoder``: a learned encoder's, or a frozen encoder's adapter's);
  * ``generate.stablehlo``: a :mod:`jax.export` serialisation of
    ``(ids [B, L] int32, mask [B, L] bool, z [B, z_dim] float32) -> images
    [B, H, W, 3] float32 in [-1, 1]`` with every weight inside (a frozen
    encoder's too) and a symbolic batch size ``B``. It runs with JAX alone::

        exported = jax.export.deserialize(open("model/generate.stablehlo", "rb").read())
        images = exported.call(ids, mask, z)

  * ``export.json``: what the directory holds, the source run and step, and a
    frozen text encoder's files as SHA-256 checksums with the package they come
    from (the weights are not copied; :func:`jaxgan.load_pipeline` checks them).

``jaxgan.load_pipeline("model/")`` loads the directory like a run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp

from jaxgan import run as run_lib
from jaxgan import sampling
from jaxgan import text as text_lib
from jaxgan.models.gan import make_generate_fn

FUNCTION_FILE = "generate.stablehlo"
# The platforms the StableHLO function is lowered for; jax.export picks the
# caller's at run time.
PLATFORMS = ("cpu", "cuda", "tpu")


def export_generate_fn(pipe: sampling.Pipeline) -> jax.export.Exported:
  """``(ids, mask, z) -> images`` of a loaded run, every weight closed over.

  The batch size is symbolic, so one serialisation serves any batch.
  """
  generate = make_generate_fn(pipe.models)
  params = jax.device_get(pipe.params)

  def tokens_and_noise_to_images(ids, mask, z):
    return generate(params["generator_ema"], params["generator_state"],
                    params["text_encoder"], params["frozen_text"], z, ids, mask)

  batch, = jax.export.symbolic_shape("b")
  length = pipe.config.text.max_length
  specs = (jax.ShapeDtypeStruct((batch, length), jnp.int32),
           jax.ShapeDtypeStruct((batch, length), jnp.bool_),
           jax.ShapeDtypeStruct((batch, pipe.models.z_dim), jnp.float32))
  return jax.export.export(jax.jit(tokens_and_noise_to_images),
                           platforms=PLATFORMS)(*specs)


def _check_out(out: str) -> None:
  if os.path.isfile(out) or (os.path.isdir(out) and os.listdir(out)):
    raise FileExistsError(f"--out {out!r} already exists and is not empty; "
                          f"give a new or empty directory")


def export_run(workdir: str, out: str, step: int | None = None) -> dict[str, Any]:
  """Writes the run's model to ``out`` (see the module docstring).

  Args:
    workdir: a trained run.
    out: a new (or empty) directory; written in full or not at all.
    step: the checkpoint to export; the latest when None.

  Returns:
    The contents of ``export.json``.

  Raises:
    FileNotFoundError: not a run, or a run without a checkpoint.
    FileExistsError: ``out`` exists and is not empty.
    ValueError: ``step`` has no checkpoint.
  """
  _check_out(out)
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f"--workdir {workdir!r} does not exist")
  pipe = sampling.load_pipeline(workdir, step=step, devices=jax.local_devices()[:1])
  out = os.path.abspath(out)
  parent = os.path.dirname(out)
  os.makedirs(parent, exist_ok=True)
  # Written beside ``out`` and renamed when complete: a failed export leaves
  # nothing half-written.
  staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
  try:
    run_lib.save_config(staging, pipe.config)
    pipe.tokenizer.save(staging)
    saved = {k: jax.device_get(pipe.params[k]) for k in sampling.EXPORTED_KEYS}
    with open(os.path.join(staging, sampling.PARAMS_FILE), "wb") as f:
      f.write(flax.serialization.msgpack_serialize(saved))
    exported = export_generate_fn(pipe)
    with open(os.path.join(staging, FUNCTION_FILE), "wb") as f:
      f.write(exported.serialize())
    size = pipe.config.image_size
    manifest = {
        "format": sampling.EXPORT_FORMAT,
        "source_workdir": os.path.abspath(workdir),
        "step": pipe.step,
        "jax_version": jax.__version__,
        "function": {
            "file": FUNCTION_FILE,
            "platforms": list(PLATFORMS),
            "inputs": {"ids": ["B", pipe.config.text.max_length, "int32"],
                       "mask": ["B", pipe.config.text.max_length, "bool"],
                       "z": ["B", pipe.models.z_dim, "float32"]},
            "output": ["B", size, size, 3, "float32 in [-1, 1]"],
        },
        "params": {"file": sampling.PARAMS_FILE, "keys": list(sampling.EXPORTED_KEYS)},
        "frozen_text": (None if text_lib.is_trainable(pipe.config.text)
                        else text_lib.pretrained.describe_model_dir(
                            pipe.config.text.get("model_dir", "") or None)),
    }
    with open(os.path.join(staging, sampling.EXPORT_FILE), "w") as f:
      json.dump(manifest, f, indent=2)
    if os.path.isdir(out):
      os.rmdir(out)  # empty, checked above
    os.replace(staging, out)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return manifest


def load_function(directory: str) -> jax.export.Exported:
  """The exported ``(ids, mask, z) -> images`` function of an export directory."""
  with open(os.path.join(directory, FUNCTION_FILE), "rb") as f:
    return jax.export.deserialize(bytearray(f.read()))


__all__ = ["FUNCTION_FILE", "export_generate_fn", "export_run", "load_function"]
