"""Issue #10 (exploratory, for the next session): an edit that mixes neurons. The codes'
Gaussian optimal-transport map (z -> mu_T + A (z - mu_S), A the Monge map between the codes'
covariances, ridge 1e-3), in the residual form R(X) = X + D(z') - D(z); alone, and as the
gated method's both branches (the calibration refitted from R(S) to T, the library's gate),
beside the library's quartile edit. One autoencoder per case (seed 0, the bench's editor).
Protocols as probe_latent_shift.py: "cv" (seed 0, CyTOF + cross-channel, never reads a truth),
"truth" (reporting only).
Run: PYTHONPATH=. python benchmarks/issue10/probe_code_ot.py cv|truth
"""
import sys

import numpy as np
from scipy.linalg import sqrtm

from neuronedit_tf import models
from neuronedit_tf.layers import NeuronEdit


def monge(zs, zt, ridge=1e-3):
    eye = ridge * np.eye(zs.shape[1])
    root = np.real(sqrtm(np.cov(zs, rowvar=False) + eye))
    inverse = np.linalg.inv(root)
    a = inverse @ np.real(sqrtm(root @ (np.cov(zt, rowvar=False) + eye) @ root)) @ inverse
    return lambda z: (zt.mean(0) + (z - zs.mean(0)) @ a.T).astype(np.float32)


def outputs(editor, source, target, sample):
    names = ("preprocessing", "encoder", "neuron_edit", "decoder", "postprocessing",
             "support_gate", "calibration")
    pre, enc, edit, dec, post, gate, cal = (editor.part(n) for n in names)
    xs, ss, ts = (models.run(pre, v).astype(np.float32) for v in (sample, source, target))
    zx, zs, zt = (models.run(enc, v).astype(np.float32) for v in (xs, ss, ts))
    n = len(zx)
    w = np.asarray(gate([zx, np.ones((n, 1), np.float32), np.zeros((n, 1), np.float32)]))[:, 0]
    w = w[:, None]
    out = {}
    for name, move in (("quartile edit (library)", lambda z: models.run(edit, z)),
                       ("codes' Gaussian OT", monge(zs, zt))):
        rx = xs + models.run(dec, move(zx)) - models.run(dec, zx)
        rs = ss + models.run(dec, move(zs)) - models.run(dec, zs)
        calibration = NeuronEdit()
        calibration.adapt(rs.astype(np.float32), ts)
        cx = models.run(calibration, rx)
        out[f"gated, {name}"] = models.run(post, rx + w * (cx - rx))
        out[f"residual, {name}"] = models.run(post, rx)
    return out


if __name__ == "__main__":
    import probe_latent_shift
    from probe_latent_shift import cv, truth

    probe_latent_shift.outputs = outputs
    {"truth": truth, "cv": cv}[sys.argv[1]]()
