"""How fast the ``shapes`` source renders, in one process on one core.

Run: ``python benchmarks/render_throughput.py`` (``--seconds`` per measurement).
Prints items/s (render + captions, what a grain worker does per example) at 16,
64, 128 and 256 pixels, and ``captions()``/s (used to build vocabularies). The
goal is >= 1,000 items/s at 64 px per core, so two grain threads keep up with a
training step on one accelerator.
"""

from __future__ import annotations

import argparse
import time

from jaxgan.data.shapes import ShapesSource


def throughput(fn, seconds: float) -> tuple[float, int]:
  """Calls ``fn(i)`` for i = 0, 1, ... for about ``seconds``.

  Args:
    fn: the operation to time.
    seconds: measurement time, after a short warm-up.

  Returns:
    (calls per second, number of calls timed).
  """
  for i in range(20):  # warm-up: first calls pay for imports and caches
    fn(i)
  count, start = 0, time.perf_counter()
  # Check the clock every batch of calls so timing overhead stays negligible.
  while (elapsed := time.perf_counter() - start) < seconds:
    for _ in range(50):
      fn(count)
      count += 1
  return count / elapsed, count


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seconds", type=float, default=2.0,
                      help="measurement time per line")
  args = parser.parse_args()
  for image_size in (16, 64, 128, 256):
    source = ShapesSource(image_size=image_size, num_examples=10**9)
    rate, count = throughput(source.__getitem__, args.seconds)
    print(f"render  {image_size:4d}px: {rate:8.0f} images/s  ({count} images)")
  source = ShapesSource(num_examples=10**9)
  rate, count = throughput(source.captions, args.seconds)
  print(f"captions only: {rate:8.0f} captions()/s  ({count} calls)")


if __name__ == "__main__":
  main()
