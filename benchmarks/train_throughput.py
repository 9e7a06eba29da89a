"""Training throughput of one jitted DF-GAN step (D update + G update).

    python benchmarks/train_throughput.py                       # 64x64, nf 32, batch 32
    python benchmarks/train_throughput.py --image_size 32 --text minilm
    python benchmarks/train_throughput.py --image_size 32 --nf 16 --text minilm --contrastive  # configs/base.py
    python benchmarks/train_throughput.py --image_size 32 --nf 16 --text minilm --contrastive \
        --word_attention 64 --swap_weight 1 --no_baseline   # what each alignment option costs
    python benchmarks/train_throughput.py --image_size 32 --nf 16 --text minilm --contrastive \
        --swap_weight 1 --swap_rows 8 --no_baseline   # edits for a quarter of the batch
    python benchmarks/train_throughput.py --image_size 32 --nf 16 --text minilm --contrastive \
        --word_weight 0.1 --no_baseline   # D's caption-word head, either vocabulary

Prints img/s of the step (on batches prepared in advance), img/s of the input
pipeline alone, the first-step compile seconds, model FLOPs per image (XLA's
cost analysis) and, given ``--peak_tflops`` on an accelerator, the MFU; peak
memory, and the ratio
against the MLP GAN baseline at the same size and batch measured in the same run.
With ``--text minilm`` (adapter on, as in ``configs/base.py``) it also measures
MiniLM without the adapter, for the adapter's cost. With ``--word_attention``,
``--swap_weight`` or ``--word_weight`` it also measures the step without each
of them; with ``--swap_rows``, also with every example's edit.
"""

import argparse
import os
import resource
import sys
import time

# Run as `python benchmarks/train_throughput.py` from the repository root.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgan import xla_flags  # pylint: disable=wrong-import-position  (imports nothing heavy)

if __name__ == "__main__":
  xla_flags.restart_with_huge_pages()  # re-executes once (GLIBC_TUNABLES), as the entry points do
xla_flags.set_default_cpu_flags()  # before JAX starts its backend

import jax  # pylint: disable=wrong-import-position

from configs import base  # pylint: disable=g-import-not-at-top,wrong-import-position
from jaxgan import config as config_lib, data, run as run_lib, sharding, text
from jaxgan.train.state import init_state
from jaxgan.train.step import make_train_step


def _peak_host_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_device_mib() -> float | None:
  stats = jax.devices()[0].memory_stats() or {}
  peak = stats.get("peak_bytes_in_use")
  return None if peak is None else peak / 2**20


def prepare_batches(config, count: int) -> tuple[list[dict], float]:
  """``count`` host batches of the config's data, and the pipeline's img/s."""
  source = data.build_source(config)
  tokenizer = run_lib.build_tokenizer(config, source)
  iterator = iter(data.make_dataset(source, tokenizer, global_batch_size=config.batch_size,
                                    seed=0, num_threads=config.data.num_threads,
                                    caption_edits=data.caption_edits_for(config, source)))
  next(iterator)
  start = time.perf_counter()
  batches = [next(iterator) for _ in range(count)]
  return batches, count * config.batch_size / (time.perf_counter() - start)


def use_dfgan_step(config) -> None:
  """Sets ``config`` (configs/base.py's) to DF-GAN's own step: no contrastive
  head, D's gammas starting at 0, no coordinate channels in G, no caption-word
  head, G's learning rate 1e-4."""
  config.model.contrastive_dim, config.loss.contrastive_weight = 0, 0.0
  config.model.d_residual_init = 0.0
  config.model.coordinates = False
  config.model.word_dim, config.loss.word_weight = 0, 0.0
  config.optim.g_lr = 1e-4


