"""The entry points' defaults (XLA flags, compilation cache) never override the user's."""

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


def test_compilation_cache_defaults_to_jaxgans_cache_directory(monkeypatch, tmp_path):
  monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
  monkeypatch.setenv("JAXGAN_CACHE_DIR", str(tmp_path))
  assert xla_flags.set_default_compilation_cache()
  assert xla_flags.os.environ["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "jax")

  monkeypatch.delenv("JAXGAN_CACHE_DIR")
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert xla_flags.default_compilation_cache_dir() == str(
      tmp_path / "home" / ".cache" / "jaxgan" / "jax")

  # The user's choice wins, an empty one (no cache at all) included.
  monkeypatch.delenv("JAX_ENABLE_COMPILATION_CACHE", raising=False)
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/elsewhere")
  assert not xla_flags.set_default_compilation_cache()
  assert xla_flags.os.environ["JAX_COMPILATION_CACHE_DIR"] == "/elsewhere"
  assert "JAX_ENABLE_COMPILATION_CACHE" not in xla_flags.os.environ
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "")
  assert not xla_flags.set_default_compilation_cache()
  assert xla_flags.os.environ["JAX_COMPILATION_CACHE_DIR"] == ""
  assert xla_flags.os.environ["JAX_ENABLE_COMPILATION_CACHE"] == "false"
