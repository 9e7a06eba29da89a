"""Generates images from a trained run.

    python sample.py --workdir runs/base --prompt "a small red circle in the top left" \
        --num 4 --out samples.png

``--out`` ending in .png/.jpg/.webp writes one grid, one row per prompt; any
other path is a folder that gets one PNG per image and a JSON sidecar beside
each (prompt, seed, image index, step, truncation, post-processing). With
``--interpolate`` the frames between two prompts (or two seeds of one prompt)
are written as a one-row grid, as an animation when --out ends with .gif or
.webp, or as numbered PNGs in a folder.

Errors a user can fix (no checkpoint, an unknown --step, an empty prompt, an
unwritable --out...) print one line and exit with status 1.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings

_GRID_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
_ANIMATION_EXTENSIONS = (".gif", ".webp")


def _parse_args(argv):
  parser = argparse.ArgumentParser(
      description="Generate images from a trained jaxgan run.")
  parser.add_argument("--workdir", required=True, help="the run directory")
  parser.add_argument("--prompt", action="append", default=[],
                      help="a prompt (repeat for several)")
  parser.add_argument("--prompts-file",
                      help="a text file with one prompt a line (blank lines skipped)")
  parser.add_argument("--num", type=int, default=1, help="images per prompt")
  parser.add_argument("--seed", type=int, default=0, help="noise seed")
  parser.add_argument("--seed-b", type=int, default=None,
                      help="with --interpolate: the seed to walk to")
  parser.add_argument("--truncation", type=float, default=1.0,
                      help="noise truncation psi in (0, 1]; 1.0 = off")
  parser.add_argument("--out", default=None,
                      help="a .png/.jpg/.webp grid, a .gif/.webp animation "
                           "(--interpolate), or a folder (default: samples.png, "
                           "or interpolation.gif with --interpolate)")
  parser.add_argument("--step", type=int, default=None,
                      help="checkpoint step (default: the latest)")
  parser.add_argument("--batch-size", type=int, default=32,
                      help="images per generator call")
  parser.add_argument("--postprocess", default="",
                      help='post-processing chain, e.g. "auto_levels denoise resize:2" '
                           '(default: none)')
  parser.add_argument("--interpolate", action="store_true",
                      help="walk between two --prompt, or one prompt and --seed/--seed-b")
  parser.add_argument("--frames", type=int, default=8, help="interpolation frames")
  return parser.parse_args(argv)


def _read_prompts(args) -> list[str]:
  prompts = list(args.prompt)
  if args.prompts_file:
    with open(args.prompts_file, encoding="utf-8") as f:
      prompts += [line.strip() for line in f if line.strip()]
  if not prompts:
    raise ValueError("no prompt given; use --prompt TEXT (repeatable) or --prompts-file")
  return prompts


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


def _sample(args, sampling, images_lib, postprocess_lib) -> str:
  prompts = _read_prompts(args)
  chain = postprocess_lib.build_postprocess(args.postprocess or None)
  out = args.out or "samples.png"
  is_file = out.lower().endswith(_GRID_EXTENSIONS)
  if not is_file and os.path.isfile(out):
    raise ValueError(f"--out {out!r} is an existing file without an image extension; "
                     f"use a path ending in {', '.join(_GRID_EXTENSIONS)} or a folder")
  _check_writable(out, not is_file)
  pipe = sampling.load_pipeline(args.workdir, step=args.step)
  pixels = chain(pipe.generate(prompts, num_per_prompt=args.num, seed=args.seed,
                               truncation=args.truncation, batch_size=args.batch_size))
  if is_file:
    images_lib.save_image(images_lib.make_grid(pixels, ncols=args.num), out)
    return f"wrote a grid of {len(pixels)} images (step {pipe.step}) to {out}"
  spec = chain.to_spec()
  for p, prompt in enumerate(prompts):
    for j in range(args.num):
      stem = os.path.join(out, f"{p:03d}_{_slug(prompt)}_{j:03d}")
      images_lib.save_image(pixels[p * args.num + j], stem + ".png")
      images_lib.write_json_atomic(
          {"prompt": prompt, "seed": args.seed, "image_index": j, "prompt_index": p,
           "step": pipe.step, "truncation": args.truncation, "postprocess": spec,
           "workdir": os.path.abspath(args.workdir), "image": os.path.basename(stem)
           + ".png"}, stem + ".json")
  return f"wrote {len(pixels)} images with sidecars (step {pipe.step}) to {out}/"


def _interpolate(args, sampling, images_lib, postprocess_lib) -> str:
  prompts = _read_prompts(args)
  if len(prompts) == 2:
    prompt_a, prompt_b = prompts
  elif len(prompts) == 1 and args.seed_b is not None:
    prompt_a, prompt_b = prompts[0], None
  else:
    raise ValueError(f"--interpolate needs two prompts, or one prompt and --seed-b; "
                     f"got {len(prompts)} prompt(s)"
                     f"{'' if args.seed_b is None else ' and --seed-b'}")
  chain = postprocess_lib.build_postprocess(args.postprocess or None)
  out = args.out or "interpolation.gif"
  lower = out.lower()
  _check_writable(out, not lower.endswith(_ANIMATION_EXTENSIONS + _GRID_EXTENSIONS))
  pipe = sampling.load_pipeline(args.workdir, step=args.step)
  frames = pipe.interpolate(prompt_a, prompt_b, steps=args.frames, seed=args.seed,
                            seed_b=args.seed_b, truncation=args.truncation,
                            postprocess=chain)
  if lower.endswith(_ANIMATION_EXTENSIONS):
    images_lib.save_animation(list(frames), out)
    return f"wrote an animation of {len(frames)} frames (step {pipe.step}) to {out}"
  if lower.endswith(_GRID_EXTENSIONS):
    images_lib.save_image(images_lib.make_grid(frames, ncols=len(frames)), out)
    return f"wrote {len(frames)} frames as a grid (step {pipe.step}) to {out}"
  for i, frame in enumerate(frames):
    images_lib.save_image(frame, os.path.join(out, f"frame_{i:03d}.png"))
  images_lib.write_json_atomic(
      {"prompt_a": prompt_a, "prompt_b": prompt_b if prompt_b is not None else prompt_a,
       "seed": args.seed, "seed_b": args.seed_b, "frames": len(frames), "step": pipe.step,
       "truncation": args.truncation, "postprocess": chain.to_spec(),
       "workdir": os.path.abspath(args.workdir)},
      os.path.join(out, "interpolation.json"))
  return f"wrote {len(frames)} frames (step {pipe.step}) to {out}/"


def main(argv=None) -> int:
  args = _parse_args(sys.argv[1:] if argv is None else argv)
  # Before JAX and Orbax load: they log every checkpoint detail at INFO.
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.WARNING)
  warnings.formatwarning = (
      lambda message, category, *unused: f"sample.py: warning: {message}\n")
  from jaxgan import images as images_lib  # pylint: disable=g-import-not-at-top
  from jaxgan import postprocess as postprocess_lib  # pylint: disable=g-import-not-at-top
  from jaxgan import sampling  # pylint: disable=g-import-not-at-top
  run = _interpolate if args.interpolate else _sample
  try:
    print(run(args, sampling, images_lib, postprocess_lib))
  except (ValueError, FileNotFoundError, OSError) as error:
    message = " ".join(str(error).split())
    print(f"sample.py: error: {message}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
