"""Sampling throughput: prompts to images through ``jaxgan.sampling.Pipeline``.

    python benchmarks/sample_throughput.py                  # 64x64, nf 32, batch 32
    python benchmarks/sample_throughput.py --text bow       # without MiniLM

Trains nothing: builds the base config's modules (at the size given) with random
params, then prints
  * the first-image latency of a fresh pipeline (one prompt, one image), which
    includes tracing and compiling the padded batch;
  * steady img/s of ``Pipeline.generate`` on batches of prompts (tokenize,
    hash, noise, text encoder, EMA generator, transfer back to the host);
  * steady img/s of the jitted generator alone on ready noise and sentence
    embeddings, and the ratio of the two: what text handling costs.
"""

import argparse
import os
import sys
import time

# `configs` is a top-level folder of the repo, not part of the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgan import xla_flags  # noqa: E402  (imports nothing heavy)

if __name__ == "__main__":
  xla_flags.restart_with_huge_pages()  # re-executes once (GLIBC_TUNABLES), as the entry points do
xla_flags.set_default_cpu_flags()  # before JAX starts its backend

import jax  # noqa: E402

from configs import base  # noqa: E402
from jaxgan import data, run as run_lib, sampling  # noqa: E402
from jaxgan.train.state import init_state  # noqa: E402


def _random_pipeline(config) -> sampling.Pipeline:
  source = data.build_source(config)
  tokenizer = run_lib.build_tokenizer(config, source)
  models, frozen = run_lib.build_gan(config, tokenizer)
  state = jax.jit(lambda key, t: init_state(models, config, key, frozen_text=t))(
      jax.random.key(config.seed), frozen)
  params = {"generator_ema": state.generator_ema,
            "generator_state": state.generator_state,
            "text_encoder": state.text_encoder,
            "discriminator": state.discriminator,
            "frozen_text": frozen}
  return sampling.Pipeline(config, tokenizer, models, params), source


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--image-size", type=int, default=64)
  parser.add_argument("--nf", type=int, default=32)
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--text", default=None,
                      help="text encoder (minilm | bow | transformer); default: base's")
  parser.add_argument("--iters", type=int, default=5)
  args = parser.parse_args()

  config = base.get_config()
  config.image_size = args.image_size
  config.model.nf = args.nf
  if args.text:
    config.text.encoder = args.text
  pipe, source = _random_pipeline(config)
  prompts = [source.captions(i)[0] for i in range(args.batch_size)]
  print(f"backend {jax.default_backend()}, {len(pipe.devices)} device(s), "
        f"{config.image_size}x{config.image_size}, nf {config.model.nf}, "
        f"text {config.text.encoder}, batch {args.batch_size}")

  start = time.perf_counter()
  pipe.generate(prompts[:1], batch_size=args.batch_size)
  first_s = time.perf_counter() - start

  pipe.generate(prompts, batch_size=args.batch_size)  # warm (already compiled)
  start = time.perf_counter()
  for i in range(args.iters):
    pipe.generate(prompts, seed=i, batch_size=args.batch_size)
  pipeline_ips = args.iters * args.batch_size / (time.perf_counter() - start)

  # The generator alone, on noise and sentences already on the device.
  z = pipe.noise(prompts)
  sentence = pipe.encode(prompts)
  z, sentence = jax.device_put(z), jax.device_put(sentence)
  models, params = pipe.models, pipe.params

  @jax.jit
  def generator_only(g_params, g_state, z, sentence):
    return models.generate(g_params, g_state, z, sentence, train=False)[0]

  g_args = (params["generator_ema"], params["generator_state"], z, sentence)
  jax.block_until_ready(generator_only(*g_args))
  start = time.perf_counter()
  for _ in range(args.iters):
    out = generator_only(*g_args)
  jax.block_until_ready(out)
  generator_ips = args.iters * args.batch_size / (time.perf_counter() - start)

  print(f"first image (compile + one padded batch): {first_s:.2f} s")
  print(f"pipeline.generate: {pipeline_ips:.1f} img/s")
  print(f"generator alone:   {generator_ips:.1f} img/s")
  print(f"ratio pipeline / generator alone: {pipeline_ips / generator_ips:.2f}")


if __name__ == "__main__":
  main()
