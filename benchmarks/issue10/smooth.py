"""Issue #10: does a smoother per-marker map (less estimation noise) transfer better?

Per marker, the quantile map x -> x + d(x) with d_q = t_q - s_q at the 101 percentiles; here
d_q is smoothed across q by a Gaussian kernel of width h percentiles (h=0: the plain map), or
replaced by an affine map (mean and sd matched). Scored two ways on arcsinh(x/5):
  CV   -- spike-ins only (random halves and population halves of S/T, as select_method): choice;
  TRUTH -- the sample's held-out truth: reporting only.
Run: cd benchmarks/issue10 && PYTHONPATH=../..:. python smooth.py
"""
import numpy as np

from neuronedit_tf import metrics
from neuronedit_tf.bench import batch
from neuronedit_tf.bench.cases import cytof_cases, spillover_cases
from neuronedit_tf.layers import NeuronEdit

Q = np.arange(101.0)


def smooth_rows(d, h):
    if h == 0:
        return d
    k = np.exp(-0.5 * ((Q[:, None] - Q[None, :]) / h) ** 2)
    k /= k.sum(1, keepdims=True)
    return k @ d


def smap(s, t, h):
    edit = NeuronEdit()
    edit.adapt(s.astype(np.float32), t.astype(np.float32))
    if h == "affine":
        mu_s, sd_s, mu_t, sd_t = s.mean(0), s.std(0), t.mean(0), t.std(0)
        return lambda x: mu_t + (x - mu_s) * sd_t / np.maximum(sd_s, 1e-9)
    sq, tq = edit.source_q.numpy(), edit.target_q.numpy()
    d = smooth_rows(tq - sq, h)
    new_t = np.maximum.accumulate(sq + d, axis=0)  # keep monotone
    edit.target_q.assign(new_t.astype(np.float32))
    return lambda x: np.asarray(edit(x.astype(np.float32)), np.float64)


HS = [0, 1, 2, 3, 5, 8, 12, 20, "affine"]


def main():
    truth = {h: {"cytof": [], "spillover": []} for h in HS}
    cv_rows = []
    cases = list(cytof_cases()) + list(spillover_cases())
    for i, case in enumerate(cases):
        fam = case.name.split("_")[0]
        s, t, x, y = (case.scale(v) for v in (case.source, case.target, case.sample, case.truth))
        for h in HS:
            p = smap(s, t, h)(x)
            truth[h][fam].append(metrics.rmse(p, y) if case.paired else metrics.mean_emd(p, y))
        if fam == "cytof" and i % 2:
            continue  # CV on the same cases as select_method
        for split_name, splitter in (("random", batch._random_split),
                                     ("population", batch._population_split)):
            for seed in (0, 1, 2):
                split = splitter(case, seed)
                if split is None:
                    continue
                (sf, tf_), (sh, th) = split
                before = metrics.mean_emd(s[sh], t[th])
                for h in HS:
                    cv_rows.append({"family": fam, "split": split_name, "candidate": str(h),
                                    "ratio": metrics.mean_emd(smap(s[sf], t[tf_], h)(s[sh]),
                                                              t[th]) / before})
    scores = batch.cv_scores(cv_rows)
    print("h      CV score  cytof-rand cytof-pop spill-rand spill-pop | TRUTH cytof EMD  spill RMSE")
    for h in HS:
        parts = [np.mean([r["ratio"] for r in cv_rows if r["candidate"] == str(h)
                          and r["family"] == f and r["split"] == sp])
                 for f in ("cytof", "spillover") for sp in ("random", "population")]
        print(f"{str(h):6s} {scores[str(h)]:.4f}    " + "   ".join(f"{v:.4f}" for v in parts)
              + f"  | {np.mean(truth[h]['cytof']):.4f}          {np.mean(truth[h]['spillover']):.4f}")


if __name__ == "__main__":
    main()