class CompiledStep:
  """The jitted training step of ``config``, compiled, with its state and batches.

  Attributes:
    compile_s: seconds to lower and compile the step.
    flops_per_step: XLA's cost analysis of the compiled step (None when the
      backend gives none).
  """

  def __init__(self, config, batches, *, with_norms: bool = True):
    mesh = sharding.make_mesh()
    source = data.build_source(config)
    tokenizer = run_lib.build_tokenizer(config, source)
    # The step training runs: captions packed as the trainer would pack them.
    self.models, frozen = run_lib.build_gan(
        config, tokenizer, pack_captions=run_lib.packs_captions(mesh.devices.size))
    models = self.models
    keys = jax.random.split(jax.random.key(config.seed), 2)
    self._frozen = None if frozen is None else sharding.replicate(frozen, mesh)
    replicated = sharding.replicated(mesh)
    self.state = jax.jit(lambda k, t: init_state(models, config, k, frozen_text=t),
                         out_shardings=replicated)(keys[0], self._frozen)
    step = jax.jit(make_train_step(models, config, keys[1], with_norms=with_norms),
                   in_shardings=(replicated, sharding.batch_sharded(mesh), replicated),
                   out_shardings=(replicated, replicated), donate_argnums=(0,))
    self._batches = [sharding.shard_batch(b, mesh) for b in batches]
    self.batch_size = config.batch_size
    start = time.perf_counter()
    self._compiled = step.lower(self.state, self._batches[0], self._frozen).compile()
    self.compile_s = time.perf_counter() - start
    cost = self._compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    self.flops_per_step = (cost or {}).get("flops")
    self._count = 0
    self.run(1)  # warm-up

  def hlo_text(self) -> str:
    """The compiled step's optimised HLO."""
    return self._compiled.as_text()

  def run(self, steps: int) -> float:
    """Runs ``steps`` steps; returns the seconds they took (device included)."""
    start = time.perf_counter()
    metrics = None
    for _ in range(steps):
      batch = self._batches[self._count % len(self._batches)]
      self.state, metrics = self._compiled(self.state, batch, self._frozen)
      self._count += 1
    jax.block_until_ready(metrics)
    return time.perf_counter() - start


