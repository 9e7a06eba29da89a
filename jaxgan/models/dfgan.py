"""DF-GAN: deep text-fusion generator and one-way matching-aware discriminator.

After Tao et al., "DF-GAN: A Simple and Effective Baseline for Text-to-Image
Synthesis" (CVPR 2022). Images are NHWC in [-1, 1]. Every layer gets the
module's ``dtype`` (compute) and ``param_dtype``; the generator's image and the
discriminator's logits always come back in float32 so losses and metrics never
see bf16.

Channel widths follow DF-GAN: with ``n = log2(image_size) - 1`` levels the
widths are ``nf * min(2**i, 8)`` for ``i < n``. The generator walks them from
widest to narrowest (one 2x upsampling per block, 4x4 -> image_size), the
discriminator from narrowest to widest (one 2x downsampling per block,
image_size -> 4x4). For 64x64 that is G: 8,8,4,2,1 x nf and D: 1,2,4,8,8 x nf;
for 16x16 the widest level is only 4 x nf (G: 4,2,1; D: 1,2,4).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.losses import unit_norm
from jaxgan.models.broadcast_ops import add_bias, modulate, rows_matmul

Dtype = Any

MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 256


def check_image_size(image_size: int) -> int:
  """Validates ``image_size`` and returns the number of 2x resampling blocks.

  Args:
    image_size: side of the square image.

  Returns:
    ``log2(image_size) - 2``, the number of blocks between 4x4 and the image.

  Raises:
    ValueError: if ``image_size`` is not a power of two in [16, 256].
  """
  valid = (isinstance(image_size, int)
           and MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE
           and image_size & (image_size - 1) == 0)
  if not valid:
    raise ValueError(
        f"image_size must be a power of two in [{MIN_IMAGE_SIZE}, "
        f"{MAX_IMAGE_SIZE}], got {image_size!r}")
  return int(math.log2(image_size)) - 2


def channel_widths(nf: int, image_size: int) -> list[int]:
  """DF-GAN widths from the image resolution up to 4x4 (narrow to wide).

  Args:
    nf: base width.
    image_size: side of the square image.

  Returns:
    ``num_blocks + 1`` widths; D uses them in this order, G reversed.
  """
  num_levels = check_image_size(image_size) + 1
  return [nf * min(2**i, 8) for i in range(num_levels)]


def _upsample2x(x: jax.Array) -> jax.Array:
  """Nearest-neighbour 2x upsampling of an NHWC tensor."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def with_coordinates(x: jax.Array) -> jax.Array:
  """``x`` [B, H, W, C] with two more channels: each pixel's row and column.

  The pixel centres' coordinates (CoordConv, Liu et al. 2018): rows from
  -1 + 1/H at the top to 1 - 1/H at the bottom, columns from -1 + 1/W at the
  left to 1 - 1/W at the right, so a pixel of the 2x nearest upsampling keeps
  its parent's coordinate to within half a small pixel. Computed in float32
  and cast once (bf16 cannot count past 256 in halves).
  """
  b, h, w, _ = x.shape
  rows = (jnp.arange(h, dtype=jnp.float32) + 0.5) * (2 / h) - 1
  cols = (jnp.arange(w, dtype=jnp.float32) + 0.5) * (2 / w) - 1
  grid = jnp.stack(jnp.meshgrid(rows, cols, indexing="ij"), axis=-1).astype(x.dtype)
  return jnp.concatenate([x, jnp.broadcast_to(grid, (b, h, w, 2))], axis=-1)


