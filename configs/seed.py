"""The original project description's small MLP GAN, as a baseline.

    python train.py --config configs/seed.py --workdir runs/seed

A bag-of-words sentence embedding plus noise into a fully connected generator
with batch norm; a linear discriminator on (image, sentence); binary
cross-entropy with logits (real labelled real, fake labelled fake) and the
non-saturating generator loss. No gradient penalty, as in the original.
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  # The baseline's own length (base.py's 13,000 is sized for its own step).
  config.num_steps = 10000
  config.text.encoder = "bow"
  config.model.arch = "mlp"
  # The MLP discriminator has no contrastive head and no residual blocks, its
  # generator no 4x4 stem and no fusion blocks.
  config.model.contrastive_dim = 0
  config.model.d_residual_init = 0.0
  config.model.text_stem = False
  config.model.coordinates = False
  config.model.word_dim = 0
  config.loss.word_weight = 0.0
  config.loss.contrastive_weight = 0.0
  config.loss.kind = "bce"
  config.loss.ma_gp_weight = 0.0
  config.optim.g_lr = 2e-4
  config.optim.d_lr = 2e-4
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999
  return config
