"""The entry points' default XLA flags never override the user's."""

from jaxgan import xla_flags


def test_defaults_are_set_only_when_the_user_set_none(monkeypatch):
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  assert xla_flags.set_default_cpu_flags("--xla_cpu_use_xnnpack=false")
  assert xla_flags.os.environ["XLA_FLAGS"] == "--xla_cpu_use_xnnpack=false"

  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
  assert not xla_flags.set_default_cpu_flags()
  assert xla_flags.os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2"

  # An empty XLA_FLAGS is a choice too: no flags at all.
  monkeypatch.setenv("XLA_FLAGS", "")
  assert not xla_flags.set_default_cpu_flags()
  assert xla_flags.os.environ["XLA_FLAGS"] == ""
