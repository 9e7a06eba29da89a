"""Converts pytorch-fid's FID Inception weights to a ``.npz`` jaxgan can read.

    python scripts/convert_fid_inception.py pt_inception-2015-12-05-6726825d.pth \
        fid_inception.npz

Needs PyTorch (only here; jaxgan never imports it). The input is the file
pytorch-fid downloads on first use (its GitHub release ``fid_weights``); get it
yourself, this script downloads nothing. The output holds every tensor of the
state dict under its PyTorch name, unchanged (float32);
``jaxgan.metrics.inception.load_fid_params`` changes the layout for Flax and
checks that nothing is missing.
"""

import argparse
import sys

import numpy as np


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("pth", help="pt_inception-2015-12-05-6726825d.pth")
  parser.add_argument("out", help="output .npz")
  args = parser.parse_args(argv)
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    print("error: this script needs PyTorch (pip install torch)", file=sys.stderr)
    return 1
  state = torch.load(args.pth, map_location="cpu", weights_only=True)
  if "state_dict" in state:  # a checkpoint wrapping the state dict
    state = state["state_dict"]
  arrays = {name: tensor.detach().cpu().numpy().astype(np.float32)
            for name, tensor in state.items()
            if tensor.is_floating_point()}  # drops num_batches_tracked counters
  np.savez(args.out, **arrays)
  print(f"wrote {len(arrays)} arrays to {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
