"""Classical batch correction applied with the spike-ins (paper section 3.2): ComBat, limma, CCA.

Each is fitted on the spike-in pair only, S measured in batch A and T (the
same kind of cells) in batch B, so it learns the batch effect A -> B without
any biology of the sample; ``transform(X)`` applies that A -> B correction to
X, a sample of batch A. X is never used in fitting. All work on the analysis
scale (``transform="arcsinh"`` for cytometry). MNN is in
:mod:`~neuronedit_tf.baselines.mnn`.
"""

from __future__ import annotations

import numpy as np

from neuronedit_tf.baselines.base import Baseline, optional
from neuronedit_tf.errors import NeuronEditError

def _non_constant(values, name):
    spread = values.std(axis=0)
    if np.any(spread == 0):
        raise NeuronEditError(
            f"{name} has constant features (columns {np.flatnonzero(spread == 0).tolist()}); "
            "a per-batch scale cannot be estimated. Drop those features first."
        )


class ComBat(Baseline):
    """ComBat (Johnson et al. 2007; scanpy's ``pp.combat``) with batch B as the reference.

    Fit: ``scanpy.pp.combat`` on S ∪ T with batch labels A (S) and B (T). For
    each batch and feature ComBat's adjustment is affine,
    ``x* = a_batch * x + c_batch`` (standardise, remove the empirical-Bayes
    location/scale batch effect, restore the pooled scale); ``a`` and ``c`` are
    read off scanpy's output exactly (least squares of ``x*`` on ``x`` per
    batch). Transform: batch A's adjustment followed by the inverse of batch
    B's, ``x -> (a_A x + c_A - c_B) / a_B``: X is moved into batch B's space the
    way ComBat models S -> T (with its shrinkage across features).

    Needs scanpy (an optional extra: ``neuronedit_tf[combat]``).

    Example:
        >>> import numpy as np
        >>> s = np.random.default_rng(0).normal(size=(500, 4))
        >>> fitted = ComBat().fit(s, 2 * s + 1)          # doctest: +SKIP
        >>> np.round(fitted.transform(s).mean(0), 1)      # doctest: +SKIP
        array([1., 1., 1., 1.])
    """

    name = "combat"
    description = "ComBat (scanpy) fitted on S and T, applied A -> B to X"
    min_rows = 3

    def _fit_arrays(self, source, target, extra=None):
        import pandas as pd

        scanpy = optional("scanpy", "combat")
        anndata = optional("anndata", "combat")
        for values, role in ((source, "source"), (target, "target")):
            _non_constant(values, role)
        both = np.concatenate([source, target])
        labels = pd.Categorical(["A"] * len(source) + ["B"] * len(target))
        obs = pd.DataFrame({"batch": labels}, index=[f"cell{i}" for i in range(len(both))])
        adjusted = scanpy.pp.combat(anndata.AnnData(both.copy(), obs=obs), key="batch",
                                    inplace=False)
        scale, offset = [], []
        for rows in (slice(0, len(source)), slice(len(source), len(both))):
            x, y = both[rows], np.asarray(adjusted[rows], np.float64)
            centred = x - x.mean(0)
            slope = (centred * (y - y.mean(0))).sum(0) / (centred**2).sum(0)
            scale.append(slope)
            offset.append(y.mean(0) - slope * x.mean(0))
        self.state_ = {"scale": np.array(scale), "offset": np.array(offset)}

    def _transform_array(self, values):
        (scale_a, scale_b), (offset_a, offset_b) = self.state_["scale"], self.state_["offset"]
        return (scale_a * values + offset_a - offset_b) / scale_b


class Limma(Baseline):
    """limma-style linear removal of the batch covariate (``removeBatchEffect``), S -> T.

    Fit: per feature, ordinary least squares of the values of S ∪ T on the
    design ``[1, batch]`` (batch = 1 for T), as ``lmFit`` does; the batch
    coefficient is the batch effect. Transform: X (batch A) plus that
    coefficient, i.e. moved into batch B. With the batch as the only covariate
    the coefficient equals the difference of the per-feature means, so on
    spike-ins this coincides with ``mean_shift``; it is kept as the paper's
    named method, computed as limma computes it.

    Example:
        >>> import numpy as np
        >>> s = np.random.default_rng(0).normal(size=(100, 2))
        >>> (np.round(Limma().fit(s, s + [3.0, 0.0]).state["batch_effect"], 6) + 0.0).tolist()
        [3.0, 0.0]
    """

    name = "limma"
    description = "limma-style linear model of the batch covariate fitted on S and T"

    def _fit_arrays(self, source, target, extra=None):
        design = np.column_stack([
            np.ones(len(source) + len(target)),
            np.r_[np.zeros(len(source)), np.ones(len(target))],
        ])
        coefficients, *_ = np.linalg.lstsq(design, np.concatenate([source, target]), rcond=None)
        self.state_ = {"batch_effect": coefficients[1]}

    def _transform_array(self, values):
        return values + self.state_["batch_effect"]