class Conv(nn.Module):
  """``nn.Conv(features, kernel_size, padding=padding)`` on NHWC images, stride 1.

  The same params (``kernel``, ``bias``), initialisation and values; only the
  bias gradient differs in how it is summed (a matmul, :func:`add_bias`),
  which XLA's CPU backend runs several times faster.
  """

  features: int
  kernel_size: tuple[int, int]
  padding: str = "SAME"
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (*self.kernel_size, x.shape[-1], self.features), self.param_dtype)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,),
                      self.param_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = jax.lax.conv_general_dilated(x, kernel, (1, 1), self.padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return add_bias(y, bias)


class Affine(nn.Module):
  """Text-conditioned per-channel affine: ``gamma(c) * x + beta(c)``.

  gamma and beta each come from a two-layer MLP of the condition. The last
  layer starts at weights 0 (bias 1 for gamma, 0 for beta), so the block is the
  identity at initialisation and the text is faded in by training rather than
  scrambling the features from step 0.
  """

  features: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array) -> jax.Array:
    def mlp(name, last_bias_init):
      h = nn.Dense(self.features, dtype=self.dtype,
                   param_dtype=self.param_dtype, name=f"{name}_fc1")(cond)
      h = nn.relu(h)
      return nn.Dense(self.features, dtype=self.dtype,
                      param_dtype=self.param_dtype,
                      kernel_init=nn.initializers.zeros,
                      bias_init=last_bias_init, name=f"{name}_fc2")(h)

    gamma = mlp("gamma", nn.initializers.ones)
    beta = mlp("beta", nn.initializers.zeros)
    # The same scale and shift at every position.
    return modulate(x.astype(self.dtype), gamma, beta)


class DeepFusion(nn.Module):
  """DF-GAN fusion block: two stacked affines, each followed by LeakyReLU."""

  features: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array) -> jax.Array:
    for i in range(2):
      x = Affine(self.features, dtype=self.dtype, param_dtype=self.param_dtype,
                 name=f"affine{i}")(x, cond)
      x = nn.leaky_relu(x, 0.2)
    return x


class WordModulation(nn.Module):
  """Per-pixel scale and shift from attention over the caption's words.

  Each pixel's features ask (a query) which words concern it; the answer (the
  attention-weighted words) scales and shifts that pixel's channels:
  ``x * (1 + gamma(ctx)) + beta(ctx)``, as AttnGAN's and XMC-GAN's generators
  condition on words. Unlike :class:`Affine`, whose scale and shift are the
  same at every pixel, this lets the top-left object take one word's colour
  and the bottom object another's. gamma and beta start at 0, so the module is
  the identity at initialisation.
  """

  features: int
  dim: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, words: jax.Array, word_mask: jax.Array) -> jax.Array:
    """``x`` [B, H, W, C], ``words`` [B, T, E], ``word_mask`` [B, T] (True: a word)."""
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = x.astype(self.dtype)
    words = words.astype(self.dtype)
    queries = nn.Dense(self.dim, use_bias=False, name="query", **kw)(x)
    keys = nn.Dense(self.dim, use_bias=False, name="key", **kw)(words)
    values = nn.Dense(self.dim, name="value", **kw)(words)
    # Scores and softmax in float32; padding takes no weight (a caption with
    # no token at all would spread it evenly; every encoder keeps at least one).
    logits = jnp.einsum("bhwd,btd->bhwt", queries, keys,
                        preferred_element_type=jnp.float32) / math.sqrt(self.dim)
    logits = jnp.where(word_mask[:, None, None, :], logits, -1e9)
    weights = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    context = jnp.einsum("bhwt,btd->bhwd", weights, values)
    zeros = dict(kernel_init=nn.initializers.zeros, bias_init=nn.initializers.zeros)
    gamma = nn.Dense(self.features, name="gamma", **zeros, **kw)(context)
    beta = nn.Dense(self.features, name="beta", **zeros, **kw)(context)
    return x * (1 + gamma) + beta


# Which of a 3x3 kernel's rows (columns) meet which of the two input rows an
# output row of phase p reads, for a 3x3 convolution of a nearest-upsampled
# input: output row 2i reads input rows (i - 1, i) with kernel rows (0, 1 + 2),
# output row 2i + 1 reads (i, i + 1) with kernel rows (0 + 1, 2).
_UPSAMPLE_TAPS = (((1, 0, 0), (0, 1, 1)), ((1, 1, 0), (0, 0, 1)))