def measure(config, batches, steps: int) -> dict:
  """Compiles and times the training step of ``config`` on prepared batches."""
  compiled = CompiledStep(config, batches)
  seconds = compiled.run(steps)
  return {"img_s": steps * config.batch_size / seconds, "compile_s": compiled.compile_s,
          "step_ms": 1000 * seconds / steps, "flops_per_step": compiled.flops_per_step}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--image_size", type=int, default=64)
  parser.add_argument("--nf", type=int, default=32)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--text", default="bow", choices=text.ENCODERS)
  parser.add_argument("--no_adapter", action="store_true",
                      help="minilm: condition on its pooled sentence, no learned adapter")
  parser.add_argument("--contrastive", action="store_true",
                      help="with the contrastive loss as configs/base.py has it "
                           "(model.contrastive_dim=256, weight 1); default: DF-GAN's step")
  parser.add_argument("--word_attention", type=int, default=0,
                      help="model.word_attention (G's attention over the words); 0: off")
  parser.add_argument("--swap_weight", type=float, default=0.0,
                      help="loss.swap_weight (D's swapped-word negatives); 0: off")
  parser.add_argument("--swap_rows", type=int, default=0,
                      help="loss.swap_rows (how many examples' edits D sees); 0: all. "
                           "The step with all of them is measured too")
  parser.add_argument("--word_weight", type=float, default=0.0,
                      help="loss.word_weight, with D's caption-word head (model.word_dim=256); "
                           "0: off")
  parser.add_argument("--word_vocab", choices=config_lib.WORD_VOCABULARIES, default=None,
                      help="model.word_vocab, the ids the word head scores (default: the "
                           "config's); the step with the other choice is measured too")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--no_baseline", action="store_true")
  parser.add_argument("--peak_tflops", type=float, default=None,
                      help="the device's peak TFLOP/s, for MFU (e.g. 989 for an H100 in bf16)")
  args = parser.parse_args()

  config = base.get_config()
  config.image_size, config.batch_size = args.image_size, args.batch_size
  config.model.nf, config.text.encoder = args.nf, args.text
  config.text.adapter = args.text == "minilm" and not args.no_adapter
  config.text.max_length = 32 if args.text == "minilm" else config.text.max_length
  if not args.contrastive:
    use_dfgan_step(config)
  config.model.word_attention = args.word_attention
  config.loss.swap_weight = args.swap_weight
  config.loss.swap_rows = args.swap_rows
  config.model.word_dim = 256 if args.word_weight > 0 else 0
  config.loss.word_weight = args.word_weight
  config.model.word_vocab = args.word_vocab or config.model.word_vocab
  config_lib.validate(config)  # e.g. swaps need an encoder that reads word order

  batches, pipeline_img_s = prepare_batches(config, 8)

  print(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}; "
        f"DF-GAN {args.image_size}x{args.image_size}, nf {args.nf}, batch "
        f"{args.batch_size}, text encoder {args.text}"
        f"{' + adapter' if config.text.adapter else ''}")
  print(f"input pipeline alone: {pipeline_img_s:8.1f} img/s")
  result = measure(config, batches, args.steps)
  print(f"train step:           {result['img_s']:8.1f} img/s  ({result['step_ms']:.0f} ms/step)")
  print(f"first-step compile:   {result['compile_s']:8.1f} s")
  flops = result["flops_per_step"]
  if flops:
    achieved = flops * result["img_s"] / args.batch_size
    print(f"model FLOPs:          {flops / args.batch_size / 1e9:8.2f} GFLOP/img "
          f"(XLA cost analysis of the step), {achieved / 1e9:.1f} GFLOP/s achieved")
    if args.peak_tflops:
      print(f"MFU:                  {100 * achieved / (args.peak_tflops * 1e12):8.1f} %")
  device_peak = _peak_device_mib()
  print(f"peak host memory:     {_peak_host_mib():8.0f} MiB (RSS)")
  if device_peak is not None:
    print(f"peak device memory:   {device_peak:8.0f} MiB")
  if config.text.adapter:
    config.text.adapter = False
    plain = measure(config, batches, args.steps)
    config.text.adapter = True
    print(f"MiniLM, no adapter:   {plain['img_s']:8.1f} img/s  "
          f"(with / without adapter = {result['img_s'] / plain['img_s']:.3f})")
  for key, off in (("model.word_attention", 0), ("loss.swap_weight", 0.0),
                   ("loss.word_weight", 0.0)):
    section, name = key.split(".")
    on = config[section][name]
    if on:
      # The same batches: a step without swaps ignores their swapped captions.
      config[section][name] = off
      word_dim = config.model.word_dim
      if key == "loss.word_weight":
        config.model.word_dim = 0  # without the head too
      without = measure(config, batches, args.steps)
      config[section][name], config.model.word_dim = on, word_dim
      print(f"without {key}: {without['img_s']:8.1f} img/s  "
            f"(with / without = {result['img_s'] / without['img_s']:.3f})")
  if config.loss.swap_weight and config.loss.swap_rows:
    config.loss.swap_rows = 0
    every = measure(config, batches, args.steps)
    config.loss.swap_rows = args.swap_rows
    print(f"swap_rows=0 (all):    {every['img_s']:8.1f} img/s  "
          f"({args.swap_rows} rows / all = {result['img_s'] / every['img_s']:.3f})")
  if config.loss.word_weight and not text.is_trainable(config.text):
    # (A learned tokenizer's vocabulary is already the captions' words.)
    vocabulary = config.model.word_vocab
    config.model.word_vocab = next(v for v in config_lib.WORD_VOCABULARIES if v != vocabulary)
    other = measure(config, batches, args.steps)
    print(f"word_vocab={config.model.word_vocab!r}: {other['img_s']:8.1f} img/s  "
          f"({vocabulary!r} / {config.model.word_vocab!r} = {result['img_s'] / other['img_s']:.3f})")
    config.model.word_vocab = vocabulary
  if not args.no_baseline:
    config.model.word_attention, config.loss.swap_weight = 0, 0.0
    config.model.word_dim, config.loss.word_weight = 0, 0.0
    config.model.arch, config.loss.kind, config.loss.ma_gp_weight = "mlp", "bce", 0.0
    config.model.contrastive_dim, config.loss.contrastive_weight = 0, 0.0
    config.model.d_residual_init = 0.0  # the MLP's D has no residual blocks
    config.model.coordinates = False  # nor its G fusion blocks
    baseline = measure(config, batches, args.steps)
    print(f"MLP GAN baseline:     {baseline['img_s']:8.1f} img/s  "
          f"(DF-GAN / baseline = {result['img_s'] / baseline['img_s']:.3f})")


if __name__ == "__main__":
  main()