class CCA(Baseline):
    """Canonical correlation alignment (scikit-learn's ``CCA``) of batch A onto batch B.

    CCA needs paired rows and spike-in cells are not paired across batches, so,
    as Seurat's anchors do, the pairs are the mutual nearest neighbours of S and
    T (:func:`~neuronedit_tf.baselines.mnn.mnn_pairs`, cosine-normalised, k =
    ``k``; a seeded random ``max_pairs`` of them, as sklearn's CCA slows with
    the square of the rows). Fit: ``sklearn.cross_decomposition.CCA(n_components)``
    on the standardised anchor pairs (S rows -> T rows); then every canonical variate's mean and
    standard deviation over all of S is matched to the paired variate's over
    all of T. Transform: X's canonical scores are aligned the same way and
    mapped back to data space through T's canonical rotations. With
    ``n_components`` = the number of features (default) the map is an
    invertible affine map A -> B, stored as one matrix and offset.

    Args:
        n_components: canonical pairs (default: all features).
        k: neighbours for the anchor search.
        max_pairs: anchor pairs used to fit the CCA.
        transform, cofactor, seed: see :class:`~neuronedit_tf.baselines.base.Baseline`.

    Example:
        >>> import numpy as np
        >>> s = np.random.default_rng(0).normal(size=(400, 3))
        >>> CCA().fit(s, s + 1).transform(s).shape
        (400, 3)
    """

    name = "cca"
    description = "CCA (sklearn) on MNN anchor pairs, canonical variates aligned A -> B"

    def __init__(self, n_components=None, k=20, max_pairs=1000, transform="none", cofactor=5.0,
                 seed=0):
        super().__init__(transform=transform, cofactor=cofactor, seed=seed)
        self.n_components = None if n_components is None else int(n_components)
        self.k = int(k)
        self.max_pairs = int(max_pairs)

    def get_config(self):
        config = super().get_config()
        config.update(n_components=self.n_components, k=self.k, max_pairs=self.max_pairs)
        return config

    def _fit_arrays(self, source, target, extra=None):
        from neuronedit_tf.baselines.mnn import cosine_normalise, mnn_pairs

        SklearnCCA = optional("sklearn.cross_decomposition", "baselines").CCA

        width = source.shape[1]
        n_components = width if self.n_components is None else self.n_components
        rows_s, rows_t = mnn_pairs(cosine_normalise(source), cosine_normalise(target), self.k)
        # sklearn's CCA takes full SVDs of the (rows x rows) space: its cost grows as rows^2.
        if len(rows_s) > self.max_pairs:
            keep = np.sort(np.random.default_rng(self.seed).choice(
                len(rows_s), self.max_pairs, replace=False))
            rows_s, rows_t = rows_s[keep], rows_t[keep]
        if len(rows_s) <= n_components:
            raise NeuronEditError(
                f"Only {len(rows_s)} anchor pairs for {n_components} canonical components; "
                "increase k or lower n_components."
            )
        paired_s, paired_t = source[rows_s], target[rows_t]
        mean_s, mean_t = paired_s.mean(0), paired_t.mean(0)
        std_s, std_t = (np.where(v.std(0) > 0, v.std(0), 1.0) for v in (paired_s, paired_t))
        cca = SklearnCCA(n_components=n_components, scale=False, max_iter=1000)
        cca.fit((paired_s - mean_s) / std_s, (paired_t - mean_t) / std_t)
        # Raw (analysis-scale) rows -> canonical scores, and scores -> rows of batch B.
        to_scores = cca.x_rotations_ / std_s[:, None]
        from_scores = np.linalg.pinv(cca.y_rotations_) * std_t[None, :]
        u = (source - mean_s) @ to_scores  # every S row's scores
        v = (target - mean_t) @ (cca.y_rotations_ / std_t[:, None])  # every T row's
        gain = v.std(0) / np.where(u.std(0) > 0, u.std(0), 1.0)
        matrix = (to_scores * gain[None, :]) @ from_scores
        score_offset = (-mean_s @ to_scores - u.mean(0)) * gain + v.mean(0)
        self.state_ = {"matrix": matrix, "offset": score_offset @ from_scores + mean_t,
                      "pairs": np.stack([rows_s, rows_t], axis=1)}

    def _transform_array(self, values):
        return values @ self.state_["matrix"] + self.state_["offset"]