def _upsample_conv_kernel(kernel: jax.Array) -> jax.Array:
  """[3, 3, C, F] -> the four phases' 2x2 kernels, [2, 2, C, 4 F] ((p, q, F) order)."""
  c, f = kernel.shape[2:]
  taps = jnp.asarray(_UPSAMPLE_TAPS, kernel.dtype)  # [phase, tap, kernel row]
  merged = jnp.einsum("pak,qbl,klcf->abcpqf", taps, taps, kernel)
  return merged.reshape(2, 2, c, 4 * f)


def _phases_to_image(y: jax.Array, h: int, w: int) -> jax.Array:
  """[B, H + 1, W + 1, 4 F] phase outputs -> [B, 2H, 2W, F].

  Output pixel (2i + p, 2j + q) is phase (p, q)'s value at (i + p, j + q).
  """
  b, f = y.shape[0], y.shape[-1] // 4
  y = y.reshape(b, h + 1, w + 1, 2, 2, f)
  rows = [jnp.stack([y[:, p:p + h, q:q + w, p, q] for q in (0, 1)], axis=3)
          for p in (0, 1)]
  return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, f)


def _upsample_conv_phases(x: jax.Array, phase_kernel: jax.Array) -> jax.Array:
  """A 3x3 SAME convolution of the 2x nearest upsampling of ``x``, without it.

  Each output pixel of a 3x3 convolution of a nearest-upsampled image reads a
  2x2 neighbourhood of the small image (the taps that fall on one input pixel
  add up), so the four output phases are one 2x2 convolution of the
  zero-padded small image with 4 F outputs (``phase_kernel``, from
  :func:`_upsample_conv_kernel`): 16 instead of 36 multiply-adds per small
  pixel and input channel (over (H + 1) x (W + 1) positions, one border row
  and column more), and no upsampled copy of the input.
  """
  _, h, w, _ = x.shape
  y = jax.lax.conv_general_dilated(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))),
                                   phase_kernel, (1, 1), "VALID",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return _phases_to_image(y, h, w)


class UpsampleConv3x3(nn.Module):
  """``nn.Conv(features, (3, 3))`` applied to the 2x nearest upsampling of x.

  The same params (``kernel`` [3, 3, C, features], ``bias``), initialisation
  and values (up to float rounding) as ``nn.Conv(features, (3, 3))`` applied
  to ``_upsample2x(x)``, computed without building the upsampled input
  (:func:`_upsample_conv_phases`).
  """

  features: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features), self.param_dtype)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,),
                      self.param_dtype)
    # The taps are merged in the params' dtype, then cast once like nn.Conv's
    # kernel (with bf16 compute, merging after the cast would round twice).
    x, phase_kernel, bias = nn.dtypes.promote_dtype(
        x, _upsample_conv_kernel(kernel), bias, dtype=self.dtype)
    return add_bias(_upsample_conv_phases(x, phase_kernel), bias)


class GeneratorBlock(nn.Module):
  """2x nearest upsampling, then ``shortcut(x) + residual(x, cond)``.

  DF-GAN upsamples first; here the layers that commute with nearest
  upsampling (the 1x1 shortcut, and the first fusion's per-channel affines and
  LeakyReLUs) run on the small image and are upsampled after, and the first
  3x3 convolution reads the small image directly (:class:`UpsampleConv3x3`).
  Same params, same function: the shortcut and the first fusion do a quarter
  of their work, the first convolution 45-69% of it (less in the larger
  blocks); about 303 M instead of 444 M multiply-adds per 64x64 image at nf 32.
  With ``coordinates`` the upsample-first block it equals appends the small
  image's coordinates before upsampling (:func:`with_coordinates`).
  """

  in_features: int
  out_features: int
  coordinates: bool = False
  word_attention: int = 0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array, words: jax.Array | None = None,
               word_mask: jax.Array | None = None) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = x.astype(self.dtype)
    shortcut = x
    if self.in_features != self.out_features:
      shortcut = Conv(self.out_features, (1, 1), name="shortcut", **kw)(x)
    # With coordinates, each fusion also scales and shifts the pixels' row
    # and column by the text: after its LeakyReLU a coordinate channel is a
    # ramp that bends at a row (column) the caption picks, and the
    # convolution after it mixes those into edges and corners. fuse1 runs on
    # the small image, so it sees the block input's coordinates (each shared
    # by the 2x2 pixels it becomes), fuse2 the output pixels' own. The
    # residual path reads them, the shortcut does not.
    extra = 2 if self.coordinates else 0
    add_coordinates = with_coordinates if self.coordinates else lambda v: v
    h = DeepFusion(self.in_features + extra, name="fuse1", **kw)(add_coordinates(x), cond)
    if self.word_attention:
      # Per pixel, so it commutes with the upsampling like fuse1.
      h = WordModulation(self.in_features + extra, self.word_attention, name="words",
                         **kw)(h, words, word_mask)
    h = UpsampleConv3x3(self.out_features, name="conv1", **kw)(h)
    h = DeepFusion(self.out_features + extra, name="fuse2", **kw)(add_coordinates(h), cond)
    h = Conv(self.out_features, (3, 3), name="conv2", **kw)(h)
    return _upsample2x(shortcut) + h


