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

from neuronedit_tf import models

from diagnose_spill import gaussian_ot
from probe_knots import gated_and_residual


def library_edit(editor, zs, zt):
    return lambda z: models.run(editor.part("neuron_edit"), z)


def codes_gaussian_ot(editor, zs, zt):
    move = gaussian_ot(zs, zt, ridge=1e-3)
    return lambda z: move(z).astype(np.float32)


def outputs(editor, source, target, sample):
    return gated_and_residual(editor, source, target, sample,
                              {"quartile edit (library)": library_edit,
                               "codes' Gaussian OT": codes_gaussian_ot})


if __name__ == "__main__":
    import probe_latent_shift
    from probe_latent_shift import cv, truth

    probe_latent_shift.outputs = outputs
    {"truth": truth, "cv": cv}[sys.argv[1]]()
