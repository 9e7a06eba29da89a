"""Two real processes as two hosts on this machine (CPU collectives through gloo).

Launched exactly as README's "Several devices and hosts" says: ``train.py`` with
``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxgan import sampling, sharding

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = ["a small red circle in the top left", "a blue square"]
# Bounds the wait for a dead host in the test; train.py's default is 60 s.
HEARTBEAT_S = 10


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(workdir, num_steps, tmp_path, tag):
  """Starts both hosts; returns their Popen objects and log paths."""
  port = _free_port()
  procs, logs = [], []
  for i in range(2):
    env = dict(os.environ,
               JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
               JAX_PROCESS_ID=str(i), JAX_PLATFORMS="cpu",
               # One CPU device per host: the two-host mesh has two devices.
               XLA_FLAGS="--xla_force_host_platform_device_count=1",
               JAX_DISABLE_MOST_OPTIMIZATIONS="1",
               JAXGAN_HEARTBEAT_TIMEOUT=str(HEARTBEAT_S), PYTHONPATH=REPO)
    log = tmp_path / f"{tag}_host{i}.log"
    logs.append(log)
    procs.append(subprocess.Popen(
        [sys.executable, os.path.join(REPO, "train.py"), "--config",
         os.path.join(REPO, "configs/tiny.py"), "--workdir", str(workdir),
         f"--config.num_steps={num_steps}"],
        cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT))
  return procs, logs


def _train(workdir, num_steps, tmp_path, tag):
  procs, logs = _launch(workdir, num_steps, tmp_path, tag)
  for proc, log in zip(procs, logs):
    assert proc.wait(timeout=1200) == 0, log.read_text()[-3000:]
  return [log.read_text() for log in logs]


def _params(workdir):
  pipe = sampling.load_pipeline(str(workdir), devices=jax.devices()[:1])
  return pipe, jax.device_get(pipe.params["generator_ema"])


@pytest.mark.slow
def test_two_hosts_resume_and_survive_a_dead_host(tmp_path):
  run = tmp_path / "run"
  _train(run, 10, tmp_path, "first")
  data_dir = run / "checkpoints" / "10" / "data"
  assert {"process_0-of-2.json", "process_1-of-2.json"} <= set(os.listdir(data_dir))

  # Host 1 dies while the run continues past 10: host 0 must stop, not hang.
  procs, logs = _launch(run, 20, tmp_path, "killed")
  deadline = time.monotonic() + 900
  while "resuming at step 10" not in logs[0].read_text():
    assert time.monotonic() < deadline and procs[0].poll() is None, logs[0].read_text()
    time.sleep(1)
  procs[1].send_signal(signal.SIGKILL)
  killed_at = time.monotonic()
  rc = procs[0].wait(timeout=HEARTBEAT_S * 6 + 120)
  waited = time.monotonic() - killed_at
  survivor = logs[0].read_text()
  print(f"host 0 stopped {waited:.0f} s after host 1 died, rc {rc}:\n{survivor[-1500:]}")
  assert rc != 0
  # JAX's coordination service ends the survivor with a message naming the cause.
  assert "another task died" in survivor
  # Nothing checkpointed is lost: step 10 is intact and the run resumes from it.
  assert (run / "checkpoints" / "10" / "state").is_dir()

  outputs = _train(run, 20, tmp_path, "resumed")
  assert "resuming at step" in outputs[0]
  resumed_pipe, resumed = _params(run)
  assert resumed_pipe.step == 20

  # The same 20 steps in one process with two devices and the same global
  # batch, never interrupted: the two hosts trained exactly what one host
  # would, and the resumed run continued exactly (float rounding apart: the
  # cross-host all-reduce adds in another order).
  straight = tmp_path / "straight"
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO,
             XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_DISABLE_MOST_OPTIMIZATIONS="1")
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID",
               "JAX_COMPILATION_CACHE_DIR"):
    env.pop(name, None)
  # train.py's default compilation cache, in jaxgan's cache directory.
  env["JAXGAN_CACHE_DIR"] = str(tmp_path / "cache")
  # Stored whatever its compile time (by default only programs over 1 s are).
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  single = subprocess.run(
      [sys.executable, os.path.join(REPO, "train.py"), "--config",
       os.path.join(REPO, "configs/tiny.py"), "--workdir", str(straight),
       "--config.num_steps=20"], cwd=REPO, env=env, capture_output=True, text=True,
      timeout=1200)
  assert single.returncode == 0, single.stderr[-3000:]
  cached = os.listdir(tmp_path / "cache" / "jax")
  assert any(name.startswith("jit_train_step-") for name in cached), cached
  straight_pipe, reference = _params(straight)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
               resumed, reference)
  np.testing.assert_allclose(resumed_pipe.generate(PROMPTS, 2, seed=3),
                             straight_pipe.generate(PROMPTS, 2, seed=3), atol=1e-4)


@pytest.mark.parametrize("env, message", [
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"}, "JAX_PROCESS_ID=2 must be below"),
    ({"JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"}, "JAX_NUM_PROCESSES='two'"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0", "JAXGAN_HEARTBEAT_TIMEOUT": "0"},
     "JAXGAN_HEARTBEAT_TIMEOUT='0' must be an integer >= 1"),
])
def test_bad_launch_variables_are_named(monkeypatch, env, message):
  # Checked before jax.distributed.initialize, which would wait for the others.
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", f"127.0.0.1:{_free_port()}")
  for name, value in env.items():
    monkeypatch.setenv(name, value)
  with pytest.raises(ValueError, match=message):
    sharding.maybe_initialize_distributed()
