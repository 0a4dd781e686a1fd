"""``"gated_shift"``: ``"latent_shift"`` calibrated where it was learned, as ``"gated"`` is.

The residual latent shift ``R(X) = X + D(E(X) + Delta) - D(E(X))`` (:mod:`~neuronedit_tf.methods.knn_shift`)
followed by ``"gated"``'s two steps: a per-feature calibration (a
:class:`~neuronedit_tf.layers.NeuronEdit` on the standardised features, adapted from ``R(S)``
to ``T``), applied per cell by a :class:`~neuronedit_tf.layers.SupportGate` (weight 1 for cells
whose codes lie within the spike-ins', 0 far outside, where ``R`` alone is kept). Within the
spike-ins' support it is ``"gated"`` (each marker's change matched, as on the CyTOF batch
effect); outside it, the latent shift, which transferred better than ``"gated"``'s quartile
edit to other populations where the change mixes channels (issue #19).

Example:
    >>> import numpy as np
    >>> from neuronedit_tf import NeuronEditor
    >>> rng = np.random.default_rng(0)
    >>> source = rng.normal(size=(400, 4)).astype("float32")
    >>> target = source * [1.0, 2.0, 1.0, 1.0] + [1.0, 0.0, 0.0, 0.0]
    >>> editor = NeuronEditor(method="gated_shift", hidden=(16, 8)).fit(
    ...     source, target, epochs=2, verbose=0)
    >>> [layer.name for layer in editor.model_.layers[-3:]]
    ['calibration', 'support_gate', 'postprocessing']
"""

from __future__ import annotations

import keras

from neuronedit_tf.layers import DEFAULT_KNN_REFERENCE, NeuronEdit, SupportGate
from neuronedit_tf.methods.calibrated import CALIBRATION_QUANTILES
from neuronedit_tf.methods.gated import GATE
from neuronedit_tf.methods.knn_shift import LatentShift


class GatedShift(LatentShift):
    """``post(gate([E(pre(x)), calibration(R), R]))`` with ``R`` the residual latent shift;
    tables only.

    Args:
        calibration_quantiles: knots (percentiles) of the calibration's maps.
        gate: the :class:`SupportGate` settings ``{"k", "low", "high"}`` (default ``GATE``).
        max_reference: spike-in codes whose mean shift is taken.
    """

    name = "gated_shift"
    parts = ("reference_codes", "knn_shift", "calibration", "support_gate")
    output_map = "calibration"

    def __init__(self, calibration_quantiles=CALIBRATION_QUANTILES, gate=None,
                 max_reference=DEFAULT_KNN_REFERENCE):
        super().__init__(max_reference)
        self.calibration_quantiles = calibration_quantiles
        self.gate = dict(GATE if gate is None else gate)

    def adapt(self, pieces, edit, source, target, extrapolation="shift", seed=0, codes=None):
        """The latent shift's layers, the calibration adapted from ``R(source)`` to ``target``
        and the gate on the codes ``E(source)`` (a subsample seeded ``seed``)."""
        codes = self.codes(pieces, source, codes)
        parts = super().adapt(pieces, edit, source, target, extrapolation, seed, codes)
        calibration = NeuronEdit(self.calibration_quantiles, extrapolation, name="calibration")
        calibration.adapt(self.apply(pieces, edit, parts, source, codes), target)
        gate = SupportGate(**self.gate, name="support_gate")
        gate.adapt(codes, seed=seed)
        return {**parts, "calibration": calibration, "support_gate": gate}

    def assemble(self, sample_shape, pieces, edit, parts, name="neuron_editor"):
        features, latent, residual = self.shifted(sample_shape, pieces, edit, parts)
        gated = parts["support_gate"]([latent, parts["calibration"](residual), residual])
        return keras.Model(features, pieces.post(gated), name=name)
