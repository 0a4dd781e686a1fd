"""Mutual nearest neighbours (MNN) batch correction (Haghverdi et al. 2018), applied S -> T.

``mnnpy`` 0.1.9.5, the Python port, does not build on Python 3.11 (its shipped
Cython C includes ``longintrepr.h``, removed from 3.11), so this is an
implementation of batchelor's ``mnnCorrect`` with scikit-learn's
``NearestNeighbors``, following its steps and defaults (k = 20, sigma = 0.1,
cosine normalisation for distances), without its optional variance adjustment
(``var.adj``).

Spike-in use (paper section 3.2): batch B (T) is the reference and batch A (S)
is corrected into it; the correction learned from S's MNN cells is then
smoothed onto any X of batch A by the same Gaussian kernel.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from neuronedit_tf.baselines.base import Baseline, optional
from neuronedit_tf.errors import NeuronEditError


def cosine_normalise(values):
    """Each row divided by its L2 norm (rows of zeros stay zero), as batchelor's ``cosineNorm``."""
    values = np.asarray(values, np.float64)
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    return values / np.where(norms > 0, norms, 1.0)


def mnn_pairs(a, b, k=20):
    """Mutual nearest neighbour pairs between the rows of ``a`` and ``b`` (Euclidean).

    ``(i, j)`` is a pair when ``b[j]`` is among the ``k`` nearest rows of ``b`` to
    ``a[i]`` and ``a[i]`` among the ``k`` nearest rows of ``a`` to ``b[j]``.

    Returns:
        ``(rows_a, rows_b)``: two int arrays of equal length, sorted by ``(i, j)``.

    Example:
        >>> import numpy as np
        >>> a = np.array([[0.0], [10.0]]); b = np.array([[0.5], [10.5]])
        >>> [x.tolist() for x in mnn_pairs(a, b, k=1)]
        [[0, 1], [0, 1]]
    """
    NearestNeighbors = optional("sklearn.neighbors", "baselines").NearestNeighbors
    k_ab, k_ba = min(k, len(b)), min(k, len(a))
    a_to_b = NearestNeighbors(n_neighbors=k_ab).fit(b).kneighbors(a, return_distance=False)
    b_to_a = NearestNeighbors(n_neighbors=k_ba).fit(a).kneighbors(b, return_distance=False)
    forward = {(i, int(j)) for i, row in enumerate(a_to_b) for j in row}
    backward = {(int(i), j) for j, row in enumerate(b_to_a) for i in row}
    pairs = sorted(forward & backward)
    rows_a = np.array([i for i, _ in pairs], dtype=np.int64)
    rows_b = np.array([j for _, j in pairs], dtype=np.int64)
    return rows_a, rows_b


def smoothed_correction(points, anchors, vectors, log_density, sigma):
    """batchelor's Gaussian smoothing of MNN correction vectors onto ``points``.

    Each anchor (an MNN cell of the corrected batch) carries the mean of its
    pairs' correction vectors. A point's correction is the average of the anchor
    vectors weighted by ``exp(-|point - anchor|^2 / sigma) / density(anchor)``,
    where ``density`` (given as its log) is the anchor's kernel sum over all
    anchors, so dense regions do not dominate.

    Args:
        points: ``(n, d_dist)`` where distances are measured (cosine-normalised).
        anchors: ``(m, d_dist)`` the anchors, same space.
        vectors: ``(m, d)`` their averaged correction vectors.
        log_density: ``(m,)``.
        sigma: kernel bandwidth on squared distances.

    Returns:
        ``(n, d)`` correction vectors.
    """
    squared = (np.sum(points**2, 1)[:, None] - 2.0 * points @ anchors.T
               + np.sum(anchors**2, 1)[None, :])
    log_weight = -np.maximum(squared, 0.0) / sigma - log_density[None, :]
    log_weight -= logsumexp(log_weight, axis=1, keepdims=True)
    return np.exp(log_weight) @ vectors


class MNN(Baseline):
    """Mutual nearest neighbours correction from the spike-ins, batch B (T) as reference.

    Fit: on the analysis scale, find the MNN pairs between S and T (in
    cosine-normalised space when ``cos_norm``), take each pair's vector
    ``T_j - S_i``, average the vectors of each S cell that has pairs, and that
    cell's kernel density among all such cells. Transform: each row of X gets
    the Gaussian-kernel-weighted average of those vectors, weighted by its
    distance to the S cells that carry them (:func:`smoothed_correction`).
    X is not used in fitting.

    Args:
        k: neighbours for the mutual search (batchelor: 20).
        sigma: bandwidth of the smoothing kernel on squared distances (batchelor: 0.1,
            meant for cosine-normalised data).
        cos_norm: measure distances on cosine-normalised rows (batchelor's
            ``cos.norm.in``); corrections are always in the data's own units.
        transform, cofactor, seed: see :class:`~neuronedit_tf.baselines.base.Baseline`.

    MNN pairs cells by proximity, so a batch effect along directions in which the
    cells themselves vary much more than the effect is only partly recovered.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> s = np.repeat(np.eye(3) * 10, 50, axis=0) + rng.normal(0, 0.1, size=(150, 3))
        >>> fitted = MNN(k=1, cos_norm=False, sigma=1.0).fit(s, s + [0.01, 0.0, 0.0])
        >>> (np.round(fitted.transform(s[:1]) - s[:1], 4) + 0.0).tolist()
        [[0.01, 0.0, 0.0]]
    """

    name = "mnn"
    description = "mutual nearest neighbours correction S -> T (batchelor mnnCorrect)"

    def __init__(self, k=20, sigma=0.1, cos_norm=True, transform="none", cofactor=5.0, seed=0):
        super().__init__(transform=transform, cofactor=cofactor, seed=seed)
        if int(k) < 1 or not sigma > 0:
            raise NeuronEditError(f"k must be >= 1 and sigma > 0; got k={k}, sigma={sigma}.")
        self.k = int(k)
        self.sigma = float(sigma)
        self.cos_norm = bool(cos_norm)

    def get_config(self):
        config = super().get_config()
        config.update(k=self.k, sigma=self.sigma, cos_norm=self.cos_norm)
        return config

    def _space(self, values):
        return cosine_normalise(values) if self.cos_norm else np.asarray(values, np.float64)

    def _fit_arrays(self, source, target, extra=None):
        rows_s, rows_t = mnn_pairs(self._space(source), self._space(target), self.k)
        if len(rows_s) == 0:
            raise NeuronEditError(
                "No mutual nearest neighbours between source and target; increase k or check "
                "that both hold the same kind of cells."
            )
        cells, inverse = np.unique(rows_s, return_inverse=True)
        vectors = np.zeros((len(cells), source.shape[1]))
        np.add.at(vectors, inverse, target[rows_t] - source[rows_s])
        vectors /= np.bincount(inverse)[:, None]
        anchors = self._space(source[cells])
        squared = (np.sum(anchors**2, 1)[:, None] - 2.0 * anchors @ anchors.T
                   + np.sum(anchors**2, 1)[None, :])
        log_density = logsumexp(-np.maximum(squared, 0.0) / self.sigma, axis=1)
        self.state_ = {"anchors": anchors, "vectors": vectors, "log_density": log_density,
                      "pairs": np.stack([rows_s, rows_t], axis=1)}

    def _transform_array(self, values):
        return values + smoothed_correction(self._space(values), self.state_["anchors"],
                                            self.state_["vectors"], self.state_["log_density"],
                                            self.sigma)
