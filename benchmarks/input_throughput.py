"""How fast the input pipeline decodes real images, with 0, 1 and 2 grain worker processes.

Run: ``python benchmarks/input_throughput.py`` (``--images``, ``--batches``,
``--sizes``, ``--workers``, ``--no-arrayrecord``).

Generates a folder of 2,000 256x256 JPEGs with captions (``metadata.jsonl``)
in a temporary directory, then reports decoded images/s through
``jaxgan.data.make_dataset`` (decode, resize to 76/64 of the size, random crop,
flip, tokenize, batch; DF-GAN's augmentation, as training runs it) at 64, 128
and 256 px for each worker count; then the same from ArrayRecord shards that
``scripts/prepare_data.py``'s conversion wrote for each size (images stored
pre-resized). The first batches (worker start-up) are not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
from PIL import Image

# Run from a checkout: the repo root, not benchmarks/, holds the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgan.data import convert, make_dataset  # noqa: E402
from jaxgan.data.arrayrecord import ArrayRecordSource  # noqa: E402
from jaxgan.data.imagefolder import imagefolder_source  # noqa: E402
from jaxgan.text.tokenizer import WordTokenizer  # noqa: E402

_BATCH = 32
_WARMUP_BATCHES = 3


def write_folder(directory: str, count: int, side: int = 256) -> None:
  """``count`` photo-like JPEGs (smooth colour fields plus grain) with one caption each."""
  rng = np.random.default_rng(0)
  with open(os.path.join(directory, "metadata.jsonl"), "w") as metadata:
    for index in range(count):
      coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
      image = np.asarray(Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC),
                         np.int16)
      image = np.clip(image + rng.integers(-12, 13, image.shape), 0, 255).astype(np.uint8)
      name = f"{index:05d}.jpg"
      Image.fromarray(image).save(os.path.join(directory, name), quality=90)
      metadata.write(json.dumps({"file_name": name, "text": f"a photo number {index}"}) + "\n")


def images_per_second(source, tokenizer, size: int, workers: int, batches: int) -> float:
  """Decoded images/s of the training pipeline over ``batches`` batches after a warm-up."""
  dataset = make_dataset(source, tokenizer, global_batch_size=_BATCH, seed=0, image_size=size,
                         random_crop=True, flip=True, workers=workers, num_threads=1)
  iterator = iter(dataset)
  for _ in range(_WARMUP_BATCHES):
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  rate = batches * _BATCH / (time.perf_counter() - start)
  del iterator  # stops the worker processes before the next measurement
  return rate


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--images", type=int, default=2000, help="JPEGs to generate")
  parser.add_argument("--batches", type=int, default=20,
                      help=f"timed batches of {_BATCH} per line")
  parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
  parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--no-arrayrecord", action="store_true",
                      help="skip the ArrayRecord measurements")
  args = parser.parse_args()
  print(f"{os.cpu_count()} CPU cores visible; batch {_BATCH}, {args.batches} timed "
        f"batches per line")
  with tempfile.TemporaryDirectory() as tmp:
    folder = os.path.join(tmp, "folder")
    os.makedirs(folder)
    start = time.perf_counter()
    write_folder(folder, args.images)
    print(f"wrote {args.images} 256x256 JPEGs in {time.perf_counter() - start:.1f}s")
    source = imagefolder_source(folder)
    tokenizer = WordTokenizer.build((source.captions(i)[0] for i in range(len(source))),
                                    max_length=16)
    for size in args.sizes:
      for workers in args.workers:
        rate = images_per_second(source, tokenizer, size, workers, args.batches)
        print(f"imagefolder  {size:4d}px  workers={workers}: {rate:7.0f} images/s", flush=True)
    if args.no_arrayrecord:
      return
    for size in args.sizes:
      shards = os.path.join(tmp, f"arrayrecord_{size}")
      start = time.perf_counter()
      convert.prepare({"train": source}, shards, size=size, description="benchmark",
                      workers=max(args.workers), progress=False)
      print(f"prepared {len(source)} images at {size}px (short side "
            f"{convert.load_size(size)}) in {time.perf_counter() - start:.1f}s "
            f"with {max(args.workers)} worker(s)", flush=True)
      prepared = ArrayRecordSource(shards, "train")
      for workers in args.workers:
        rate = images_per_second(prepared, tokenizer, size, workers, args.batches)
        print(f"arrayrecord  {size:4d}px  workers={workers}: {rate:7.0f} images/s", flush=True)


if __name__ == "__main__":
  main()
