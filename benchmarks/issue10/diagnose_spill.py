"""Issue #10: how far below the mean shift could a method get on the cross-channel cases?
ORACLE rows read the sample's per-cell truth (diagnostics, never a method choice): the
mean shift, the per-feature monotone map and an affine map (arcsinh scale) fitted on X -> truth
itself. What a per-feature method cannot reach is the cell-dependent part of the change.
Run: PYTHONPATH=. python benchmarks/issue10/diagnose_spill.py
"""
import numpy as np

from neuronedit_tf import metrics
from neuronedit_tf.bench.cases import spillover_cases

rows = []
for case in spillover_cases():
    s, t, x, y = (case.scale(v) for v in (case.source, case.target, case.sample, case.truth))
    monotone = np.empty_like(x)  # each feature's ranks kept, values taken from the truth
    for j in range(x.shape[1]):
        monotone[np.argsort(x[:, j]), j] = np.sort(y[:, j])
    design = np.c_[x, np.ones(len(x))]
    affine = design @ np.linalg.lstsq(design, y, rcond=None)[0]
    row = {"none": metrics.rmse(x, y),
           "mean shift S->T (the baseline)": metrics.rmse(x + t.mean(0) - s.mean(0), y),
           "ORACLE mean shift X->truth": metrics.rmse(x + (y - x).mean(0), y),
           "ORACLE per-feature monotone map X->truth": metrics.rmse(monotone, y),
           "ORACLE affine map X->truth (channels mix)": metrics.rmse(affine, y)}
    rows.append(row)
    print(case.name, {k: round(v, 3) for k, v in row.items()})
print("| per-cell RMSE, mean of the 2 cases | value |\n|---|---|")
for key in rows[0]:
    print(f"| {key} | {np.mean([r[key] for r in rows]):.3f} |")
