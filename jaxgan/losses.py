"""GAN losses and gradient penalties, as pure functions of logits.

Discriminator losses are matching-aware (DF-GAN): besides real images with
their captions (label real) and generated images (label fake), D sees real
images with mismatched captions (label fake). The two "fake" terms are
averaged, so a matching-aware loss has the same scale as a plain one.
Everything is computed and returned in float32, whatever the model dtype.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

LossFns = tuple[Callable[..., jax.Array], Callable[[jax.Array], jax.Array]]


def _f32(x: jax.Array) -> jax.Array:
  return jnp.asarray(x, jnp.float32)


def unit_norm(x: jax.Array) -> jax.Array:
  """``x`` in float32, scaled to unit L2 norm along the last axis (finite for
  an all-zero vector: rsqrt with an epsilon)."""
  x = _f32(x)
  return x * jax.lax.rsqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True) + 1e-12)


def hinge_d_loss(real_logits: jax.Array, fake_logits: jax.Array,
                 mismatched_logits: jax.Array) -> jax.Array:
  """Matching-aware hinge loss of the discriminator.

  Args:
    real_logits: D on real images with matching sentences.
    fake_logits: D on generated images.
    mismatched_logits: D on real images with mismatched sentences.

  Returns:
    Scalar ``mean(relu(1 - real)) + (mean(relu(1 + fake)) +
    mean(relu(1 + mismatched))) / 2``.
  """
  real = jnp.mean(jax.nn.relu(1.0 - _f32(real_logits)))
  fake = jnp.mean(jax.nn.relu(1.0 + _f32(fake_logits)))
  mis = jnp.mean(jax.nn.relu(1.0 + _f32(mismatched_logits)))
  return real + 0.5 * (fake + mis)


def hinge_g_loss(fake_logits: jax.Array) -> jax.Array:
  """Hinge loss of the generator: ``-mean(fake_logits)``."""
  return -jnp.mean(_f32(fake_logits))


def bce_d_loss(real_logits: jax.Array, fake_logits: jax.Array,
               mismatched_logits: jax.Array) -> jax.Array:
  """Matching-aware binary cross-entropy of the discriminator.

  Real is labelled 1, fake and mismatched 0. Written with softplus
  (``-log sigmoid(x) = softplus(-x)``) so that large logits stay finite.

  Args:
    real_logits: D on real images with matching sentences.
    fake_logits: D on generated images.
    mismatched_logits: D on real images with mismatched sentences.

  Returns:
    Scalar ``mean(softplus(-real)) + (mean(softplus(fake)) +
    mean(softplus(mismatched))) / 2``.
  """
  real = jnp.mean(jax.nn.softplus(-_f32(real_logits)))
  fake = jnp.mean(jax.nn.softplus(_f32(fake_logits)))
  mis = jnp.mean(jax.nn.softplus(_f32(mismatched_logits)))
  return real + 0.5 * (fake + mis)


def bce_g_loss(fake_logits: jax.Array) -> jax.Array:
  """Non-saturating generator loss: ``mean(softplus(-fake_logits))``."""
  return jnp.mean(jax.nn.softplus(-_f32(fake_logits)))


def mismatched_loss(kind: str, logits: jax.Array, valid: jax.Array) -> jax.Array:
  """D's loss on extra mismatched pairs (label fake), as heavy as DF-GAN's mismatched term.

  For pairs that only some examples have (a real image with its own caption,
  attribute words swapped: :mod:`jaxgan.data.caption_swaps`).

  Args:
    kind: "hinge" or "bce", the run's loss.
    logits: [B] D on the pairs.
    valid: [B] bool, which examples have such a pair.

  Returns:
    Scalar ``0.5 * mean(relu(1 + logits))`` (hinge) or ``0.5 *
    mean(softplus(logits))`` (bce) over the valid examples; 0 if none is.
  """
  if kind not in _FAKE_LABEL_LOSSES:
    raise ValueError(f"unknown loss {kind!r}; valid: {', '.join(sorted(_FAKE_LABEL_LOSSES))}")
  per_example = _FAKE_LABEL_LOSSES[kind](_f32(logits))
  weights = valid.astype(jnp.float32)
  return 0.5 * jnp.sum(per_example * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def _per_example_sq_norm(g: jax.Array) -> jax.Array:
  """Squared L2 norm over every axis but the first, in float32."""
  g = _f32(g)
  return jnp.sum(jnp.square(g).reshape(g.shape[0], -1), axis=1)


def ma_gp(logits_fn: Callable[[jax.Array, jax.Array], jax.Array],
          images: jax.Array, sentences: jax.Array, k: float = 2.0,
          p: float = 6.0) -> jax.Array:
  """DF-GAN's matching-aware gradient penalty on real matched pairs.

  Args:
    logits_fn: ``(images, sentences) -> [B] logits``, e.g.
      ``lambda x, s: D.apply(d_params, x, s)``.
    images: [B, H, W, C] real images.
    sentences: [B, D] their matching sentence embeddings.
    k: weight.
    p: power of the gradient norm.

  Returns:
    Scalar ``k * mean(||(dD/dx, dD/ds)||_2 ** p)``, the norm per example over
    both gradients together.
  """
  gx, gs = jax.grad(lambda x, s: jnp.sum(_f32(logits_fn(x, s))),
                    argnums=(0, 1))(images, sentences)
  return ma_gp_from_grads(gx, gs, k=k, p=p)


def ma_gp_from_grads(image_grads: jax.Array, sentence_grads: jax.Array,
                     k: float = 2.0, p: float = 6.0) -> jax.Array:
  """:func:`ma_gp` from the input gradients of D's summed logits.

  For a training step that already has them (a ``jax.vjp`` of the forward
  pass that gave the real logits), so D's image path is not run again.

  Args:
    image_grads: [B, H, W, C] ``d sum(D) / d images``.
    sentence_grads: [B, D] ``d sum(D) / d sentences``.
    k: weight.
    p: power of the gradient norm.

  Returns:
    Scalar ``k * mean(||(dD/dx, dD/ds)||_2 ** p)``.
  """
  sq = _per_example_sq_norm(image_grads) + _per_example_sq_norm(sentence_grads)
  # norm**p as sq**(p/2): avoids sqrt, whose derivative at 0 would make the
  # penalty's gradient w.r.t. D's params NaN when D is flat at an example.
  return k * jnp.mean(sq ** (p / 2.0))


def contrastive_loss(images: jax.Array, sentences: jax.Array,
                     temperature: float = 0.1,
                     queued_sentences: jax.Array | None = None,
                     queued_valid: jax.Array | None = None) -> jax.Array:
  """Symmetric InfoNCE between image and sentence embeddings (XMC-GAN).

  Example i's image and sentence are a positive pair; every other sentence
  (image) of the batch is a negative for image (sentence) i. Both directions
  are scored with a softmax cross-entropy over the batch and averaged. On
  a sharded batch the negatives are those of the global batch.

  With ``queued_sentences`` (MoCo-style: embeddings of captions from earlier
  steps), each image is also scored against them, so it must tell its own
  caption from hundreds of others: among them, captions that agree with it on
  everything but a detail, which a batch of 32 seldom holds.

  Args:
    images: [B, K] image embeddings, L2-normalised.
    sentences: [B, K] sentence embeddings, L2-normalised.
    temperature: divides the cosine similarities.
    queued_sentences: optional [N, K] more negative sentences, for the
      image-to-sentence direction only.
    queued_valid: optional [N] bool, which queued entries take part (e.g.
      slots not written yet do not); all of them if omitted.

  Returns:
    Scalar loss; ``log(B)`` when the embeddings carry no information and no
    queue is given.
  """
  logits = _f32(images) @ _f32(sentences).T / temperature
  queued = None
  if queued_sentences is not None:
    queued = _f32(images) @ _f32(queued_sentences).T / temperature
    if queued_valid is not None:
      queued = jnp.where(queued_valid[None, :], queued, -jnp.inf)
  return _symmetric_info_nce(logits, queued)


def real_fake_contrastive_loss(fake_features: jax.Array, real_features: jax.Array,
                               temperature: float = 0.1) -> jax.Array:
  """XMC-GAN's image-image contrastive loss, through D's image features.

  Fake i (made from caption i) and real image i (which caption i describes)
  are a positive pair, the batch's other real images (fakes) its negatives:
  symmetric InfoNCE over the cosines of the flattened features. Where the
  adversarial and image-sentence losses ask whether a fake fits its caption,
  this asks that it look, to D, like a real picture of it: a per-example
  target in every feature D computes, those that read shape included.

  Args:
    fake_features: [B, ...] D's features of the fakes.
    real_features: [B, ...] D's features of the real images, in caption order.
    temperature: divides the cosines.

  Returns:
    Scalar loss; ``log(B)`` when the features carry no information.
  """
  def flat(x):
    return unit_norm(x.reshape(x.shape[0], -1))

  return contrastive_loss(flat(fake_features), flat(real_features), temperature)


def _symmetric_info_nce(logits: jax.Array, queued: jax.Array | None = None) -> jax.Array:
  """InfoNCE over a [B, B] score matrix whose diagonal holds the positives,
  both directions averaged; ``queued`` [B, N] scores more negatives for the
  row-wise (image-to-text) direction only."""
  targets = jnp.arange(logits.shape[0])
  text_to_image = -jnp.take_along_axis(jax.nn.log_softmax(logits, axis=0),
                                       targets[None, :], axis=0)
  if queued is not None:
    logits = jnp.concatenate([logits, queued], axis=1)
  image_to_text = -jnp.take_along_axis(jax.nn.log_softmax(logits, axis=1),
                                       targets[:, None], axis=1)
  return 0.5 * (jnp.mean(image_to_text) + jnp.mean(text_to_image))


def region_word_scores(regions: jax.Array, words: jax.Array, word_mask: jax.Array,
                       attention_scale: float = 4.0,
                       aggregation_scale: float = 5.0) -> jax.Array:
  """How well each image's regions show each caption's words (AttnGAN's DAMSM
  score, XMC-GAN's word-region term): [B, N] float32.

  For image i and caption j, each word t of caption j attends over image i's
  regions (softmax of ``attention_scale`` times the cosines) and is compared,
  by cosine, with what it reads there, the attention-weighted region; the
  words' agreements are pooled by a soft maximum over caption j's real tokens
  (``log(mean_t exp(aggregation_scale * agreement_t)) / aggregation_scale``;
  DAMSM sums, which favours long captions). A word is then matched where in
  the image it is drawn, so the score asks that each named thing be
  somewhere, rather than that the image as a whole be close to the sentence.

  The attended region's norm is computed from the regions' Gram matrix
  (``|c|^2 = a^T G a``), never as a [B, N, T, K] tensor.

  Args:
    regions: [B, R, K] region embeddings, L2-normalised.
    words: [N, T, K] token embeddings, L2-normalised.
    word_mask: [N, T] bool, True where caption j has a token.
    attention_scale: sharpness of each word's attention over the regions.
    aggregation_scale: sharpness of the pooling over words.

  Returns:
    [B, N] scores in [-1, 1], higher: caption j's words are shown by image i.
  """
  regions, words = _f32(regions), _f32(words)
  cosines = jnp.einsum("ntk,brk->bntr", words, regions)
  attention = jax.nn.softmax(attention_scale * cosines, axis=-1)
  # <c, w> = sum_r a_r <r, w>, and |c|^2 = a^T G a with G the regions' Gram.
  dot = jnp.sum(attention * cosines, axis=-1)
  gram = jnp.einsum("brk,bsk->brs", regions, regions)
  norm_sq = jnp.einsum("bntr,brs,bnts->bnt", attention, gram, attention)
  agreement = dot * jax.lax.rsqrt(jnp.maximum(norm_sq, 1e-12))
  pooled = jnp.where(word_mask[None], aggregation_scale * agreement, -jnp.inf)
  # A soft mean rather than DAMSM's soft sum: the log of the token count is
  # taken off, or a longer caption would score higher against every image.
  count = jnp.maximum(jnp.sum(word_mask, axis=-1), 1).astype(jnp.float32)
  return (jax.nn.logsumexp(pooled, axis=-1) - jnp.log(count)[None]) / aggregation_scale


def region_word_loss(regions: jax.Array, words: jax.Array, word_mask: jax.Array,
                     temperature: float = 0.1) -> jax.Array:
  """Symmetric InfoNCE over :func:`region_word_scores` divided by
  ``temperature``: each image must pick its own caption by where its words
  are drawn, and each caption its own image. Scalar; ``log(B)`` when the
  scores carry no information."""
  return _symmetric_info_nce(region_word_scores(regions, words, word_mask) / temperature)


def caption_words(ids: jax.Array, mask: jax.Array, vocab_size: int) -> jax.Array:
  """Which token ids each caption holds: [B, vocab_size] float32 of 0 and 1.

  Args:
    ids: [B, L] token ids, or a word head's output indices
      (:meth:`jaxgan.models.gan.GanModels.word_head_ids`).
    mask: [B, L] True where a token is (False for padding).
    vocab_size: the number of ids (the word head's outputs).
  """
  rows = jnp.broadcast_to(jnp.arange(ids.shape[0])[:, None], ids.shape)
  return jnp.zeros((ids.shape[0], vocab_size), jnp.float32).at[rows, ids].max(
      mask.astype(jnp.float32))


def caption_log_likelihood(logits: jax.Array, ids: jax.Array, mask: jax.Array) -> jax.Array:
  """Per image, the log-likelihood of its caption's words under a word head:
  the sum over the vocabulary of each id's log sigmoid (present) or log
  (1 - sigmoid) (absent). [B] float32; see :func:`word_prediction_loss`."""
  logits = _f32(logits)
  targets = caption_words(ids, mask, logits.shape[-1])
  # log sigmoid(l) = l - softplus(l), log(1 - sigmoid(l)) = -softplus(l).
  return jnp.sum(targets * logits - jax.nn.softplus(logits), axis=-1)


def caption_word_mean(scores: jax.Array, ids: jax.Array, mask: jax.Array) -> jax.Array:
  """Per image, the mean of per-word scores over the distinct words of its
  caption (0 for an empty caption): [B] float32.

  Args:
    scores: [B, V] one score per scored token id.
    ids: [B, L] the captions' ids as indices of ``scores``' last axis.
    mask: [B, L] True where a token is.
  """
  targets = caption_words(ids, mask, scores.shape[-1])
  return jnp.sum(targets * _f32(scores), axis=-1) / jnp.maximum(jnp.sum(targets, axis=-1), 1.0)


def word_prediction_loss(logits: jax.Array, ids: jax.Array, mask: jax.Array) -> jax.Array:
  """Multi-label cross-entropy of an image's predicted caption words.

  Every id of the tokenizer is one binary label, 1 where the image's caption
  holds it (:func:`caption_words`): the sigmoid cross-entropy summed over the
  vocabulary, averaged over the batch. Each word is its own question ("is
  there a triangle?"), answered from the image alone, so no other attribute
  in the image gives it away, as it can when captions are told apart from
  the batch's others (:func:`contrastive_loss`).

  Args:
    logits: [B, V] float32, one per scored token id.
    ids: [B, L] the captions' token ids as indices of ``logits``' last axis
      (:meth:`jaxgan.models.gan.GanModels.word_head_ids`).
    mask: [B, L] True where a token is.

  Returns:
    Scalar float32.
  """
  return -jnp.mean(caption_log_likelihood(logits, ids, mask))


def hard_negative_indices(key: jax.Array, images: jax.Array, candidates: jax.Array,
                          valid: jax.Array, temperature: float) -> jax.Array:
  """Draws a hard mismatched caption for every image.

  Image i's caption is candidate i (the batch's captions come first); every
  other valid candidate is drawn with probability proportional to
  ``exp(cosine(image_i, candidate_j) / temperature)``, so the captions that
  the image embedding finds closest, the ones that differ from the right one
  in a detail, are drawn most (hard negatives, Robinson et al., 2021).
  Drawing rather than taking the closest keeps a paraphrase of the image's
  own caption, which may sit among the candidates, from being its negative
  every time.

  Args:
    key: PRNG key.
    images: [B, K] image embeddings, L2-normalised.
    candidates: [N, K] caption embeddings, L2-normalised, N >= B >= 2; the
      first B are the images' own captions.
    valid: [N] bool, which candidates may be drawn (e.g. queue slots not yet
      written are not).
    temperature: divides the cosines.

  Returns:
    [B] int32 indices into ``candidates``, never i for image i.
  """
  scores = _f32(images) @ _f32(candidates).T / temperature
  own = jnp.arange(candidates.shape[0])[None, :] == jnp.arange(images.shape[0])[:, None]
  scores = jnp.where(own | ~valid[None, :], -jnp.inf, scores)
  return jax.random.categorical(key, jax.lax.stop_gradient(scores), axis=-1)


def r1_penalty(logits_fn: Callable[[jax.Array], jax.Array],
               images: jax.Array, gamma: float) -> jax.Array:
  """R1 penalty (Mescheder et al., 2018) on real images.

  Args:
    logits_fn: ``images -> [B] logits``; close over the sentences for a
      conditional D, e.g. ``lambda x: D.apply(d_params, x, s)``.
    images: [B, H, W, C] real images.
    gamma: weight.

  Returns:
    Scalar ``gamma / 2 * mean(||dD/dx||_2 ** 2)``.
  """
  gx = jax.grad(lambda x: jnp.sum(_f32(logits_fn(x))))(images)
  return 0.5 * gamma * jnp.mean(_per_example_sq_norm(gx))


# Per example, the loss of a logit labelled fake (each d_loss's fake terms).
_FAKE_LABEL_LOSSES = {
    "hinge": lambda logits: jax.nn.relu(1.0 + logits),
    "bce": jax.nn.softplus,
}
_LOSSES = {
    "hinge": (hinge_d_loss, hinge_g_loss),
    "bce": (bce_d_loss, bce_g_loss),
}
# The loss kinds a config may name.
KINDS = tuple(_LOSSES)


def get_loss_fns(kind: str) -> LossFns:
  """Returns ``(d_loss, g_loss)`` for ``kind`` in {"hinge", "bce"}.

  Raises:
    ValueError: for an unknown ``kind``.
  """
  if kind not in _LOSSES:
    raise ValueError(
        f"unknown loss {kind!r}; valid: {', '.join(sorted(_LOSSES))}")
  return _LOSSES[kind]
