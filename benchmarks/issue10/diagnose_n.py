"""Issue #10: how much of the quantile map's EMD to truth is estimation noise of the map?
The S -> T map fitted on n random cells of S and of T (n = 250, 500, 1000), applied to all of X,
scored against the truth (ORACLE read: a diagnostic). If the excess scales like 1/sqrt(n), the
n -> infinity limit is the part no better estimate of the spike-in map can remove.
Run: cd benchmarks/issue10 && PYTHONPATH=../..:. python diagnose_n.py
"""
import numpy as np

from neuronedit_tf import metrics
from neuronedit_tf.bench.cases import cytof_cases

from diagnose import qmap

res = {250: [], 500: [], 1000: []}
for case in cytof_cases():
    s, t, x, y = (case.scale(v) for v in (case.source, case.target, case.sample, case.truth))
    for n in res:
        vals = []
        for seed in range(4 if n < 1000 else 1):
            rng = np.random.default_rng(seed)
            si = rng.choice(len(s), n, replace=False)
            ti = rng.choice(len(t), n, replace=False)
            vals.append(metrics.mean_emd(qmap(s[si], t[ti])(x), y))
        res[n].append(np.mean(vals))
means = {n: float(np.mean(v)) for n, v in res.items()}
print("mean EMD to truth by n cells per spike-in set:", {n: round(v, 4) for n, v in means.items()})
# fit EMD = a + b / sqrt(n)
A = np.array([[1, 1 / np.sqrt(n)] for n in means])
a, b = np.linalg.lstsq(A, np.array(list(means.values())), rcond=None)[0]
print(f"fit a + b/sqrt(n): a (n -> inf) = {a:.4f}, b = {b:.3f}; at n=1000: {a + b / np.sqrt(1000):.4f}")
# errors adding in quadrature: EMD^2 = a^2 + c/n
A2 = np.array([[1, 1 / n] for n in means])
a2, c = np.linalg.lstsq(A2, np.array(list(means.values())) ** 2, rcond=None)[0]
print(f"fit EMD^2 = a^2 + c/n: a (n -> inf) = {np.sqrt(max(a2, 0)):.4f}, c = {c:.2f}")
