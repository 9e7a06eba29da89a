"""Fréchet distance between Gaussians fitted to two sets of features.

    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

The trace of the matrix square root is the only delicate term. ``S1 S2`` is not
symmetric, and a general ``sqrtm`` of it (what most FID code calls) can return
complex noise or fail to converge when the covariances are rank deficient,
which they are whenever there are fewer samples than feature dimensions. Here
it is computed from a symmetric PSD matrix instead: with ``R = S1^(1/2)``,
``S1 S2 = R (R S2 R) R^-1`` is similar to ``R S2 R``, so both have the same
eigenvalues, and ``tr((S1 S2)^(1/2)) = sum(sqrt(eigvalsh(R S2 R)))``. Every
step is a symmetric eigendecomposition in float64, and the tiny negative
eigenvalues that rounding produces are clipped to zero.
"""

from __future__ import annotations

import numpy as np


def statistics(features) -> tuple[np.ndarray, np.ndarray]:
  """Mean and covariance of features, in float64.

  Args:
    features: [N, D] array (any float dtype, numpy or JAX), N >= 2.

  Returns:
    ``(mu [D], sigma [D, D])``, the unbiased (N - 1) covariance.

  Raises:
    ValueError: if ``features`` is not 2-D or has fewer than two rows.
  """
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or features.shape[0] < 2:
    raise ValueError(f"features must be [N >= 2, D], got shape {features.shape}")
  mu = features.mean(axis=0)
  sigma = np.cov(features, rowvar=False)
  return mu, np.atleast_2d(sigma)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
  """Symmetric square root of a symmetric PSD matrix (negatives clipped)."""
  eigenvalues, eigenvectors = np.linalg.eigh(matrix)
  roots = np.sqrt(np.clip(eigenvalues, 0.0, None))
  return (eigenvectors * roots) @ eigenvectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
  """``tr((sigma1 sigma2)^(1/2))`` for symmetric PSD matrices, in float64."""
  sigma1 = np.asarray(sigma1, np.float64)
  sigma2 = np.asarray(sigma2, np.float64)
  # Symmetrise first: a covariance read back from disk or accumulated in
  # float32 is symmetric only up to rounding, and eigh reads one triangle.
  root = _psd_sqrt((sigma1 + sigma1.T) / 2)
  inner = root @ ((sigma2 + sigma2.T) / 2) @ root
  eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2)
  return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

  This is the quantity FID reports (it is a squared distance, despite the name).

  Args:
    mu1: [D] mean of the first set.
    sigma1: [D, D] covariance of the first set.
    mu2: [D] mean of the second set.
    sigma2: [D, D] covariance of the second set.

  Returns:
    A float >= 0 (clipped at 0 against rounding for identical inputs).

  Raises:
    ValueError: on mismatched or malformed shapes.
  """
  mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
  mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
  dim = mu1.shape[0]
  if (mu1.shape != (dim,) or mu2.shape != (dim,) or sigma1.shape != (dim, dim)
      or sigma2.shape != (dim, dim)):
    raise ValueError(f"shapes do not match: mu1 {mu1.shape}, sigma1 {sigma1.shape}, "
                     f"mu2 {mu2.shape}, sigma2 {sigma2.shape}")
  diff = mu1 - mu2
  value = (diff @ diff + np.trace(sigma1) + np.trace(sigma2)
           - 2.0 * trace_sqrt_product(sigma1, sigma2))
  return max(float(value), 0.0)


def frechet_distance_from_features(features1, features2) -> float:
  """Fréchet distance between the Gaussians fitted to two feature sets."""
  return frechet_distance(*statistics(features1), *statistics(features2))


def save_statistics(path: str, mu: np.ndarray, sigma: np.ndarray) -> None:
  """Writes reference statistics as ``.npz`` with arrays ``mu`` and ``sigma``."""
  np.savez(path, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64))


def load_statistics(path: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads ``(mu, sigma)`` written by :func:`save_statistics`."""
  with np.load(path) as data:
    return np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64)
