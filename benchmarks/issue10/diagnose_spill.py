"""Issue #10: how far below the mean shift could a method get on the cross-channel cases?
ORACLE rows read the sample's per-cell truth (diagnostics, never a method choice): the
mean shift, the per-feature monotone map and an affine map (arcsinh scale) fitted on X -> truth
itself. What a per-feature method cannot reach is the cell-dependent part of the change.
Also a probe that reads only S and T: the Gaussian optimal-transport map S -> T (affine,
channels mix: x -> mu_T + A (x - mu_S), A the Monge map between the two covariances).
Run: PYTHONPATH=. python benchmarks/issue10/diagnose_spill.py
"""
import numpy as np
from scipy.linalg import sqrtm

from neuronedit_tf import metrics
from neuronedit_tf.bench.cases import spillover_cases


def gaussian_ot(s, t, ridge=0.0):
    """The Monge map between N(mean s, cov s) and N(mean t, cov t), as a function; ``ridge``
    is added to both covariances' diagonals."""
    eye = ridge * np.eye(s.shape[1])
    root = np.real(sqrtm(np.cov(s, rowvar=False) + eye))
    inverse = np.linalg.inv(root)
    a = inverse @ np.real(sqrtm(root @ (np.cov(t, rowvar=False) + eye) @ root)) @ inverse
    return lambda x: (x - s.mean(0)) @ a.T + t.mean(0)


def main():
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
               "Gaussian OT map S->T (affine, spike-ins only)": metrics.rmse(gaussian_ot(s, t)(x), y),
               "ORACLE mean shift X->truth": metrics.rmse(x + (y - x).mean(0), y),
               "ORACLE per-feature monotone map X->truth": metrics.rmse(monotone, y),
               "ORACLE affine map X->truth (channels mix)": metrics.rmse(affine, y)}
        rows.append(row)
        print(case.name, {k: round(v, 3) for k, v in row.items()})
    print("| per-cell RMSE, mean of the 2 cases | value |\n|---|---|")
    for key in rows[0]:
        print(f"| {key} | {np.mean([r[key] for r in rows]):.3f} |")


if __name__ == "__main__":
    main()
