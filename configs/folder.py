"""Your own captioned images: a folder in the Hugging Face ``imagefolder`` convention.

    python train.py --config configs/folder.py --workdir runs/mine --config.data.path=DIR

``DIR`` holds images (subfolders allowed) and either ``metadata.jsonl`` /
``metadata.csv`` (``file_name`` and ``text``, a caption or a list of them) or a
same-name ``.txt`` per image (one caption per line); ``train/`` and ``test/``
subfolders or a ``split`` column give the splits (see README, "Your own data").

64x64 DF-GAN (nf 32) with MiniLM + adapter, DF-GAN's random crop and
horizontal flips, decoding in 2 worker processes. Sized so a laptop CPU can
make progress (the 64x64 nf-32 step runs at about 6 img/s on a 2-core CPU, so
20,000 steps of batch 32 take days there); on a GPU raise ``image_size`` to
128 or 256. For more than a few thousand images, convert the folder once with
``scripts/prepare_data.py`` and train on ``data.source=arrayrecord``.
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.num_steps = 20000
  config.image_size = 64
  config.data.source = "imagefolder"
  config.data.path = ""  # required: --config.data.path=DIR
  config.data.random_crop = True
  config.data.flip = True
  config.data.workers = 2
  config.data.num_threads = 1
  config.text.max_length = 64  # real captions run longer than shapes'
  config.model.nf = 32
  # No caption-word head: measured on shapes only, and the random flips would
  # contradict the captions' left and right.
  config.model.word_dim = 0
  config.loss.word_weight = 0.0
  config.optim.g_lr = 1e-4  # DF-GAN's (the shapes default's 4e-4 measured on shapes only)
  config.checkpoint_every = 500
  config.sample_every = 500
  return config
