"""Issue #10: fewer percentile knots for the neuron edit itself (the issue's "smoother or fewer
knots"; the calibration keeps 0..100). probe_latent_shift.py found that "gated" on the codes'
MEAN shift wins the spike-in CV by far; a NeuronEdit with few knots and constant-shift
extrapolation is the same idea inside the existing layer: knots (49, 51) is each neuron's
median shift, (25, 75) a linear map between the quartiles, and so on.
Candidate "gated, knots K": R_K(X) = X + D(NE_K(E X)) - D(E X); calibration (0..100) refitted
from R_K(S) to T; the library's gate. One autoencoder per case (seed 0, the bench's editor).
mode "cv": select_method's protocol (never reads a truth); mode "truth": reporting only.
Run: PYTHONPATH=. python benchmarks/issue10/probe_knots.py cv|truth
"""
import sys

import numpy as np

from neuronedit_tf import metrics, models
from neuronedit_tf.bench import batch
from neuronedit_tf.bench.cases import cytof_cases, spillover_cases
from neuronedit_tf.layers import NeuronEdit

KNOTS = {"0..100 (library)": tuple(range(101)), "0,10..100": tuple(range(0, 101, 10)),
         "10,30,50,70,90": (10, 30, 50, 70, 90), "10,50,90": (10, 50, 90), "25,75": (25, 75),
         "49,51 (median shift)": (49, 51)}


def gated_and_residual(editor, source, target, sample, moves):
    """``{"gated, NAME" / "residual, NAME": raw edited sample}`` for each ``NAME: factory`` of
    ``moves``; ``factory(editor, E(S), E(T))`` returns the code edit ``z -> z'``. Residual:
    R(X) = X + D(z') - D(z); gated: the calibration (0..100) refitted from R(S) to T, blended
    with R(X) by the editor's own gate."""
    names = ("preprocessing", "encoder", "decoder", "postprocessing", "support_gate")
    pre, enc, dec, post, gate = (editor.part(n) for n in names)
    xs, ss, ts = (models.run(pre, v).astype(np.float32) for v in (sample, source, target))
    zx, zs, zt = (models.run(enc, v).astype(np.float32) for v in (xs, ss, ts))
    n = len(zx)
    w = np.asarray(gate([zx, np.ones((n, 1), np.float32), np.zeros((n, 1), np.float32)]))[:, 0]
    w = w[:, None]
    out = {}
    for name, factory in moves.items():
        move = factory(editor, zs, zt)
        rs = ss + models.run(dec, move(zs)) - models.run(dec, zs)
        rx = xs + models.run(dec, move(zx)) - models.run(dec, zx)
        calibration = NeuronEdit()
        calibration.adapt(rs.astype(np.float32), ts)
        cx = models.run(calibration, rx)
        out[f"gated, {name}"] = models.run(post, rx + w * (cx - rx))
        out[f"residual, {name}"] = models.run(post, rx)
    return out


def knot_edit(knots):
    """A factory for :func:`gated_and_residual`: a NeuronEdit with ``knots`` adapted E(S) -> E(T)."""
    def factory(editor, zs, zt):
        edit = NeuronEdit(knots)
        edit.adapt(zs, zt)
        return lambda z: models.run(edit, z)
    return factory


def outputs(editor, source, target, sample):
    return gated_and_residual(editor, source, target, sample,
                              {f"knots {name}": knot_edit(knots) for name, knots in KNOTS.items()})


if __name__ == "__main__":
    from probe_latent_shift import cv, truth
    import probe_latent_shift

    probe_latent_shift.outputs = outputs
    {"truth": truth, "cv": cv}[sys.argv[1]]()
