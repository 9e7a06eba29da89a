"""Where the training step's time goes: a timed profile by op family.

    python benchmarks/profile_step.py                  # 64x64, nf 32, batch 32, bow
    python benchmarks/profile_step.py --image_size 32 --nf 16 --text minilm

Compiles the same step as ``train_throughput.py``, traces ``--steps`` steps
with ``jax.profiler`` and reads the per-op events of XLA's CPU runtime (one
per executed HLO instruction, named after it). Each instruction is put in a
family from the compiled HLO (convolutions by direction: forward, input
gradient, weight gradient; dots; fusions with and without a reduction;
copies and transposes) and in a part of the step from JAX's op names (G or D,
forward or backward, the MA-GP's second-order part, the rest). Prints the
seconds per step of each, and the largest single ops. Convolutions that
oneDNN or XLA's thread pool run finish after their events end, so their time
shows as wall time that no op accounts for, printed too. ``--trace_dir``
keeps the raw trace (open it in Perfetto or TensorBoard).

On an accelerator the runtime emits no such per-op events; use the trace in
TensorBoard's profile plugin there.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgan import xla_flags  # pylint: disable=wrong-import-position  (imports nothing heavy)

if __name__ == "__main__":
  xla_flags.restart_with_huge_pages()  # re-executes once (GLIBC_TUNABLES), as the entry points do
xla_flags.set_default_cpu_flags()  # before JAX starts its backend

import jax  # pylint: disable=wrong-import-position

import train_throughput  # pylint: disable=wrong-import-position  (benchmarks/ is sys.path[0])

# `%name = shape opcode(operands), attributes` in XLA's HLO text.
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*.*?\s([\w\-]+)\((.*)$")
_TARGET = re.compile(r'custom_call_target="([^"]+)"')
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_COMPUTATION = re.compile(r"^\s*(?:ENTRY\s+)?%?([\w.\-]+)\s*(?:\(.*\))?.*\{\s*$")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_COPY_OPS = {"parameter", "copy", "transpose", "bitcast", "reshape", "broadcast", "slice",
             "concatenate", "pad", "constant", "tuple", "get-tuple-element",
             "dynamic-slice", "dynamic-update-slice", "reverse"}


def conv_direction(op_name: str | None) -> str:
  """Forward, input-gradient or weight-gradient, from a convolution's op_name.

  JAX names a transposed (backward) op ``transpose(...)``. The weight
  gradients are the convolutions without an op_name: XLA's CPU compiler
  rewrites them (batch contracted, the activation's spatial extent as the
  window) and drops the metadata; on this step every one of them has a
  kernel-shaped output.
  """
  if op_name is None:
    return "conv weight grad"
  return "conv input grad" if "transpose(" in op_name else "conv forward"


def phase(op_name: str | None) -> str:
  """Which part of the step an op belongs to, from JAX's op_name."""
  if op_name is None:
    return "unattributed (XLA-made, mostly weight-gradient convs)"
  backward = op_name.count("transpose(")
  if "Generator" in op_name:
    return "G backward" if backward else "G forward"
  if "Discriminator" in op_name:
    return ("D forward", "D backward (first order)",
            "MA-GP second order")[min(backward, 2)]
  if "text" in op_name.lower() or "Encoder" in op_name or "Adapter" in op_name:
    return "text encoder"
  return "optimizers, EMA, losses, norms"


