"""Issue #10: a density-ratio gate. The kNN gate asks "is this cell within the spike-ins'
support, on the spike-ins' own distance scale?"; here: "among the cell's k nearest codes in
S and X together (equal numbers), what share f is from S?" On CyTOF, X is another donor's
same cell types (f near 1/2); on the cross-channel cases X is another population (f near 0).
The calibration then gets weight w = clip(f / f_full, 0, 1), else the residual edit alone.
One autoencoder per case (seed 0, the bench's editor), numpy from its pieces.

EXPLORATORY, scored against the truth only (not adopted, so no choice made on it).
Run: PYTHONPATH=. python benchmarks/issue10/probe_density.py
"""
import numpy as np
from sklearn.neighbors import NearestNeighbors

from neuronedit_tf import metrics, models
from neuronedit_tf.bench import batch
from neuronedit_tf.bench.cases import cytof_cases, spillover_cases

K = (10, 30)
FULL = (0.5, 0.25, 0.1)


def share_from_source(zs, zx, k, seed=0):
    """Leave-one-out share of S among each X code's k nearest in S ∪ X (equal sizes)."""
    rng = np.random.default_rng(seed)
    n = min(len(zs), len(zx))
    zs = zs[rng.permutation(len(zs))[:n]]
    keep = rng.permutation(len(zx))[:n]
    pool = np.concatenate([zs, zx[keep]])
    label = np.r_[np.ones(n), np.zeros(n)]
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(pool).kneighbors(zx)
    own = np.zeros(len(zx), bool)
    own[keep] = True
    # X's own rows are in the pool: drop the first neighbour (itself) for them, the last else
    neighbours = np.where(own[:, None], idx[:, 1:], idx[:, :-1])
    return label[neighbours].mean(1)


def main():
    scores = {}
    for case in list(spillover_cases()) + list(cytof_cases()):
        family = case.name.split("_")[0]
        editor = batch._editor(case, 0, 200)
        names = ("preprocessing", "encoder", "neuron_edit", "decoder", "postprocessing",
                 "calibration")
        pre, enc, edit, dec, post, cal = (editor.part(n) for n in names)
        xs, ss = models.run(pre, case.sample.values), models.run(pre, case.source.values)
        zx, zs = models.run(enc, xs), models.run(enc, ss)
        rx = xs + models.run(dec, models.run(edit, zx)) - models.run(dec, zx)
        cx = models.run(cal, rx)
        outs = {"residual": rx, "gated (library)": editor.transform(case.sample.values)}
        for k in K:
            f = share_from_source(zs, zx, k)
            print(f"{case.name} k={k}: mean share from S {f.mean():.2f}", flush=True)
            for full in FULL:
                w = np.clip(f / full, 0, 1)[:, None]
                outs[f"density gate k={k}, full at {full}"] = rx + w * (cx - rx)
        truth = case.scale(case.truth)
        for name, o in outs.items():
            raw = o if name == "gated (library)" else models.run(post, o)
            p = case.scale(raw)
            value = metrics.rmse(p, truth) if case.paired else metrics.mean_emd(p, truth)
            scores.setdefault(name, {}).setdefault(family, []).append(value)
    for name, v in scores.items():
        print(f"{name:36s} cytof EMD {np.mean(v['cytof']):.4f}  cross-channel RMSE "
              f"{np.mean(v['spillover']):.4f} ({' / '.join(f'{a:.3f}' for a in v['spillover'])})")


if __name__ == "__main__":
    main()