class Generator(nn.Module):
  """DF-GAN generator: ``(z, sentence) -> image`` in [-1, 1].

  Attributes:
    nf: base width; the 4x4 stem has ``8 * nf`` channels (``4 * nf`` for
      16x16 images).
    image_size: output side, a power of two in [16, 256].
    text_stem: the 4x4 stem reads the sentence too (``fc`` of the noise and
      the sentence, as in StackGAN and AttnGAN), not the noise alone (DF-GAN).
      The fusion blocks' affines scale and shift every pixel alike, so without
      it where things go can only come from the noise's layout; with it the
      caption lays out the 4x4 map that the blocks refine.
    coordinates: every block's fusions also see the pixels' rows and columns
      (:func:`with_coordinates`; the first fusion at the block's input
      resolution), so the text can place edges, where DF-GAN's affines alone
      give it no handle on where a pixel is.
    word_attention: attention width of each block's :class:`WordModulation`
      (after its first fusion, on the block's input resolution); 0: none. The
      generator then takes the caption's word (token) states with the sentence.
    dtype: compute dtype.
    param_dtype: parameter dtype.

  Parameters (top level): ``fc``, ``block_0`` ... ``block_{k-1}``, ``to_rgb``.
  """

  nf: int = 32
  image_size: int = 64
  text_stem: bool = False
  coordinates: bool = False
  word_attention: int = 0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def __post_init__(self):
    # Fail at construction, not at the first (jitted) init.
    check_image_size(self.image_size)
    super().__post_init__()

  @nn.compact
  def __call__(self, z: jax.Array, sentence: jax.Array, train: bool = False,
               words: jax.Array | None = None,
               word_mask: jax.Array | None = None) -> jax.Array:
    """Generates images.

    Args:
      z: [B, Z] noise.
      sentence: [B, D] sentence embedding.
      train: unused (no batch statistics); accepted so calling code can treat
        every generator alike.
      words: [B, T, E] the caption's token states (``word_attention`` only).
      word_mask: [B, T] bool, True where ``words`` holds a token.

    Returns:
      [B, S, S, 3] float32 images in [-1, 1].
    """
    del train
    if self.word_attention and (words is None or word_mask is None):
      raise ValueError("Generator(word_attention=...) needs the caption's words and "
                       "word_mask")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    widths = channel_widths(self.nf, self.image_size)[::-1]
    # Every affine sees noise and text, as in DF-GAN.
    cond = jnp.concatenate(
        [z.astype(self.dtype), sentence.astype(self.dtype)], axis=-1)
    x = nn.Dense(4 * 4 * widths[0], name="fc", **kw)(cond if self.text_stem else z)
    x = x.reshape(z.shape[0], 4, 4, widths[0])
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
      x = GeneratorBlock(cin, cout, coordinates=self.coordinates,
                         word_attention=self.word_attention, name=f"block_{i}",
                         **kw)(x, cond, words, word_mask)
    x = nn.leaky_relu(x, 0.2)
    x = Conv(3, (3, 3), name="to_rgb", **kw)(x)
    # tanh in float32: bf16 would quantise the image before it is returned.
    return jnp.tanh(x.astype(jnp.float32))


