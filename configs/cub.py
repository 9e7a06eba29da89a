"""CUB-200-2011 birds at 256x256, DF-GAN's published settings, in DF-GAN's data layout.

    python train.py --config configs/cub.py --workdir runs/cub --config.data.path=data/birds

``data/birds`` is the directory DF-GAN and AttnGAN users already have (README,
"CUB-200 and COCO"): ``CUB_200_2011/images``, ``images.txt``,
``bounding_boxes.txt``, ``text/``, ``train/filenames.pickle``,
``test/filenames.pickle``. Each bird is cropped around its bounding box.

DF-GAN's bird.yml: 256x256, nf 32, z 100, batch 32, Adam G 1e-4 / D 4e-4
with betas (0.0, 0.9), hinge loss with MA-GP (k 2, p 6), 1,301 epochs of the
8,855 training images: 360,000 steps of 32. The text encoder is the frozen
MiniLM-L6 with jaxgan's learned adapter instead of DF-GAN's DAMSM LSTM.

Expected cost: 11.5 million images through G and D at 256x256; this is a job
for an accelerator (the 256x256 step is far too slow on a laptop CPU, see
``benchmarks/train_throughput.py --image_size 256``). Convert once with
``scripts/prepare_data.py`` for the fastest input pipeline.
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.image_size = 256
  config.batch_size = 32
  config.num_steps = 360_000  # 1,301 epochs of 8,855 images
  config.data.source = "cub"
  config.data.path = ""  # required: --config.data.path=.../birds
  config.data.random_crop = True
  config.data.flip = True
  config.data.workers = 4
  config.data.num_threads = 1
  config.data.vocab_examples = 10_000
  config.text.max_length = 64  # real captions run longer than shapes'
  config.model.nf = 32
  config.model.z_dim = 100
  # DF-GAN's: D's residual gammas start at 0 (the shapes default's 1 was
  # measured on shapes only).
  config.model.d_residual_init = 0.0
  # DF-GAN's generator: no coordinate channels (likewise measured on shapes only).
  config.model.coordinates = False
  # No caption-word head (measured on shapes only; random flips would also
  # contradict the captions' left and right).
  config.model.word_dim = 0
  config.loss.word_weight = 0.0
  config.optim.g_lr = 1e-4  # DF-GAN's (the shapes default's 4e-4 measured on shapes only)
  config.log_every = 100
  config.checkpoint_every = 2000
  config.sample_every = 2000
  return config
