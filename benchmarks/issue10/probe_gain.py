"""Issue #10: is the CyTOF batch effect a per-marker gain in raw intensity? A low-variance
2-parameter map per marker would remove estimation noise if so.

Per marker, raw y = a * x ("gain a") or a * x + b ("gain ab"), fitted by least squares on
the S -> T percentiles 2..98 in arcsinh space; "half" averages "gain ab" with the quantile
map. Scored by spike-in CV (select_method's splits, cases and score) and, for reporting
only, against the truth.
Run: PYTHONPATH=. python benchmarks/issue10/probe_gain.py
"""
import numpy as np, sys
from scipy.optimize import least_squares
from neuronedit_tf import metrics
from neuronedit_tf.bench import batch
from neuronedit_tf.bench.cases import cytof_cases, spillover_cases
from neuronedit_tf.layers import NeuronEdit

Q = np.arange(2, 99)

def qmap(s, t):
    e = NeuronEdit(); e.adapt(s.astype(np.float32), t.astype(np.float32))
    return lambda x: np.asarray(e(x.astype(np.float32)), np.float64)

def gainfit(s, t, c, mode):
    # s, t in scaled space; raw = c*sinh
    sq = np.percentile(s, Q, axis=0); tq = np.percentile(t, Q, axis=0)
    d = s.shape[1]; params = []
    for j in range(d):
        rs = c * np.sinh(sq[:, j])
        if mode == "a":
            f = lambda p: np.arcsinh(np.exp(p[0]) * rs / c) - tq[:, j]; p0 = [0.0]
        elif mode == "ab":
            f = lambda p: np.arcsinh((np.exp(p[0]) * rs + p[1]) / c) - tq[:, j]; p0 = [0.0, 0.0]
        params.append(least_squares(f, p0).x)
    def apply(x):
        out = np.empty_like(x)
        for j, p in enumerate(params):
            r = c * np.sinh(x[:, j])
            r = np.exp(p[0]) * r + (p[1] if len(p) > 1 else 0.0)
            out[:, j] = np.arcsinh(r / c)
        return out
    return apply

def hybrid(s, t, c, w):
    g = gainfit(s, t, c, "ab"); q = qmap(s, t)
    return lambda x: w * g(x) + (1 - w) * q(x)

CANDS = {"qmap": lambda s, t, c: qmap(s, t), "gain a": lambda s, t, c: gainfit(s, t, c, "a"),
         "gain ab": lambda s, t, c: gainfit(s, t, c, "ab"), "half": lambda s, t, c: hybrid(s, t, c, 0.5)}

truth = {k: {"cytof": [], "spillover": []} for k in CANDS}
cv_rows = []
for i, case in enumerate(list(cytof_cases()) + list(spillover_cases())):
    fam = case.name.split("_")[0]; c = case.cofactor
    s, t, x, y = (case.scale(v) for v in (case.source, case.target, case.sample, case.truth))
    for k, mk in CANDS.items():
        p = mk(s, t, c)(x)
        truth[k][fam].append(metrics.rmse(p, y) if case.paired else metrics.mean_emd(p, y))
    if fam == "cytof" and i % 2: continue
    for split_name, splitter in (("random", batch._random_split), ("population", batch._population_split)):
        for seed in (0, 1, 2):
            split = splitter(case, seed)
            if split is None: continue
            (sf, tf_), (sh, th) = split
            before = metrics.mean_emd(s[sh], t[th])
            for k, mk in CANDS.items():
                cv_rows.append({"family": fam, "split": split_name, "candidate": k,
                                "ratio": metrics.mean_emd(mk(s[sf], t[tf_], c)(s[sh]), t[th]) / before})
scores = batch.cv_scores(cv_rows)
for k in CANDS:
    parts = [np.mean([r["ratio"] for r in cv_rows if r["candidate"] == k and r["family"] == f and r["split"] == sp])
             for f in ("cytof", "spillover") for sp in ("random", "population")]
    print(f"{k:8s} CV {scores[k]:.4f} " + " ".join(f"{v:.3f}" for v in parts)
          + f" | TRUTH cytof {np.mean(truth[k]['cytof']):.4f} spill {np.mean(truth[k]['spillover']):.4f}", flush=True)
