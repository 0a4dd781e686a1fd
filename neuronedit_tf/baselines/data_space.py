"""Per-feature baselines in data space: no correction, train mean, mean shift, quantile map.

Each works feature by feature on the analysis scale (``transform="arcsinh"``
for cytometry) and never uses X in fitting. Images are treated as one feature
per pixel.
"""

from __future__ import annotations

import keras
import numpy as np

from neuronedit_tf import models
from neuronedit_tf.baselines.base import Baseline
from neuronedit_tf.layers import DEFAULT_QUANTILES, NeuronEdit


class NoCorrection(Baseline):
    """The identity: ``transform(X)`` returns X unchanged (the floor every method must beat).

    Example:
        >>> import numpy as np
        >>> x = np.arange(6.0).reshape(3, 2)
        >>> NoCorrection().fit(x, x + 1).transform(x).tolist()
        [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    """

    name = "none"
    description = "no correction: X is returned unchanged"
    supports_images = True

    def _fit_arrays(self, source, target, extra=None):
        pass

    def _transform_values(self, values):
        return np.array(values, np.float32, copy=True)


class TrainMean(Baseline):
    """Predict the target's mean for every row: each output row is T's per-feature
    mean (computed on the analysis scale, then mapped back to raw units).

    The usual "train mean" baseline of perturbation prediction; its outputs have
    no spread at all (per-feature variance 0).

    Example:
        >>> import numpy as np
        >>> s = np.zeros((4, 2)); t = np.array([[1.0, 2.0], [3.0, 4.0]] * 2)
        >>> TrainMean().fit(s, t).transform(s[:1]).tolist()
        [[2.0, 3.0]]
    """

    name = "train_mean"
    description = "every row becomes the target's per-feature mean"
    supports_images = True

    def _fit_arrays(self, source, target, extra=None):
        self.state_ = {"target_mean": target.mean(axis=0)}

    def _transform_array(self, values):
        return np.repeat(self.state_["target_mean"][None, :], len(values), axis=0)


class MeanShift(Baseline):
    """Add the per-feature mean difference: ``X + (mean(T) - mean(S))`` on the analysis scale.

    The most common spike-in batch correction (paper, section 3.2): the shift
    between the spike-in batches is subtracted from (here: added to) the sample.

    Example:
        >>> import numpy as np
        >>> s = np.random.default_rng(0).normal(size=(100, 2))
        >>> moved = MeanShift().fit(s, s + [1.0, -2.0]).transform(np.zeros((1, 2)))
        >>> np.round(moved, 6).tolist()
        [[1.0, -2.0]]
    """

    name = "mean_shift"
    description = "adds the per-feature mean difference T - S to X"
    supports_images = True

    def _fit_arrays(self, source, target, extra=None):
        self.state_ = {"shift": target.mean(axis=0) - source.mean(axis=0)}

    def _transform_array(self, values):
        return values + self.state_["shift"]


class QuantileMap(Baseline):
    """The per-feature percentile map of paper eq. 1, applied to the features themselves.

    The :class:`~neuronedit_tf.layers.NeuronEdit` layer adapted on S's and T's
    (arcsinh-transformed, standardised) features instead of on neurons: each
    feature of X is moved so that S's percentiles land on T's. This is what
    CytoNorm does without its clustering step. The fitted graph is raw -> raw
    (``model.keras``).

    Args:
        quantiles: the percentiles of the map (default 0..100).
        extrapolation: beyond S's range: ``"shift"`` (default), ``"clip"``, ``"linear"``.
        transform, cofactor, seed: see :class:`~neuronedit_tf.baselines.base.Baseline`.

    Example:
        >>> import numpy as np
        >>> s = np.random.default_rng(0).normal(size=(500, 3))
        >>> fitted = QuantileMap().fit(s, 2 * s + 1)
        >>> bool(np.allclose(fitted.transform(s[:4]), 2 * s[:4] + 1, atol=1e-3))
        True
    """

    name = "quantile_map"
    description = "per-feature percentile map S -> T in data space (eq. 1 on features)"
    supports_images = True

    def __init__(self, quantiles=DEFAULT_QUANTILES, extrapolation="shift", transform="none",
                 cofactor=5.0, seed=0):
        super().__init__(transform=transform, cofactor=cofactor, seed=seed)
        NeuronEdit(quantiles=quantiles, extrapolation=extrapolation)  # validates both
        self.quantiles = quantiles
        self.extrapolation = extrapolation

    @property
    def min_rows(self):
        return len(self.quantiles)

    def get_config(self):
        config = super().get_config()
        config.update(quantiles=[float(q) for q in self.quantiles],
                      extrapolation=self.extrapolation)
        return config

    def _fit_values(self, source, target, extra=None):
        pre, post = self._processing(np.concatenate([source, target]))
        flat = int(np.prod(self.sample_shape_))
        edit = NeuronEdit([float(q) for q in self.quantiles], self.extrapolation,
                          name="neuron_edit")
        edit.adapt(*(models.run(pre, v).reshape(len(v), flat) for v in (source, target)))
        features = keras.Input(self.sample_shape_, name="features")
        x = keras.layers.Reshape((flat,))(pre(features))
        x = keras.layers.Reshape(self.sample_shape_)(edit(x))
        self.model_ = keras.Model(features, post(x), name="quantile_map")
