"""The smallest run, for tests and smoke runs (seconds on a CPU).

    python train.py --config configs/tiny.py --workdir /tmp/tiny --config.num_steps=20
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.num_steps = 20
  config.batch_size = 8
  config.image_size = 16
  config.data.num_examples = 512
  config.data.vocab_examples = 200
  config.data.num_threads = 1
  config.text.encoder = "bow"  # MiniLM costs more than the whole tiny GAN
  config.text.max_length = 32
  config.text.embed_dim = 32
  config.text.mlp_dim = 64
  config.model.nf = 8
  config.model.z_dim = 16
  # The plain matching-aware loss keeps the tests' compiles small; the
  # contrastive step has its own tests (tests/test_contrastive.py, and the
  # 1-vs-8-device one in tests/test_train.py).
  config.model.contrastive_dim = 0
  config.model.word_dim = 0  # no caption-word head (its own tests)
  config.loss.word_weight = 0.0
  config.optim.g_lr = 1e-4  # DF-GAN's, as the tests were written (base: 4e-4)
  config.loss.contrastive_weight = 0.0
  config.log_every = 5
  config.checkpoint_every = 10
  config.sample_every = 10
  config.num_sample_prompts = 4
  config.progress_bar = False
  return config
