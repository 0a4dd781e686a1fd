"""Issue #10 diagnostics: why no per-feature method gets below ~0.089 EMD on CyTOF.

ORACLE rows read the sample's truth: they are diagnostics of what is possible, never a
method choice. Everything is on arcsinh(x/5).

Run: PYTHONPATH=. python benchmarks/issue10/diagnose.py
"""
import sys

import numpy as np
from sklearn.cluster import KMeans

from neuronedit_tf import metrics
from neuronedit_tf.bench.cases import cytof_cases
from neuronedit_tf.layers import NeuronEdit


def qmap(s, t):
    edit = NeuronEdit()
    edit.adapt(s.astype(np.float32), t.astype(np.float32))
    return lambda x: np.asarray(edit(x.astype(np.float32)), np.float64)


def halves(n, seed):
    order = np.random.default_rng(seed).permutation(n)
    return order[: n // 2], order[n // 2:]


def per_cluster(s, t, x, k, seed, soft=None):
    """Per-population quantile maps: k-means on S; T assigned after the per-marker map
    T -> S; X (same batch as S) assigned directly. Hard or soft (softmax of -d^2/temp)."""
    km = KMeans(k, n_init=4, random_state=seed).fit(s)
    back = qmap(t, s)
    ls, lt = km.labels_, km.predict(back(t))
    glob = qmap(s, t)
    out = np.zeros_like(x)
    maps = []
    for c in range(k):
        if (ls == c).sum() >= 30 and (lt == c).sum() >= 30:
            maps.append(qmap(s[ls == c], t[lt == c]))
        else:
            maps.append(glob)
    if soft is None:
        lx = km.predict(x)
        for c in range(k):
            if (lx == c).any():
                out[lx == c] = maps[c](x[lx == c])
        return out, ls, lt, lx
    d2 = ((x[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1)
    d2 -= d2.min(1, keepdims=True)
    w = np.exp(-d2 / (soft * np.median(d2[d2 > 0])))
    w /= w.sum(1, keepdims=True)
    out = sum(w[:, c:c + 1] * maps[c](x) for c in range(k))
    return out, ls, lt, km.predict(x)


def main(n_cases=12):
    rows = []
    for i, case in enumerate(cytof_cases()):
        if i >= n_cases:
            break
        s, t, x, y = (case.scale(v) for v in (case.source, case.target, case.sample, case.truth))
        r = {"case": case.name}
        r["none"] = metrics.mean_emd(x, y)
        r["qmap S->T"] = metrics.mean_emd(qmap(s, t)(x), y)
        r["floor (truth halves)"] = metrics.emd_noise_floor(y)
        # Half-vs-half versions so every number is comparable (500 cells vs 500 cells).
        vals = {"half: qmap S->T": [], "half ORACLE qmap X->truth": [], "half: floor": []}
        for seed in range(3):
            xa, xb = halves(len(x), seed)
            ya, yb = halves(len(y), seed + 100)
            vals["half: qmap S->T"].append(metrics.mean_emd(qmap(s, t)(x[xb]), y[yb]))
            vals["half ORACLE qmap X->truth"].append(
                metrics.mean_emd(qmap(x[xa], y[ya])(x[xb]), y[yb]))
            vals["half: floor"].append(metrics.mean_emd(y[ya], y[yb]))
        r.update({k: float(np.mean(v)) for k, v in vals.items()})
        # Per-marker: is the batch effect on X the same as on S? median shifts
        ms = np.median(t, 0) - np.median(s, 0)
        mx = np.median(y, 0) - np.median(x, 0)
        r["corr(median shift S, X)"] = float(np.corrcoef(ms, mx)[0, 1])
        r["|shift diff| / |shift|"] = float(np.abs(ms - mx).mean() / np.abs(mx).mean())
        for k in (2, 4, 8):
            out, ls, lt, lx = per_cluster(s, t, x, k, 0)
            r[f"clusters k={k} hard"] = metrics.mean_emd(out, y)
            out, *_ = per_cluster(s, t, x, k, 0, soft=0.5)
            r[f"clusters k={k} soft"] = metrics.mean_emd(out, y)
            ps = np.bincount(ls, minlength=k) / len(ls)
            px = np.bincount(lx, minlength=k) / len(lx)
            r[f"k={k} composition TV(S,X)"] = 0.5 * float(np.abs(ps - px).sum())
        # ORACLE per-cluster X->truth (truth assigned after truth->X map): does a
        # population-wise map of the *true* effect beat the global true map?
        for k in (4,):
            xa, xb = halves(len(x), 0)
            ya, yb = halves(len(y), 100)
            km = KMeans(k, n_init=4, random_state=0).fit(x[xa])
            ly = km.predict(qmap(y[ya], x[xa])(y[ya]))
            lxa, lxb = km.labels_, km.predict(x[xb])
            glob = qmap(x[xa], y[ya])
            out = glob(x[xb])
            for c in range(k):
                if (lxa == c).sum() >= 30 and (ly == c).sum() >= 30 and (lxb == c).any():
                    out[lxb == c] = qmap(x[xa][lxa == c], y[ya][ly == c])(x[xb][lxb == c])
            r[f"half ORACLE clusters k={k} X->truth"] = metrics.mean_emd(out, y[yb])
        rows.append(r)
        print(case.name, {k: round(v, 3) for k, v in r.items() if k != "case"}, flush=True)
    keys = [k for k in rows[0] if k != "case"]
    print("\nMEAN over cases")
    for k in keys:
        print(f"{k:40s} {np.mean([r[k] for r in rows]):.4f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 12)
