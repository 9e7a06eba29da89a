"""COCO-2014 at 256x256, DF-GAN's published settings, in DF-GAN's data layout.

    python train.py --config configs/coco.py --workdir runs/coco --config.data.path=data/coco

``data/coco`` is DF-GAN's directory (README, "CUB-200 and COCO"):
``images/`` (or ``images/train2014``, ``images/val2014``, ``jpg/``), ``text/``,
``train/filenames.pickle``, ``test/filenames.pickle``.

DF-GAN's coco.yml: the networks, optimiser and loss of ``configs/cub.py``
(256x256, nf 32, z 100, batch 32, Adam G 1e-4 / D 4e-4, betas (0.0, 0.9),
hinge + MA-GP) for 290 epochs of the 82,783 training images: 750,000 steps
of 32. The text encoder is the frozen MiniLM-L6 with jaxgan's learned adapter
instead of DF-GAN's DAMSM LSTM.

Expected cost: 24 million images through G and D at 256x256, an accelerator
job. Convert the 80,000 images once with ``scripts/prepare_data.py`` so
decoding full-size JPEGs does not limit the step.
"""

import ml_collections

from configs import cub


def get_config() -> ml_collections.ConfigDict:
  config = cub.get_config()
  config.num_steps = 750_000  # 290 epochs of 82,783 images
  config.data.source = "coco"
  config.data.path = ""  # required: --config.data.path=.../coco
  config.data.vocab_examples = 100_000
  config.text.max_length = 48  # COCO's captions are shorter than CUB's
  return config
