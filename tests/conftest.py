"""Test set-up: 8 fake CPU devices (so sharding tests run anywhere) and fast compiles."""

import atexit
import os
import shutil
import tempfile

# Must be set before JAX initialises its backends.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# JAX's persistent compilation cache, which the entry points turn on: for the
# whole test session (this process and the train.py subprocesses) in a
# temporary directory, removed at exit, never the user's. JAX reads it when
# imported.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxgan_tests_jax_cache_")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)

import jax  # noqa: E402

# Compile time dominates the tiny test models; the numbers stay the same.
jax.config.update("jax_disable_most_optimizations", True)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """One 4-step run of configs/tiny.py on 2 devices, shared by the tests that only read it."""
  from configs import tiny  # pylint: disable=g-import-not-at-top
  from jaxgan.train import train_and_evaluate  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  config.num_steps = 4
  config.checkpoint_every = 4
  config.sample_every = 4
  workdir = str(tmp_path_factory.mktemp("tiny_run") / "run")
  train_and_evaluate(config, workdir, devices=jax.devices()[:2])
  return workdir
