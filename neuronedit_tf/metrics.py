"""The paper's metrics and the field's, on 2-D arrays ``(rows, features)``.

All functions take numpy arrays (or anything ``np.asarray`` accepts) already on
the scale to compare (for cytometry: arcsinh-transformed values).
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def _matrix(values, name):
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (rows, features); got {values.shape}.")
    return values


def median_change_r(source, target, sample, edited):
    """The paper's Table 2 metric: Pearson r between the spike-in per-feature median
    change (``target - source``) and the change applied to the sample (``edited - sample``).

    Example:
        >>> import numpy as np
        >>> s = np.random.default_rng(0).normal(size=(500, 4))
        >>> shift = np.array([0.5, -1.0, 0.0, 2.0])
        >>> round(median_change_r(s, s + shift, s, s + shift), 6)
        1.0
    """
    observed = np.median(_matrix(target, "target"), 0) - np.median(_matrix(source, "source"), 0)
    applied = np.median(_matrix(edited, "edited"), 0) - np.median(_matrix(sample, "sample"), 0)
    return float(np.corrcoef(observed, applied)[0, 1])


def emd_per_feature(predicted, truth):
    """1-D earth mover's (Wasserstein-1) distance per feature; shape ``(features,)``."""
    predicted, truth = _matrix(predicted, "predicted"), _matrix(truth, "truth")
    if predicted.shape[1] != truth.shape[1]:
        raise ValueError(f"Feature counts differ: {predicted.shape[1]} vs {truth.shape[1]}.")
    return np.array(
        [stats.wasserstein_distance(predicted[:, k], truth[:, k]) for k in range(truth.shape[1])]
    )


def mean_emd(predicted, truth):
    """Mean over features of :func:`emd_per_feature`."""
    return float(emd_per_feature(predicted, truth).mean())


def emd_noise_floor(truth, seed=0):
    """Mean per-feature EMD between two random halves of ``truth``: the sampling floor."""
    truth = _matrix(truth, "truth")
    order = np.random.default_rng(seed).permutation(len(truth))
    half = len(truth) // 2
    return mean_emd(truth[order[:half]], truth[order[half:]])


def moment_r(predicted, truth):
    """The paper's Table 3 metrics: Pearson r of per-feature means and of variances."""
    predicted, truth = _matrix(predicted, "predicted"), _matrix(truth, "truth")
    means = float(np.corrcoef(predicted.mean(0), truth.mean(0))[0, 1])
    variances = float(np.corrcoef(predicted.var(0), truth.var(0))[0, 1])
    return means, variances


def energy_distance(predicted, truth, max_rows=2000, seed=0):
    """Energy distance between two multivariate samples (subsampled to ``max_rows``)."""
    predicted, truth = _subsample(predicted, max_rows, seed), _subsample(truth, max_rows, seed + 1)
    from scipy.spatial.distance import cdist

    between = cdist(predicted, truth).mean()
    within_p = cdist(predicted, predicted).mean()
    within_t = cdist(truth, truth).mean()
    return float(2 * between - within_p - within_t)


def rbf_mmd(predicted, truth, bandwidth=None, max_rows=2000, seed=0):
    """Squared maximum mean discrepancy with an RBF kernel (median-heuristic bandwidth)."""
    from scipy.spatial.distance import cdist

    predicted, truth = _subsample(predicted, max_rows, seed), _subsample(truth, max_rows, seed + 1)
    xy = cdist(predicted, truth, "sqeuclidean")
    if bandwidth is None:
        bandwidth = float(np.sqrt(np.median(xy) / 2.0)) or 1.0
    kernel = lambda d: np.exp(-d / (2 * bandwidth**2))  # noqa: E731
    return float(
        kernel(cdist(predicted, predicted, "sqeuclidean")).mean()
        + kernel(cdist(truth, truth, "sqeuclidean")).mean()
        - 2 * kernel(xy).mean()
    )


def rmse(predicted, truth):
    """Root mean squared error per row pair (per-cell or per-image truth)."""
    predicted, truth = np.asarray(predicted, np.float64), np.asarray(truth, np.float64)
    if predicted.shape != truth.shape:
        raise ValueError(f"Shapes differ: {predicted.shape} vs {truth.shape}.")
    return float(np.sqrt(np.mean((predicted - truth) ** 2)))


def _subsample(values, max_rows, seed):
    values = _matrix(values, "values")
    if len(values) <= max_rows:
        return values
    return values[np.random.default_rng(seed).choice(len(values), max_rows, replace=False)]


def frechet_distance(activations_a, activations_b):
    """Fréchet distance between Gaussians fitted to two sets of activations ``(n, k)``.

    ``|mu_a - mu_b|^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2))``: FID when the
    activations come from a classifier's penultimate layer.
    """
    from scipy import linalg

    a, b = _matrix(activations_a, "activations_a"), _matrix(activations_b, "activations_b")
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    if not np.all(np.isfinite(root)):
        # Dead units make a covariance singular: add a small ridge, as the FID reference does.
        ridge = 1e-6 * np.eye(len(cov_a))
        root = linalg.sqrtm((cov_a + ridge) @ (cov_b + ridge))
    root = np.real(root)
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))
