"""The entry points' defaults (XLA flags, compilation cache, huge pages) never
override the user's."""

import os
import subprocess
import sys

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


_SCRIPT = """
import os, sys
sys.path.insert(0, {repo!r})
from jaxgan import xla_flags
print("start", os.environ.get("GLIBC_TUNABLES"), sys.argv[1:], flush=True)
if __name__ == "__main__":
  xla_flags.restart_with_huge_pages()
print("after", os.environ.get("GLIBC_TUNABLES"), os.getpid())
"""


def _run_script(tmp_path, env):
  script = tmp_path / "program.py"
  script.write_text(_SCRIPT.format(repo=os.path.dirname(os.path.dirname(__file__))))
  proc = subprocess.Popen([sys.executable, "-u", str(script), "--flag", "a b"], env=env,
                          stdout=subprocess.PIPE, text=True)
  out, _ = proc.communicate(timeout=60)
  assert proc.returncode == 0
  lines = out.splitlines()
  # Re-executed or not, it is the process that was started.
  assert lines[-1].split()[-1] == str(proc.pid)
  return lines


def test_restart_with_huge_pages_re_executes_once_with_the_same_arguments(monkeypatch, tmp_path):
  monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
  expected = xla_flags.huge_page_tunables()
  lines = _run_script(tmp_path, dict(os.environ))
  if expected is None:  # not glibc >= 2.35 with THP in madvise mode: nothing to do
    assert lines[0] == "start None ['--flag', 'a b']"
    assert lines[1].startswith("after None ")
    return
  assert expected == xla_flags.HUGE_PAGE_TUNABLES
  # The program ran from the start again, once, with its arguments and the tunables.
  assert lines[:2] == ["start None ['--flag', 'a b']",
                       f"start {expected} ['--flag', 'a b']"]
  assert lines[2].startswith(f"after {expected} ") and len(lines) == 3


def test_restart_leaves_the_users_glibc_tunables_alone(monkeypatch, tmp_path):
  for users in ("", "glibc.malloc.arena_max=2"):
    monkeypatch.setenv("GLIBC_TUNABLES", users)
    assert xla_flags.huge_page_tunables() is None
    lines = _run_script(tmp_path, dict(os.environ))
    assert lines[0] == f"start {users} ['--flag', 'a b']"
    assert lines[1].startswith(f"after {users} ") and len(lines) == 2
