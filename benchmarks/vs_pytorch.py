"""jaxgan against the same DF-GAN in PyTorch, timed side by side in one process.

    pip install -e '.[bench]'   # PyTorch (CPU), for this benchmark only
    python benchmarks/vs_pytorch.py                     # 64x64, nf 32, batch 32
    XLA_FLAGS= python benchmarks/vs_pytorch.py          # without jaxgan's default XLA flags

The PyTorch networks below are jaxgan's DF-GAN generator and discriminator
(``jaxgan/models/dfgan.py``) written in PyTorch, layer for layer; their
parameter counts are checked equal to jaxgan's. The PyTorch step is DF-GAN's
(the official ``train.py`` loop): D on real/matched, real/mismatched and one
fake batch with the MA-GP (k=2, p=6) on the real pairs, Adam step; then G's
loss through the updated D on the same fake, Adam step. Its sentences are
ready-made embeddings (DF-GAN's text encoder is frozen), while jaxgan's step
also runs and trains its bow encoder and updates G's EMA: the extra work is on
jaxgan's side.

The CPU may be shared, so the two are measured alternately for ``--rounds``
rounds (PyTorch first in every other round), and medians are printed with the
ratios: of the two medians, and the median of the rounds' own ratios.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgan import xla_flags  # noqa: E402  (imports nothing heavy)

if __name__ == "__main__":
  xla_flags.restart_with_huge_pages()  # re-executes once (GLIBC_TUNABLES), as the entry points do
xla_flags.set_default_cpu_flags()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from configs import base  # noqa: E402
from jaxgan.models.dfgan import channel_widths  # noqa: E402
import train_throughput  # noqa: E402  (beside this file)


def _leaky(x):
  return F.leaky_relu(x, 0.2)


class Affine(nn.Module):
  """``gamma(c) * x + beta(c)``, each an MLP of the condition (DF-GAN)."""

  def __init__(self, cond_dim: int, features: int):
    super().__init__()
    self.gamma_fc1 = nn.Linear(cond_dim, features)
    self.gamma_fc2 = nn.Linear(features, features)
    self.beta_fc1 = nn.Linear(cond_dim, features)
    self.beta_fc2 = nn.Linear(features, features)
    for last, bias in ((self.gamma_fc2, 1.0), (self.beta_fc2, 0.0)):
      nn.init.zeros_(last.weight)
      nn.init.constant_(last.bias, bias)

  def forward(self, x, cond):
    gamma = self.gamma_fc2(F.relu(self.gamma_fc1(cond)))
    beta = self.beta_fc2(F.relu(self.beta_fc1(cond)))
    return gamma[:, :, None, None] * x + beta[:, :, None, None]


class DeepFusion(nn.Module):

  def __init__(self, cond_dim: int, features: int):
    super().__init__()
    self.affine0 = Affine(cond_dim, features)
    self.affine1 = Affine(cond_dim, features)

  def forward(self, x, cond):
    return _leaky(self.affine1(_leaky(self.affine0(x, cond)), cond))


class GeneratorBlock(nn.Module):

  def __init__(self, cond_dim: int, cin: int, cout: int):
    super().__init__()
    self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None
    self.fuse1 = DeepFusion(cond_dim, cin)
    self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
    self.fuse2 = DeepFusion(cond_dim, cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)

  def forward(self, x, cond):
    x = F.interpolate(x, scale_factor=2, mode="nearest")
    shortcut = x if self.shortcut is None else self.shortcut(x)
    h = self.conv2(self.fuse2(self.conv1(self.fuse1(x, cond)), cond))
    return shortcut + h


class Generator(nn.Module):

  def __init__(self, nf: int, image_size: int, z_dim: int, sentence_dim: int):
    super().__init__()
    widths = channel_widths(nf, image_size)[::-1]
    cond_dim = z_dim + sentence_dim
    self.width = widths[0]
    self.fc = nn.Linear(z_dim, 4 * 4 * widths[0])
    self.blocks = nn.ModuleList(GeneratorBlock(cond_dim, cin, cout)
                                for cin, cout in zip(widths[:-1], widths[1:]))
    self.to_rgb = nn.Conv2d(widths[-1], 3, 3, padding=1)

  def forward(self, z, sentence):
    cond = torch.cat([z, sentence], dim=1)
    x = self.fc(z).view(z.shape[0], self.width, 4, 4)
    for block in self.blocks:
      x = block(x, cond)
    return torch.tanh(self.to_rgb(_leaky(x)))


class DiscriminatorBlock(nn.Module):

  def __init__(self, cin: int, cout: int):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 4, stride=2, padding=1)
    self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
    self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None
    self.gamma = nn.Parameter(torch.zeros(()))

  def forward(self, x):
    h = _leaky(self.conv2(_leaky(self.conv1(x))))
    s = x if self.shortcut is None else self.shortcut(x)
    return F.avg_pool2d(s, 2) + self.gamma * h


class Discriminator(nn.Module):

  def __init__(self, nf: int, image_size: int, sentence_dim: int):
    super().__init__()
    widths = channel_widths(nf, image_size)
    self.conv_img = nn.Conv2d(3, widths[0], 3, padding=1)
    self.blocks = nn.ModuleList(DiscriminatorBlock(cin, cout)
                                for cin, cout in zip(widths[:-1], widths[1:]))
    self.joint_conv = nn.Conv2d(widths[-1] + sentence_dim, 2 * nf, 3, padding=1)
    self.out_conv = nn.Conv2d(2 * nf, 1, 4)

  def features(self, image):
    x = self.conv_img(image)
    for block in self.blocks:
      x = block(x)
    return x

  def logits(self, features, sentence):
    b, _, h, w = features.shape
    s = sentence[:, :, None, None].expand(b, sentence.shape[1], h, w)
    x = _leaky(self.joint_conv(torch.cat([features, s], dim=1)))
    return self.out_conv(x).view(b)


class TorchDFGAN:
  """DF-GAN's training step (official loop) and sampling, in PyTorch."""

  def __init__(self, nf, image_size, z_dim, sentence_dim, batches, sentences, config):
    torch.manual_seed(0)
    self.z_dim = z_dim
    self.g = Generator(nf, image_size, z_dim, sentence_dim)
    self.d = Discriminator(nf, image_size, sentence_dim)
    optim = config.optim
    self.g_opt = torch.optim.Adam(self.g.parameters(), lr=optim.g_lr, betas=(optim.b1, optim.b2))
    self.d_opt = torch.optim.Adam(self.d.parameters(), lr=optim.d_lr, betas=(optim.b1, optim.b2))
    # NHWC uint8 -> NCHW float in [-1, 1], as jaxgan's step does on device.
    self.images = [torch.from_numpy(np.asarray(b["image"])).permute(0, 3, 1, 2).float()
                   / 127.5 - 1.0 for b in batches]
    self.sentences = sentences
    self.k, self.p = float(config.loss.ma_gp_weight), float(config.loss.ma_gp_power)
    self._count = 0

  def step(self):
    i = self._count % len(self.images)
    self._count += 1
    real = self.images[i].clone().requires_grad_()
    sentence = self.sentences[i].clone().requires_grad_()
    real_features = self.d.features(real)
    real_logits = self.d.logits(real_features, sentence)
    mismatched_logits = self.d.logits(real_features, torch.roll(sentence, 1, 0))
    z = torch.randn(real.shape[0], self.z_dim)
    fake = self.g(z, sentence.detach())
    fake_logits = self.d.logits(self.d.features(fake.detach()), sentence)
    adversarial = (F.relu(1.0 - real_logits).mean()
                   + 0.5 * (F.relu(1.0 + fake_logits).mean()
                            + F.relu(1.0 + mismatched_logits).mean()))
    gx, gs = torch.autograd.grad(real_logits.sum(), (real, sentence), create_graph=True)
    sq = gx.flatten(1).square().sum(1) + gs.square().sum(1)
    d_loss = adversarial + self.k * (sq ** (self.p / 2)).mean()
    self.d_opt.zero_grad()
    d_loss.backward()
    self.d_opt.step()
    g_loss = -self.d.logits(self.d.features(fake), sentence.detach()).mean()
    self.g_opt.zero_grad()
    g_loss.backward()
    self.g_opt.step()

  def run(self, steps):
    start = time.perf_counter()
    for _ in range(steps):
      self.step()
    return time.perf_counter() - start

  def sample(self, iters, z, sentence):
    start = time.perf_counter()
    with torch.inference_mode():
      for _ in range(iters):
        self.g(z, sentence)
    return time.perf_counter() - start


