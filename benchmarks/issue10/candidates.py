"""Issue #10: candidate edits, scored by spike-in cross-validation (the choice) and, separately,
against the sample's truth (reporting only, never used to choose).

Candidates are computed in numpy from trained NeuronEditors' pieces:
  paper, residual (X + D(NE(E X)) - D(E X), no calibration), calibrated, gated  -- seed 0
  ens3 <m>    -- the mean of <m>'s outputs over editors with seeds 0, 1, 2
  ens3 gated* -- residual averaged over 3 seeds, then ONE calibration R_bar(S) -> T and seed 0's gate
  clus<k> soft[-gated] -- per-population calibration: k-means on E(S) codes, T assigned in edited
                 code space, one calibration R(S_c) -> T_c per population, X blended by a softmax
                 of code distances to the centres (then gated like "gated")
  qmap        -- the per-feature quantile map (reference)
Run: PYTHONPATH=. python benchmarks/issue10/candidates.py cv|truth [seeds]
"""
import json
import sys
import time

import numpy as np
from sklearn.cluster import KMeans

from neuronedit_tf import metrics, models
from neuronedit_tf.bench import batch
from neuronedit_tf.bench.cases import cytof_cases, spillover_cases
from neuronedit_tf.layers import NeuronEdit

import os
EPOCHS = int(os.environ.get("EPOCHS", 200))


def pieces(editor):
    names = ("preprocessing", "encoder", "neuron_edit", "decoder", "postprocessing",
             "support_gate")
    return {n: editor.part(n) for n in names}


def cal_layer(r, t):
    c = NeuronEdit(name="calibration")
    c.adapt(r, t)
    return c


def outputs(editors, source, target, x, ks=(2, 3)):
    """{candidate: raw prediction for raw x}; source/target raw fitting rows."""
    res = {}
    per_seed = []
    for ed in editors:
        p = pieces(ed)
        pre, enc, edit, dec, post, gate = (p[n] for n in ("preprocessing", "encoder",
                                                          "neuron_edit", "decoder",
                                                          "postprocessing", "support_gate"))
        s, t, xs = (models.run(pre, v) for v in (source, target, x))

        def resid(v):
            z = models.run(enc, v)
            return v + models.run(dec, models.run(edit, z)) - models.run(dec, z), z

        rs, zs = resid(s)
        rx, zx = resid(xs)
        cal = cal_layer(rs, t)
        cx = models.run(cal, rx)
        w = gate.weight(zx).numpy()
        zpaper = models.run(dec, models.run(edit, zx))
        one = {"paper": models.run(post, zpaper), "residual": models.run(post, rx),
               "calibrated": models.run(post, cx), "gated": models.run(post, rx + w * (cx - rx))}
        if ed is editors[0]:
            # per-population calibration in code space
            zt = models.run(enc, t)
            ezs = models.run(edit, zs)
            for k in ks:
                km = KMeans(k, n_init=4, random_state=0).fit(zs)
                ls = km.labels_
                centres_t = np.stack([ezs[ls == c].mean(0) for c in range(k)])
                lt = np.argmin(((zt[:, None] - centres_t[None]) ** 2).sum(-1), 1)
                d2 = ((zx[:, None] - km.cluster_centers_[None]) ** 2).sum(-1)
                d2s = ((zs[:, None] - km.cluster_centers_[None]) ** 2).sum(-1)
                temp = float(np.median(d2s.min(1)))
                logits = -(d2 - d2.min(1, keepdims=True)) / temp
                wx = np.exp(logits)
                wx /= wx.sum(1, keepdims=True)
                mixed = np.zeros_like(rx)
                for c in range(k):
                    if (ls == c).sum() >= 101 and (lt == c).sum() >= 101:
                        cc = cal_layer(rs[ls == c], t[lt == c])
                    else:
                        cc = cal
                    mixed += wx[:, c:c + 1] * models.run(cc, rx)
                one[f"clus{k} soft"] = models.run(post, mixed)
                one[f"clus{k} soft-gated"] = models.run(post, rx + w * (mixed - rx))
            base = dict(pre=pre, post=post, gate=gate, t=t, zx=zx)
        per_seed.append((one, rs, rx))
    res.update(per_seed[0][0])
    if len(editors) > 1:
        n = len(editors)
        for m in ("paper", "residual", "calibrated", "gated"):
            res[f"ens{n} {m}"] = np.mean([o[m] for o, _, _ in per_seed], 0)
        # ensemble residual in standardised space (every editor shares the same pre: same data)
        rs_bar = np.mean([r for _, r, _ in per_seed], 0)
        rx_bar = np.mean([r for _, _, r in per_seed], 0)
        cal = cal_layer(rs_bar, base["t"])
        cx = models.run(cal, rx_bar)
        w = base["gate"].weight(base["zx"]).numpy()
        res[f"ens{n} calibrated*"] = models.run(base["post"], cx)
        res[f"ens{n} gated*"] = models.run(base["post"], rx_bar + w * (cx - rx_bar))
    return res


