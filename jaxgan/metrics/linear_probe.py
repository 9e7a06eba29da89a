"""Linear probes: how much of a label a representation carries, read linearly.

Used by ``scripts/feature_probes.py`` to ask which caption attributes a run's
discriminator features and sentence embeddings hold.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax


def probe_accuracy(features: np.ndarray, labels: np.ndarray, num_train: int,
                   num_classes: int, *, steps: int = 500, l2: float = 1e-3) -> float:
  """Held-out accuracy of a softmax regression on ``features``.

  Each feature is standardised with the training rows' mean and deviation, so
  the L2 penalty weighs all features alike whatever their scale.

  Args:
    features: [N, ...] one representation per example (flattened here).
    labels: [N] integer labels in [0, num_classes).
    num_train: rows ``[:num_train]`` fit the probe (full-batch Adam), the rest
      score it.
    num_classes: the number of labels.
    steps: Adam steps.
    l2: weight of the squared weights' sum in the loss.

  Returns:
    The fraction of held-out rows the probe labels right.
  """
  if not 0 < num_train < len(features):
    raise ValueError(f"num_train={num_train} leaves no rows to fit or to score "
                     f"({len(features)} rows)")
  x = np.asarray(features, np.float32).reshape(len(features), -1)
  mean, std = x[:num_train].mean(0), x[:num_train].std(0) + 1e-6
  x = jnp.asarray((x - mean) / std)
  y = jnp.asarray(labels)
  params = {"w": jnp.zeros((x.shape[1], num_classes)), "b": jnp.zeros((num_classes,))}
  tx = optax.adam(1e-2)

  def loss(params):
    logits = x[:num_train] @ params["w"] + params["b"]
    return (optax.softmax_cross_entropy_with_integer_labels(logits, y[:num_train]).mean()
            + l2 * jnp.sum(jnp.square(params["w"])))

  @jax.jit
  def fit(params):
    def update(carry, _):
      params, opt_state = carry
      updates, opt_state = tx.update(jax.grad(loss)(params), opt_state)
      return (optax.apply_updates(params, updates), opt_state), None
    (params, _), _ = jax.lax.scan(update, (params, tx.init(params)), None, length=steps)
    return params

  params = fit(params)
  predictions = jnp.argmax(x[num_train:] @ params["w"] + params["b"], axis=-1)
  return float(jnp.mean(predictions == y[num_train:]))