def _downsample_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The 4x4, stride-2, pad-1 convolution as XLA's convolution."""
  return jax.lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _downsample_matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The same convolution as patches times kernel (im2col), for XLA's CPU.

  The padded input's 2x2 blocks are stacked into channels (space-to-depth),
  and the 2x2 neighbourhoods of blocks that each output reads are
  concatenated: [B, H/2, W/2, 16 C], one matmul with the kernel rearranged to
  [16 C, F]. Padded row 2i + r lands in block row i, group r; kernel row
  2a + r meets block row y + a of output row y (columns alike).
  """
  b, h, w, c = x.shape
  features = kernel.shape[-1]
  x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  hb, wb = h // 2 + 1, w // 2 + 1
  x = x.reshape(b, hb, 2, wb, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, hb, wb, 4 * c)
  patches = jnp.concatenate([x[:, a:a + h // 2, e:e + w // 2]
                             for a in (0, 1) for e in (0, 1)], axis=-1)
  # [4 (2a + r), 4 (2e + s), C, F] -> [a, e, r, s, C, F], the patches' order.
  kernel = kernel.reshape(2, 2, 2, 2, c, features).transpose(0, 2, 1, 3, 4, 5)
  return rows_matmul(patches, kernel.reshape(16 * c, features))


class Downsample4x4(nn.Module):
  """D's 4x4 convolution with stride 2 and padding 1 (H x W -> H/2 x W/2).

  The same layer as ``nn.Conv(features, (4, 4), strides=2, padding=1)``:
  the same params (``kernel`` [4, 4, C, features], ``bias``), the same
  initialisation and the same values up to float rounding. On CPU it runs as
  patches times kernel (:func:`_downsample_matmul`): XLA's CPU backend takes
  the weight gradient of a strided convolution in a form that took 70% of the
  whole 64x64 training step (benchmarks/README.md), where a matmul's
  gradients are matmuls. Other
  platforms keep the convolution. Needs an even height and width.
  """

  features: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    _, h, w, c = x.shape
    if h % 2 or w % 2:
      raise ValueError(f"Downsample4x4 needs an even height and width, got {h}x{w}")
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (4, 4, c, self.features), self.param_dtype)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,),
                      self.param_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = jax.lax.platform_dependent(x, kernel, cpu=_downsample_matmul,
                                   default=_downsample_conv)
    return add_bias(y, bias)


class DiscriminatorBlock(nn.Module):
  """``shortcut(x) + gamma * residual(x)`` with a 2x downsampling.

  gamma is a learned scalar starting at ``residual_init``: with DF-GAN's 0 the
  block is its (pooled, linear) shortcut at initialisation, and the residual,
  the block's only nonlinearity, is faded in by training.
  """

  in_features: int
  out_features: int
  residual_init: float = 0.0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    h = Downsample4x4(self.out_features, name="conv1", **kw)(x)
    h = nn.leaky_relu(h, 0.2)
    h = Conv(self.out_features, (3, 3), name="conv2", **kw)(h)
    h = nn.leaky_relu(h, 0.2)
    # DF-GAN pools after the 1x1 shortcut. The shortcut is the same affine map
    # at every pixel and the pool's weights sum to 1, so pooling first gives
    # the same with a quarter of the shortcut's work.
    s = nn.avg_pool(x.astype(self.dtype), (2, 2), strides=(2, 2))
    if self.in_features != self.out_features:
      s = Conv(self.out_features, (1, 1), name="shortcut", **kw)(s)
    gamma = self.param("gamma", nn.initializers.constant(self.residual_init), (),
                       self.param_dtype)
    return s + gamma.astype(self.dtype) * h


class Discriminator(nn.Module):
  """DF-GAN one-way discriminator: ``(image, sentence) -> logit``.

  The image path (:meth:`features`) does not see the text, so the features of
  a real batch are computed once and scored against matching and mismatched
  sentences with :meth:`logits`::

    feats = D.apply(params, real, method=D.features)
    real_logits = D.apply(params, feats, sent, method=D.logits)
    mis_logits = D.apply(params, feats, jnp.roll(sent, 1, 0), method=D.logits)

  With ``contrastive_dim`` > 0 it also has :meth:`embeddings`: projections
  of the image features and of the sentence into one space, for XMC-GAN's
  image-sentence contrastive loss (:func:`jaxgan.losses.contrastive_loss`).

  Attributes:
    nf: base width; the 4x4 features have ``8 * nf`` channels (``4 * nf`` for
      16x16 images).
    image_size: input side, a power of two in [16, 256].
    contrastive_dim: size of the contrastive embeddings; 0 = no such head.
    view_dim: size of the embeddings of :meth:`view_embeddings` (the
      self-supervised head); 0 = no such head.
    residual_init: where the blocks' residual gammas start (DF-GAN: 0, so
      the image path starts linear; see :class:`DiscriminatorBlock`).
    word_dim: hidden size of the caption-word head (:meth:`word_logits`);
      0 = no such head.
    word_vocab: the number of token ids that head scores (the tokenizer's,
      or those the training captions use; see ``GanModels.word_head_ids``).
    region_dim: size of the region and word embeddings of
      :meth:`region_word_embeddings` (the word-region contrastive head);
      0 = no such head.
    projection_dim: hidden size of the word projection head
      (:meth:`word_projection`), over the caption-word head's ``word_vocab``
      ids; 0 = no such head.
    dtype: compute dtype.
    param_dtype: parameter dtype.

  Parameters (top level): ``conv_img``, ``blocks_0`` ... ``blocks_{k-1}``,
  ``joint_conv``, ``out_conv``, with ``contrastive_dim`` ``image_embed``
  and ``sentence_embed``, with ``view_dim`` ``view_hidden`` and
  ``view_embed``, with ``word_dim`` ``word_hidden`` and ``word_out``, with
  ``region_dim`` ``region_embed``, ``region_position`` and ``token_embed``,
  with ``projection_dim`` ``projection_hidden`` and ``projection_out``.
  """

  nf: int = 32
  image_size: int = 64
  contrastive_dim: int = 0
  view_dim: int = 0
  residual_init: float = 0.0
  word_dim: int = 0
  word_vocab: int = 0
  region_dim: int = 0
  projection_dim: int = 0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def __post_init__(self):
    check_image_size(self.image_size)
    for name in ("word_dim", "projection_dim"):
      if getattr(self, name) and self.word_vocab < 1:
        raise ValueError(f"a head over the caption's words ({name}={getattr(self, name)}) "
                         f"needs word_vocab >= 1, got {self.word_vocab}")
    super().__post_init__()

  def setup(self):
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    widths = channel_widths(self.nf, self.image_size)
    self.conv_img = Conv(widths[0], (3, 3), **kw)
    self.blocks = [DiscriminatorBlock(cin, cout, residual_init=self.residual_init, **kw)
                   for cin, cout in zip(widths[:-1], widths[1:])]
    self.joint_conv = Conv(2 * self.nf, (3, 3), **kw)
    self.out_conv = Conv(1, (4, 4), padding="VALID", **kw)
    if self.contrastive_dim:
      self.image_embed = nn.Dense(self.contrastive_dim, **kw)
      self.sentence_embed = nn.Dense(self.contrastive_dim, **kw)
    if self.view_dim:
      self.view_hidden = nn.Dense(widths[-1], **kw)
      self.view_embed = nn.Dense(self.view_dim, **kw)
    if self.word_dim:
      self.word_hidden = nn.Dense(self.word_dim, **kw)
      # A caption holds few of the scored ids (about 10 of MiniLM's 30,522,
      # or of the 96 the shapes captions use): start every word unlikely
      # (sigmoid ~ 1 / vocabulary), not at one half, so that the loss starts
      # near its present words' share instead of V log 2.
      self.word_out = nn.Dense(
          self.word_vocab, bias_init=nn.initializers.constant(-math.log(self.word_vocab)),
          **kw)
    if self.region_dim:
      self.region_embed = nn.Dense(self.region_dim, **kw)
      # One learned vector per cell of the 4x4 grid, added to its region's
      # embedding: the attention over regions is blind to their order, and a
      # caption's words say where things are.
      self.region_position = self.param(
          "region_position", nn.initializers.normal(0.02), (16, self.region_dim),
          self.param_dtype)
      self.token_embed = nn.Dense(self.region_dim, **kw)
    if self.projection_dim:
      self.projection_hidden = nn.Dense(self.projection_dim, **kw)
      # Zero: D's logit starts as without the head, and G's first steps
      # answer to the matching head alone.
      self.projection_out = nn.Dense(self.word_vocab, use_bias=False,
                                     kernel_init=nn.initializers.zeros, **kw)

  def features(self, image: jax.Array) -> jax.Array:
    """Text-free image features.

    Args:
      image: [B, S, S, 3] images in [-1, 1].

    Returns:
      [B, 4, 4, C] features in the compute dtype, ``C = 8 * nf`` (``4 * nf``
      for 16x16 images).
    """
    x = self.conv_img(image)
    for block in self.blocks:
      x = block(x)
    return x

  def logits(self, features: jax.Array, sentence: jax.Array) -> jax.Array:
    """Scores image features against sentences.

    Args:
      features: [B, 4, 4, C] output of :meth:`features`.
      sentence: [B, D] sentence embeddings.

    Returns:
      [B] float32 logits (higher: real and matching).
    """
    b, h, w, _ = features.shape
    s = jnp.broadcast_to(sentence.astype(self.dtype)[:, None, None, :],
                         (b, h, w, sentence.shape[-1]))
    x = jnp.concatenate([features.astype(self.dtype), s], axis=-1)
    x = nn.leaky_relu(self.joint_conv(x), 0.2)
    x = self.out_conv(x)
    return x.reshape(b).astype(jnp.float32)

  def embeddings(self, features: jax.Array,
                 sentence: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Unit-norm contrastive embeddings of image features and sentences.

    The image side reads the flattened 4x4 features, not a pooled vector:
    where an object is belongs to what the caption says.

    Args:
      features: [B, 4, 4, C] output of :meth:`features`.
      sentence: [N, D] sentence embeddings (N need not be B: both sides are
        projected separately).

    Returns:
      ``(images, sentences)``, [B, contrastive_dim] and [N, contrastive_dim]
      float32, L2-normalised.
    """
    if not self.contrastive_dim:
      raise ValueError("this discriminator has no contrastive head (contrastive_dim=0)")
    b = features.shape[0]
    image = self.image_embed(features.reshape(b, -1).astype(self.dtype))
    text = self.sentence_embed(sentence.astype(self.dtype))
    return unit_norm(image), unit_norm(text)

  def view_embeddings(self, features: jax.Array) -> jax.Array:
    """Unit-norm embeddings of images for the self-supervised loss, which
    matches two random views of one image (SimCLR, ContraD).

    The head reads the features averaged over the 4x4 grid, so that a view
    moved by a translation can still match. It is an MLP (SimCLR's projection
    head) so that the invariances the loss asks for can be learned in the
    head, not forced on the features the other heads share.

    Args:
      features: [B, 4, 4, C] output of :meth:`features`.

    Returns:
      [B, view_dim] float32, L2-normalised.
    """
    if not self.view_dim:
      raise ValueError("this discriminator has no self-supervised head (view_dim=0)")
    pooled = jnp.mean(features.astype(self.dtype), axis=(1, 2))
    return unit_norm(self.view_embed(nn.leaky_relu(self.view_hidden(pooled), 0.2)))

  def word_logits(self, features: jax.Array) -> jax.Array:
    """Which words an image's caption holds, one output per scored token id
    (a multi-label head).

    Trained on real images with their captions
    (:func:`jaxgan.losses.word_prediction_loss`), it must answer for every
    word from the image alone; G is asked to make each fake answer with its
    own caption's words. Reads the flattened 4x4 features (position words
    need the layout).

    Args:
      features: [B, 4, 4, C] output of :meth:`features`.

    Returns:
      [B, word_vocab] float32 logits.
    """
    if not self.word_dim:
      raise ValueError("this discriminator has no caption-word head (word_dim=0)")
    b = features.shape[0]
    hidden = nn.leaky_relu(self.word_hidden(features.reshape(b, -1).astype(self.dtype)), 0.2)
    return self.word_out(hidden).astype(jnp.float32)

  def word_projection(self, features: jax.Array) -> jax.Array:
    """Per scored word, how real an image looks as a picture of that word:
    [B, word_vocab] float32 (the projection discriminator's class term,
    Miyato & Koyama 2018, with the caption's words as the classes).

    :meth:`jaxgan.models.gan.GanModels.d_logits` adds the mean over the
    caption's words to D's matching logit, so these scores are trained by the
    adversarial loss itself: up on real images for their own words, down for
    another caption's words and on fakes for theirs. Unlike
    :meth:`word_logits`, trained on real images alone, it is a critic of
    G's pictures of each word, not a reader G can satisfy with any image it
    reads the word from. Reads the flattened 4x4 features.

    Args:
      features: [B, 4, 4, C] output of :meth:`features`.
    """
    if not self.projection_dim:
      raise ValueError("this discriminator has no word projection head (projection_dim=0)")
    b = features.shape[0]
    hidden = nn.leaky_relu(
        self.projection_hidden(features.reshape(b, -1).astype(self.dtype)), 0.2)
    return self.projection_out(hidden).astype(jnp.float32)

  def region_word_embeddings(self, features: jax.Array,
                             words: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Unit-norm embeddings of the image's regions and of the caption's
    tokens in one space, for the word-region contrastive loss
    (:func:`jaxgan.losses.region_word_loss`, XMC-GAN's word-region term).

    Each of the 4x4 feature cells is a region, projected on its own (a 1x1
    map) plus a learned embedding of its cell, so a word can be found where
    it is drawn ("left" in the left cells, "circle" where the circle is): D
    must tell which cell shows what, and G is pulled, cell by cell, towards
    showing each word of its caption where the caption puts it.

    Args:
      features: [B, 4, 4, C] output of :meth:`features`.
      words: [N, T, E] the captions' token states (N need not be B).

    Returns:
      ``(regions, tokens)``, [B, 16, region_dim] and [N, T, region_dim]
      float32, L2-normalised.
    """
    if not self.region_dim:
      raise ValueError("this discriminator has no word-region head (region_dim=0)")
    b, h, w, c = features.shape
    if h * w != self.region_position.shape[0]:
      raise ValueError(f"the word-region head reads 4x4 features, got {h}x{w}")
    regions = (self.region_embed(features.reshape(b, h * w, c).astype(self.dtype))
               + self.region_position.astype(self.dtype))
    return unit_norm(regions), unit_norm(self.token_embed(words.astype(self.dtype)))

  def __call__(self, image: jax.Array, sentence: jax.Array,
               words: jax.Array | None = None) -> jax.Array:
    """``logits(features(image), sentence)``: [B] float32 logits.

    ``words`` ([B, T, E] token states) is read only at initialisation, to
    size the word-region head's token projection (``region_dim`` > 0).
    """
    features = self.features(image)
    if self.is_initializing():  # creates the optional heads' params
      if self.region_dim:
        if words is None:
          raise ValueError("a word-region head (region_dim > 0) is initialised from the "
                           "captions' token states: pass words=")
        self.region_word_embeddings(features, words)
      if self.contrastive_dim:
        self.embeddings(features, sentence)
      if self.view_dim:
        self.view_embeddings(features)
      if self.word_dim:
        self.word_logits(features)
      if self.projection_dim:
        self.word_projection(features)
    return self.logits(features, sentence)


__all__ = [
    "Conv", "Affine", "DeepFusion", "WordModulation", "GeneratorBlock", "Generator",
    "Downsample4x4",
    "DiscriminatorBlock", "Discriminator", "channel_widths",
    "check_image_size", "with_coordinates",
]
