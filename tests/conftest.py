"""Test set-up: 8 fake CPU devices (so sharding tests run anywhere) and fast compiles."""

import os

# Must be set before JAX initialises its backends.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

# Compile time dominates the tiny test models; the numbers stay the same.
jax.config.update("jax_disable_most_optimizations", True)
