"""``"quantile_map"`` and ``"mean_shift"``: per-feature maps in data space, no autoencoder.

What ``method="auto"`` weighs the neuron edits against (:mod:`neuronedit_tf.selection`): where
a shift is a per-channel intensity change, a per-feature percentile map is at the information
limit (``docs/decisions/0001-default-edit-for-tables.md``). Both work on the editor's own
scale (its transform, standardised; the maps commute with the standardisation), so their
graphs are raw values in and raw values out like every method's, saved, loaded and exported
the same way (the export serves ``serving_default`` only: there is no code to encode to).

* ``"quantile_map"``: paper eq. 1 on the features themselves (what CytoNorm does without its
  clustering): a :class:`~neuronedit_tf.layers.NeuronEdit` on 0..100, adapted from S's
  features to T's, named ``feature_map``.
* ``"mean_shift"``: ``x + mean(T) - mean(S)`` per feature (a fixed Keras ``Normalization``
  named ``feature_shift``).

Example:
    >>> import numpy as np
    >>> from neuronedit_tf import NeuronEditor
    >>> rng = np.random.default_rng(0)
    >>> source = rng.normal(size=(400, 3)).astype("float32")
    >>> editor = NeuronEditor(method="quantile_map").fit(source, 2 * source + 1, verbose=0)
    >>> bool(np.allclose(editor.transform(source[:5]), 2 * source[:5] + 1, atol=1e-3))
    True
"""

from __future__ import annotations

import keras
import numpy as np

from neuronedit_tf.layers import DEFAULT_QUANTILES, NeuronEdit
from neuronedit_tf.methods.base import EditMethod


def _features(sample_shape, pieces):
    features = keras.Input(sample_shape, name="features")
    return features, pieces.pre(features)


class QuantileMap(EditMethod):
    """``post(feature_map(pre(x)))``: the per-feature percentile map S -> T; tables only."""

    name = "quantile_map"
    parts = ("feature_map",)
    output_map = "feature_map"
    uses_autoencoder = False

    def adapt(self, pieces, edit, source, target, extrapolation="shift", seed=0, codes=None):
        feature_map = NeuronEdit(DEFAULT_QUANTILES, extrapolation, name="feature_map")
        feature_map.adapt(np.asarray(source, np.float32), np.asarray(target, np.float32),
                          seed=seed)
        return {"feature_map": feature_map}

    def assemble(self, sample_shape, pieces, edit, parts, name="neuron_editor"):
        features, standardised = _features(sample_shape, pieces)
        return keras.Model(features, pieces.post(parts["feature_map"](standardised)), name=name)


class MeanShift(EditMethod):
    """``post(pre(x) + mean(pre(T)) - mean(pre(S)))``: the per-feature mean shift; tables only."""

    name = "mean_shift"
    parts = ("feature_shift",)
    uses_autoencoder = False

    def adapt(self, pieces, edit, source, target, extrapolation="shift", seed=0, codes=None):
        shift = (np.asarray(target, np.float64).mean(axis=0)
                 - np.asarray(source, np.float64).mean(axis=0))
        # Normalization computes (x - mean) / sqrt(variance): with mean = -shift and
        # variance 1 it adds the shift, as one serialisable Keras layer.
        layer = keras.layers.Normalization(mean=(-shift).astype(np.float32).tolist(),
                                           variance=np.ones_like(shift, np.float32).tolist(),
                                           name="feature_shift")
        return {"feature_shift": layer}

    def assemble(self, sample_shape, pieces, edit, parts, name="neuron_editor"):
        features, standardised = _features(sample_shape, pieces)
        return keras.Model(features, pieces.post(parts["feature_shift"](standardised)),
                           name=name)
