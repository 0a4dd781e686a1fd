"""``"gated"``: ``"calibrated"`` applied only where it was learned.

A :class:`~neuronedit_tf.layers.SupportGate` blends, per cell, the calibrated output (cells
whose codes ``E(X)`` lie within the spike-ins' codes ``E(S)``) with the residual edit alone
(cells far outside, e.g. another population), so a per-feature calibration learned on one
population is not forced on others whose change differs (a shift that mixes channels).
"""

from __future__ import annotations

import keras
import numpy as np

from neuronedit_tf.layers import SupportGate
from neuronedit_tf.methods.calibrated import CALIBRATION_QUANTILES, Calibrated, residual_graph

#: The support gate of ``"gated"``: neighbour k and the distance-ratio band where w falls 1 -> 0
#: (the best of 3 bands in the same cross-validation, with either two-knot edit; 1.5-3.0 was
#: best with 101-knot edits).
GATE = {"k": 5, "low": 1.2, "high": 1.8}


class Gated(Calibrated):
    """``post(gate([E(pre(x)), calibration(R), R]))``; tables only.

    Args:
        calibration_quantiles: knots (percentiles) of the calibration's maps.
        gate: the :class:`SupportGate` settings ``{"k", "low", "high"}`` (default ``GATE``).
    """

    name = "gated"
    parts = ("calibration", "support_gate")

    def __init__(self, calibration_quantiles=CALIBRATION_QUANTILES, gate=None):
        super().__init__(calibration_quantiles)
        self.gate = dict(GATE if gate is None else gate)

    def adapt(self, pieces, edit, source, target, extrapolation="shift", seed=0, codes=None):
        """The calibration (see ``Calibrated``) and the gate, adapted on the codes ``E(source)``
        (a subsample seeded ``seed``)."""
        codes = self.codes(pieces, source, codes)
        parts = super().adapt(pieces, edit, source, target, extrapolation, seed, codes)
        gate = SupportGate(**self.gate, name="support_gate")
        gate.adapt(codes, seed=seed)
        return {**parts, "support_gate": gate}

    def graph(self, features, pieces, edit, parts):
        latent, _, residual = residual_graph(features, pieces, edit)
        gate, calibration = parts["support_gate"], parts["calibration"]
        return pieces.post(gate([latent, calibration(residual), residual]))

    def study_shared(self, pieces, codes, seed=0):
        """One gate for every batch, on the anchors' codes in the reference frame (every
        anchor's, each edited by its batch's edit: see ``Study.fit``)."""
        gate = SupportGate(**self.gate, name="support_gate")
        gate.adapt(np.asarray(codes, np.float32), seed=seed)
        return {"support_gate": gate}

    def study_graph(self, features, pieces, edit, parts):
        """In a study the gate measures each cell's *edited* code (its batch's edit applied)
        against the anchors' codes in the reference frame: one gate serves every batch, and
        a batch added later needs no gate of its own."""
        _, edited, residual = residual_graph(features, pieces, edit)
        gate, calibration = parts["support_gate"], parts["calibration"]
        return pieces.post(gate([edited, calibration(residual), residual]))
