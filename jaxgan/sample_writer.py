"""Writing generated images to disk: grids, folders with sidecars, animations.

The logic behind ``sample.py``; every write is atomic (``jaxgan.images``), so an
interrupted run never leaves a half-written file in place of a good one.
"""

from __future__ import annotations

import os
import re
from typing import Sequence

from jaxgan import images as images_lib
from jaxgan import postprocess as postprocess_lib
from jaxgan import sampling

_GRID_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
_ANIMATION_EXTENSIONS = (".gif", ".webp")


def _slug(text: str, limit: int = 40) -> str:
  slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
  return slug[:limit].rstrip("-") or "prompt"


def _check_writable(out: str, is_folder: bool) -> None:
  """Fails before the (slow) generation when --out cannot be written."""
  target = os.path.abspath(out if is_folder else os.path.dirname(os.path.abspath(out)))
  existing = target
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
    raise OSError(f"cannot write --out {out!r}: {existing!r} is not a writable folder")


def write_samples(workdir: str, prompts: Sequence[str], out: str, *, num: int = 1,
                  seed: int = 0, truncation: float = 1.0, batch_size: int = 32,
                  step: int | None = None, postprocess: str = "", best_of: int = 1,
                  rank_by: str = "words") -> str:
  """Generates ``num`` images per prompt and writes them; returns a summary line.

  Args:
    workdir: the run directory.
    prompts: the prompts.
    out: a path ending in .png/.jpg/.webp (one grid, a row per prompt), or a
      folder (one PNG per image with a JSON sidecar: prompt, seed, index, step,
      truncation, best-of, post-processing, so every image can be regenerated).
    num: images per prompt.
    seed: noise seed.
    truncation: noise truncation (1.0 = off).
    batch_size: images per generator call.
    step: the checkpoint (None = the latest).
    postprocess: the post-processing chain spec ("" = denormalise only).
    best_of: candidates per image, the one the run's D scores best by
      ``rank_by`` kept (1 = no ranking; see
      :meth:`jaxgan.sampling.Pipeline.generate`).
    rank_by: ``"words"``, ``"contrastive"`` or ``"match"``.

  Returns:
    A one-line summary of what was written.
  """
  chain = postprocess_lib.build_postprocess(postprocess or None)
  is_file = out.lower().endswith(_GRID_EXTENSIONS)
  if not is_file and os.path.isfile(out):
    raise ValueError(f"--out {out!r} is an existing file without an image extension; "
                     f"use a path ending in {', '.join(_GRID_EXTENSIONS)} or a folder")
  _check_writable(out, not is_file)
  pipe = sampling.load_pipeline(workdir, step=step)
  pixels = chain(pipe.generate(prompts, num_per_prompt=num, seed=seed,
                               truncation=truncation, batch_size=batch_size,
                               best_of=best_of, rank_by=rank_by))
  if is_file:
    images_lib.save_image(images_lib.make_grid(pixels, ncols=num), out)
    return f"wrote a grid of {len(pixels)} images (step {pipe.step}) to {out}"
  spec = chain.to_spec()
  for p, prompt in enumerate(prompts):
    for j in range(num):
      stem = os.path.join(out, f"{p:03d}_{_slug(prompt)}_{j:03d}")
      images_lib.save_image(pixels[p * num + j], stem + ".png")
      images_lib.write_json_atomic(
          {"prompt": prompt, "seed": seed, "image_index": j, "prompt_index": p,
           "step": pipe.step, "truncation": truncation, "best_of": best_of,
           **({"rank_by": rank_by} if best_of > 1 else {}), "postprocess": spec,
           "workdir": os.path.abspath(workdir), "image": os.path.basename(stem)
           + ".png"}, stem + ".json")
  return f"wrote {len(pixels)} images with sidecars (step {pipe.step}) to {out}/"


def write_interpolation(workdir: str, prompts: Sequence[str], out: str, *,
                        frames: int = 8, seed: int = 0, seed_b: int | None = None,
                        truncation: float = 1.0, step: int | None = None,
                        postprocess: str = "") -> str:
  """Walks between two prompts (or two seeds of one prompt) and writes the frames.

  Args:
    workdir: the run directory.
    prompts: two prompts, or one prompt with ``seed_b``.
    out: a .gif/.webp animation, a .png/.jpg one-row grid, or a folder of
      numbered frames with ``interpolation.json``.
    frames: number of frames.
    seed: the noise seed (of the start).
    seed_b: the noise seed of the end (None = the same noise throughout).
    truncation: noise truncation (1.0 = off).
    step: the checkpoint (None = the latest).
    postprocess: the post-processing chain spec.

  Returns:
    A one-line summary of what was written.
  """
  if len(prompts) == 2:
    prompt_a, prompt_b = prompts
  elif len(prompts) == 1 and seed_b is not None:
    prompt_a, prompt_b = prompts[0], None
  else:
    raise ValueError(f"--interpolate needs two prompts, or one prompt and --seed-b; "
                     f"got {len(prompts)} prompt(s)"
                     f"{'' if seed_b is None else ' and --seed-b'}")
  chain = postprocess_lib.build_postprocess(postprocess or None)
  lower = out.lower()
  _check_writable(out, not lower.endswith(_ANIMATION_EXTENSIONS + _GRID_EXTENSIONS))
  pipe = sampling.load_pipeline(workdir, step=step)
  pixels = pipe.interpolate(prompt_a, prompt_b, steps=frames, seed=seed, seed_b=seed_b,
                            truncation=truncation, postprocess=chain)
  if lower.endswith(_ANIMATION_EXTENSIONS):
    images_lib.save_animation(list(pixels), out)
    return f"wrote an animation of {len(pixels)} frames (step {pipe.step}) to {out}"
  if lower.endswith(_GRID_EXTENSIONS):
    images_lib.save_image(images_lib.make_grid(pixels, ncols=len(pixels)), out)
    return f"wrote {len(pixels)} frames as a grid (step {pipe.step}) to {out}"
  for i, frame in enumerate(pixels):
    images_lib.save_image(frame, os.path.join(out, f"frame_{i:03d}.png"))
  images_lib.write_json_atomic(
      {"prompt_a": prompt_a, "prompt_b": prompt_b if prompt_b is not None else prompt_a,
       "seed": seed, "seed_b": seed_b, "frames": len(pixels), "step": pipe.step,
       "truncation": truncation, "postprocess": chain.to_spec(),
       "workdir": os.path.abspath(workdir)},
      os.path.join(out, "interpolation.json"))
  return f"wrote {len(pixels)} frames (step {pipe.step}) to {out}/"