def qmap_raw(case, source, target, x):
    from neuronedit_tf.baselines import registry
    return registry.get("quantile_map", transform="arcsinh", cofactor=case.cofactor).fit(
        source, target).transform(x)


def train(case, seeds, source, target):
    return [batch._editor(case, s, EPOCHS, source, target) for s in seeds]


def cv(seeds):
    rows = []
    cases = list(cytof_cases())[::2] + list(spillover_cases())
    for case in cases:
        for split_name, splitter in (("random", batch._random_split),
                                     ("population", batch._population_split)):
            split = splitter(case, 0)
            if split is None:
                continue
            (s_fit, t_fit), (s_held, t_held) = split
            S, T = case.source.values, case.target.values
            t0 = time.time()
            eds = train(case, seeds, S[s_fit], T[t_fit])
            preds = outputs(eds, S[s_fit], T[t_fit], S[s_held])
            preds["qmap"] = qmap_raw(case, S[s_fit], T[t_fit], S[s_held])
            held_t = case.scale(T[t_held])
            before = metrics.mean_emd(case.scale(S[s_held]), held_t)
            for name, p in preds.items():
                rows.append({"case": case.name, "family": case.name.split("_")[0],
                             "split": split_name, "candidate": name,
                             "ratio": metrics.mean_emd(case.scale(p), held_t) / before})
            print(case.name, split_name, f"{time.time() - t0:.0f}s", flush=True)
    json.dump(rows, open("/tmp/issue10_cv.json", "w"))
    report_cv(rows)


def report_cv(rows):
    scores = batch.cv_scores(rows)
    print(f"{'candidate':24s} score  " + "  ".join(
        f"{f[:5]} {s[:3]}" for f in ("cytof", "spillover") for s in ("random", "population")))
    for name, v in sorted(scores.items(), key=lambda kv: kv[1]):
        parts = []
        for f in ("cytof", "spillover"):
            for s in ("random", "population"):
                rr = [r["ratio"] for r in rows if r["candidate"] == name and r["family"] == f
                      and r["split"] == s]
                parts.append(f"{np.mean(rr):.3f}")
        print(f"{name:24s} {v:.3f}  " + "      ".join(parts))


def truth(seeds, n_seed_sets=1):
    rows = []
    for case in list(cytof_cases()) + list(spillover_cases()):
        for rep in range(n_seed_sets):
            ss = [s + 10 * rep for s in seeds]
            t0 = time.time()
            eds = train(case, ss, case.source.values, case.target.values)
            fit_s = time.time() - t0
            preds = outputs(eds, case.source.values, case.target.values, case.sample.values)
            preds["qmap"] = qmap_raw(case, case.source.values, case.target.values,
                                     case.sample.values)
            for name, p in preds.items():
                rows.append({"case": case.name, "family": case.name.split("_")[0], "rep": rep,
                             "candidate": name, "fit_s": fit_s, **batch.score(case, p)})
            print(case.name, rep, f"{time.time() - t0:.0f}s", flush=True)
    json.dump(rows, open("/tmp/issue10_truth.json", "w"))
    report_truth(rows)


def report_truth(rows):
    print(f"{'candidate':24s} cytof EMD  cytof r  spill RMSE  spill EMD")
    for name in dict.fromkeys(r["candidate"] for r in rows):
        c = [r for r in rows if r["candidate"] == name and r["family"] == "cytof"]
        s = [r for r in rows if r["candidate"] == name and r["family"] == "spillover"]
        print(f"{name:24s} {np.mean([r['emd'] for r in c]):.4f}     "
              f"{np.mean([r['r'] for r in c]):.4f}   {np.mean([r['rmse'] for r in s]):.4f}"
              f"      {np.mean([r['emd'] for r in s]):.4f}")


if __name__ == "__main__":
    mode = sys.argv[1]
    seeds = [int(v) for v in sys.argv[2].split(",")] if len(sys.argv) > 2 else [0, 1, 2]
    if mode == "cv":
        cv(seeds)
    else:
        truth(seeds, int(sys.argv[3]) if len(sys.argv) > 3 else 1)
