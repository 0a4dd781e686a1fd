"""Issue #10: would spike-in cross-validation choose the density-ratio gate of
probe_density.py? select_method's protocol exactly (seed 0; CyTOF spike-in-donor-1 cases and
both cross-channel cases; random and population splits; score = held-out EMD / no correction,
family means then their mean), one autoencoder per split. The held-out S plays the sample:
the gate's pool is the fitting S's codes and the held-out S's codes. Never reads a truth.
Run: PYTHONPATH=. python benchmarks/issue10/probe_density_cv.py
"""
import numpy as np

from neuronedit_tf import metrics, models
from neuronedit_tf.bench import batch
from neuronedit_tf.bench.cases import cytof_cases, spillover_cases

from probe_density import FULL, K, share_from_source


def main():
    rows = []
    for case in list(cytof_cases())[::2] + list(spillover_cases()):
        for split_name, splitter in (("random", batch._random_split),
                                     ("population", batch._population_split)):
            split = splitter(case, 0)
            if split is None:
                continue
            (s_fit, t_fit), (s_held, t_held) = split
            source, target = case.source.values, case.target.values
            editor = batch._editor(case, 0, 200, source[s_fit], target[t_fit])
            names = ("preprocessing", "encoder", "neuron_edit", "decoder", "postprocessing",
                     "calibration")
            pre, enc, edit, dec, post, cal = (editor.part(n) for n in names)
            xs, ss = models.run(pre, source[s_held]), models.run(pre, source[s_fit])
            zx, zs = models.run(enc, xs), models.run(enc, ss)
            rx = xs + models.run(dec, models.run(edit, zx)) - models.run(dec, zx)
            cx = models.run(cal, rx)
            outs = {"residual": models.run(post, rx), "calibrated": models.run(post, cx),
                    "gated (library)": editor.transform(source[s_held])}
            for k in K:
                f = share_from_source(zs, zx, k)
                for full in FULL:
                    w = np.clip(f / full, 0, 1)[:, None]
                    outs[f"density gate k={k}, full at {full}"] = models.run(post,
                                                                             rx + w * (cx - rx))
            held_t = case.scale(target[t_held])
            before = metrics.mean_emd(case.scale(source[s_held]), held_t)
            for name, edited in outs.items():
                rows.append({"family": case.name.split("_")[0], "split": split_name,
                             "candidate": name,
                             "ratio": metrics.mean_emd(case.scale(edited), held_t) / before})
            print(case.name, split_name, flush=True)
    scores = batch.cv_scores(rows)
    print("candidate                            CV score  cytof-rand cytof-pop spill-rand "
          "spill-pop")
    for name, score in sorted(scores.items(), key=lambda kv: kv[1]):
        parts = [np.mean([r["ratio"] for r in rows if r["candidate"] == name
                          and r["family"] == f and r["split"] == sp])
                 for f in ("cytof", "spillover") for sp in ("random", "population")]
        print(f"{name:36s} {score:.3f}     " + "  ".join(f"{p:.3f}" for p in parts))


if __name__ == "__main__":
    main()
