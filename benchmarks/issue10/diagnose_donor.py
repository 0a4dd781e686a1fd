"""Issue #10: is the CyTOF batch effect the same for the spike-in donor and the sample donor?

Reads the sample's truth (ORACLE diagnostics, not a method choice). arcsinh(x/5).
(1) estimation noise of the spike-in map: qmap fitted on half S -> half T, scored on the other
    half of S vs the other half of T, beside the floor of T's halves (same sizes);
(2) per-marker median shift of the spike-in donor (T - S) vs the sample donor (truth - X),
    their difference relative to its bootstrap standard error (z);
(3) the same within populations (k-means k=3 on S u X, both in batch A; T / truth cells
    assigned after their per-marker map back onto S / X).
Run: PYTHONPATH=. python benchmarks/issue10/diagnose_donor.py
"""
import numpy as np
from sklearn.cluster import KMeans

from neuronedit_tf import metrics
from neuronedit_tf.bench.cases import cytof_cases

from diagnose import halves, qmap  # noqa: E402  (same folder)


def boot_se(a, b, n=200, seed=0):
    rng = np.random.default_rng(seed)
    vals = [np.median(b[rng.integers(0, len(b), len(b))], 0)
            - np.median(a[rng.integers(0, len(a), len(a))], 0) for _ in range(n)]
    return np.std(vals, 0)


def main():
    out = []
    seen = set()
    for case in cytof_cases():
        s, t, x, y = (case.scale(v) for v in (case.source, case.target, case.sample, case.truth))
        r = {}
        cv, fl = [], []
        for seed in range(3):
            sa, sb = halves(len(s), seed)
            ta, tb = halves(len(t), seed + 7)
            cv.append(metrics.mean_emd(qmap(s[sa], t[ta])(s[sb]), t[tb]))
            fl.append(metrics.mean_emd(t[ta], t[tb]))
        r["CV qmap on spike-ins (halves)"] = np.mean(cv)
        r["floor T halves"] = np.mean(fl)
        ms, mx = np.median(t, 0) - np.median(s, 0), np.median(y, 0) - np.median(x, 0)
        se = np.sqrt(boot_se(s, t) ** 2 + boot_se(x, y) ** 2)
        keep = se > 0
        z = np.abs(ms - mx)[keep] / se[keep]
        r["median |shift_S - shift_X|"] = float(np.mean(np.abs(ms - mx)))
        r["mean z of that"] = float(np.mean(z))
        r["share of markers z>3"] = float(np.mean(z > 3))
        km = KMeans(3, n_init=4, random_state=0).fit(np.concatenate([s, x]))
        ls, lx = km.predict(s), km.predict(x)
        lt, ly = km.predict(qmap(t, s)(t)), km.predict(qmap(y, x)(y))
        within = []
        for c in range(3):
            if min((ls == c).sum(), (lx == c).sum(), (lt == c).sum(), (ly == c).sum()) < 50:
                continue
            d = (np.median(t[lt == c], 0) - np.median(s[ls == c], 0)) - (
                np.median(y[ly == c], 0) - np.median(x[lx == c], 0))
            within.append(np.mean(np.abs(d)))
        r["within-population |shift_S - shift_X| (k=3)"] = float(np.mean(within))
        out.append(r)
        print(case.name, {k: round(float(v), 3) for k, v in r.items()}, flush=True)
    print("\nMEAN")
    for k in out[0]:
        print(f"{k:45s} {np.mean([r[k] for r in out]):.4f}")


if __name__ == "__main__":
    main()
