"""Test set-up: 8 fake CPU devices (so sharding tests run anywhere) and fast compiles."""

import os
import tempfile

# Must be set before JAX initialises its backends.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The entry points' compilation cache (train.py run as a subprocess), kept out
# of the user's cache directory; JAX reads it when imported.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      tempfile.mkdtemp(prefix="jaxgan_tests_jax_cache_"))

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