def _count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--image_size", type=int, default=64)
  parser.add_argument("--nf", type=int, default=32)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--rounds", type=int, default=4,
                      help="an even number: each side goes first in half of them")
  parser.add_argument("--train_steps", type=int, default=2, help="steps per round and side")
  parser.add_argument("--sample_iters", type=int, default=5, help="G calls per round and side")
  args = parser.parse_args()

  config = base.get_config()
  config.image_size, config.batch_size, config.model.nf = (
      args.image_size, args.batch_size, args.nf)
  config.text.encoder, config.text.adapter = "bow", False
  # DF-GAN's own step, as the PyTorch side runs it (configs/base.py adds
  # heads, whose parameters the counts below would refuse).
  train_throughput.use_dfgan_step(config)
  batches, _ = train_throughput.prepare_batches(config, 4)

  ours = train_throughput.CompiledStep(config, batches)
  rss_jax = _peak_rss_mib()
  models = ours.models
  sentence_dim = config.text.embed_dim
  key = jax.random.key(1)
  z = jax.random.normal(key, (args.batch_size, config.model.z_dim))
  sentence = jax.random.normal(jax.random.fold_in(key, 1), (args.batch_size, sentence_dim))
  generate = jax.jit(lambda g, s, z, c: models.generate(g, s, z, c, train=False)[0])
  # Copies: the training step donates (and so deletes) the state's buffers.
  g_args = jax.tree.map(jnp.copy, (ours.state.generator_ema, ours.state.generator_state,
                                   z, sentence))
  start = time.perf_counter()
  jax.block_until_ready(generate(*g_args))
  g_compile_s = time.perf_counter() - start

  def jax_sample(iters):
    start = time.perf_counter()
    out = None
    for _ in range(iters):
      out = generate(*g_args)
    jax.block_until_ready(out)
    return time.perf_counter() - start

  theirs = TorchDFGAN(args.nf, args.image_size, config.model.z_dim, sentence_dim, batches,
                      [torch.randn(args.batch_size, sentence_dim) for _ in batches], config)
  counts = {"generator": (_count(ours.state.generator), sum(p.numel() for p in theirs.g.parameters())),
            "discriminator": (_count(ours.state.discriminator),
                              sum(p.numel() for p in theirs.d.parameters()))}
  for name, (jax_n, torch_n) in counts.items():
    assert jax_n == torch_n, f"{name}: jaxgan has {jax_n} parameters, PyTorch {torch_n}"
  theirs.run(1)  # warm-up
  torch_z = torch.from_numpy(np.array(z))
  torch_s = torch.from_numpy(np.array(sentence))
  theirs.sample(1, torch_z, torch_s)

  print(f"DF-GAN {args.image_size}x{args.image_size}, nf {args.nf}, batch {args.batch_size}; "
        f"G {counts['generator'][0]:,} and D {counts['discriminator'][0]:,} parameters on both "
        f"sides; jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  print(f"jaxgan compile: train step {ours.compile_s:.1f} s, generator {g_compile_s:.1f} s")
  times = {"jax_train": [], "torch_train": [], "jax_sample": [], "torch_sample": []}
  measure = {"jax_train": lambda: ours.run(args.train_steps),
             "torch_train": lambda: theirs.run(args.train_steps),
             "jax_sample": lambda: jax_sample(args.sample_iters),
             "torch_sample": lambda: theirs.sample(args.sample_iters, torch_z, torch_s)}
  for r in range(args.rounds):
    # Every other round PyTorch goes first: whichever side runs second also
    # meets what the first left behind (its threads, its freed memory).
    for kind in ("train", "sample"):
      order = ("jax", "torch") if r % 2 == 0 else ("torch", "jax")
      for side in order:
        times[f"{side}_{kind}"].append(measure[f"{side}_{kind}"]())
    print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
  img_s = {k: (args.train_steps if "train" in k else args.sample_iters) * args.batch_size
           / statistics.median(v) for k, v in times.items()}
  for kind, label in (("train", "training"), ("sample", "sampling")):
    # Each round's two sides ran back to back, so the ratio of one round is
    # measured under the same load; its median is steadier than the ratio of
    # the two medians when the machine's speed drifts between rounds.
    paired = statistics.median(t / j for j, t in zip(times[f"jax_{kind}"], times[f"torch_{kind}"]))
    print(f"{label} (img/s, median of {args.rounds}):  jaxgan {img_s[f'jax_{kind}']:7.1f}   "
          f"PyTorch {img_s[f'torch_{kind}']:7.1f}   ratio "
          f"{img_s[f'jax_{kind}'] / img_s[f'torch_{kind}']:.2f}x   "
          f"(median of the rounds' ratios {paired:.2f}x)")
  print(f"peak host memory (RSS): {rss_jax:.0f} MiB after jaxgan's step, "
        f"{_peak_rss_mib():.0f} MiB for the whole process")


if __name__ == "__main__":
  main()