def classify_instructions(hlo_text: str) -> dict[str, tuple[str, str]]:
  """HLO instruction name -> (op family, phase) for every instruction."""
  bodies = {}  # computation name -> opcodes inside
  current = None
  lines = hlo_text.splitlines()
  for line in lines:
    header = _COMPUTATION.match(line)
    if header and "=" not in line.split("{")[0]:
      current = header.group(1)
      bodies[current] = set()
      continue
    match = _INSTRUCTION.match(line)
    if match and current is not None:
      bodies[current].add(match.group(2))
  result = {}
  for line in lines:
    match = _INSTRUCTION.match(line)
    if not match:
      continue
    name, opcode, rest = match.groups()
    op_name = _OP_NAME.search(rest)
    op_name = op_name.group(1) if op_name else None
    called = _CALLS.search(rest)
    body = bodies.get(called.group(1), set()) if called else set()
    if opcode == "convolution" or (opcode == "fusion" and "convolution" in body):
      family = conv_direction(op_name)
    elif opcode == "custom-call":
      target = _TARGET.search(rest)
      target = target.group(1) if target else "?"
      if "convolution" in target:
        family = conv_direction(op_name) + " (oneDNN)"
      elif "matmul" in target:
        family = "dot"
      else:
        family = f"custom-call {target}"
    elif opcode == "dot" or (opcode == "fusion" and "dot" in body):
      family = "dot"
    elif opcode in ("copy", "transpose") or (opcode == "fusion" and body <= _COPY_OPS):
      family = "copy/transpose"
    elif opcode in ("reduce", "reduce-window", "select-and-scatter") or (
        opcode == "fusion" and body & {"reduce", "reduce-window", "select-and-scatter"}):
      family = "fusion with reduce"
    elif opcode == "fusion":
      family = "elementwise fusion"
    else:
      family = "other: " + opcode
    result[name] = (family, phase(op_name))
  return result


def read_op_events(trace_dir: str) -> list[tuple[str, float]]:
  """(name, microseconds) of every complete event in the Perfetto trace."""
  paths = glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True)
  if not paths:
    raise FileNotFoundError(f"no perfetto_trace.json.gz under {trace_dir}")
  with gzip.open(sorted(paths)[-1]) as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  return [(e["name"], float(e.get("dur", 0.0))) for e in events if e.get("ph") == "X"]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--image_size", type=int, default=64)
  parser.add_argument("--nf", type=int, default=32)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--text", default="bow")
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--top", type=int, default=12, help="largest single ops to list")
  parser.add_argument("--trace_dir", default=None, help="keep the trace here")
  args = parser.parse_args()

  config = train_throughput.base.get_config()
  config.image_size, config.batch_size = args.image_size, args.batch_size
  config.model.nf, config.text.encoder = args.nf, args.text
  config.text.adapter = args.text == "minilm"
  train_throughput.use_dfgan_step(config)
  batches, _ = train_throughput.prepare_batches(config, 2)
  step = train_throughput.CompiledStep(config, batches)
  ops = classify_instructions(step.hlo_text())

  trace_dir = args.trace_dir or tempfile.mkdtemp(prefix="jaxgan_profile_")
  jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
  wall = step.run(args.steps)
  jax.profiler.stop_trace()

  per_family = collections.Counter()
  per_phase = collections.Counter()
  per_op = collections.Counter()
  for name, micros in read_op_events(trace_dir):
    if name not in ops:
      continue  # runtime and Python events, not HLO ops
    seconds = micros / 1e6 / args.steps
    family, part = ops[name]
    per_family[family] += seconds
    per_phase[part] += seconds
    per_op[name] += seconds
  traced = sum(per_family.values())
  wall_step = wall / args.steps
  # oneDNN's custom calls and the convolutions XLA hands to its thread pool
  # finish after their events end: their time shows only as wall time that no
  # op accounts for.
  untraced = max(wall_step - traced, 0.0)

  print(f"DF-GAN {args.image_size}x{args.image_size}, nf {args.nf}, batch "
        f"{args.batch_size}, text {args.text}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  print(f"step: {wall_step:.3f} s wall ({args.batch_size / wall_step:.1f} img/s while "
        f"tracing), ops traced: {traced:.3f} s per step, wall time no op accounts for "
        f"(oneDNN and thread-pool convolutions): {untraced:.3f} s")
  counts = collections.Counter(ops[n][0] for n in per_op)
  for title, table in (("op family", per_family), ("part of the step", per_phase)):
    print(f"\n{title:52s} {'s/step':>8s} {'share':>7s}")
    for key, seconds in table.most_common():
      suffix = f"  ({counts[key]} ops)" if table is per_family else ""
      print(f"{key:52s} {seconds:8.3f} {100 * seconds / traced:6.1f}%{suffix}")
  print("(shares of the traced op time; events of concurrent ops can overlap)")
  print("\nlargest ops (s/step):")
  for name, seconds in per_op.most_common(args.top):
    print(f"  {seconds:7.3f}  {ops[name][0]:24s} {ops[name][1]:28s} {name}")
  if args.trace_dir is None:
    print(f"\n(trace in {trace_dir})")


if __name__ == "__main__":
  main()
