"""Issue #10: a smoother decoded edit for cells the calibration does not reach. The percentile
maps' residual edit is noisy cell by cell (3 members average it down: 0.199 -> 0.185 RMSE).
Here the edit in code space is the codes' mean shift (scGen-like vector arithmetic,
z + mean E(T) - mean E(S)) or a per-neuron affine map (mean and sd matched), in residual form
R'(X) = X + D(z') - D(z); alone, and as the gate's outside branch (calibration inside, as the
library's "gated"); and "gated" with both branches on the codes' mean shift (the calibration
refitted from R'(S) to T). One autoencoder per case (seed 0, the bench's editor), numpy from its pieces.
mode "truth": scored against the truth (reporting only); mode "cv": select_method's protocol
(seed 0, the same cases and splits, the held-out S plays the sample; never reads a truth).
Run: PYTHONPATH=. python benchmarks/issue10/probe_latent_shift.py truth|cv
"""
import sys

import numpy as np

from neuronedit_tf import metrics, models
from neuronedit_tf.bench import batch
from neuronedit_tf.bench.cases import cytof_cases, spillover_cases
from neuronedit_tf.layers import NeuronEdit


def outputs(editor, source, target, sample):
    """{name: raw edited sample}; source/target: the raw rows the editor was fitted on."""
    names = ("preprocessing", "encoder", "neuron_edit", "decoder", "postprocessing",
             "support_gate", "calibration")
    pre, enc, edit, dec, post, gate, cal = (editor.part(n) for n in names)
    xs, ss, ts = (models.run(pre, v) for v in (sample, source, target))
    zx, zs, zt = (models.run(enc, v) for v in (xs, ss, ts))
    n = len(zx)
    w = np.asarray(gate([zx.astype(np.float32), np.ones((n, 1), np.float32),
                         np.zeros((n, 1), np.float32)]))[:, 0][:, None]
    base = models.run(dec, zx)
    edited_codes = {
        "percentile maps (library)": models.run(edit, zx),
        "code mean shift": zx + (zt.mean(0) - zs.mean(0)),
        "code affine (mean, sd)": zt.mean(0) + (zx - zs.mean(0)) * zt.std(0) / np.maximum(
            zs.std(0), 1e-6),
    }
    out = {}
    for name, z in edited_codes.items():
        r = xs + models.run(dec, z) - base
        c = models.run(cal, r) if name == "percentile maps (library)" else None
        out[f"residual, {name}"] = models.run(post, r)
        lib_r = xs + models.run(dec, edited_codes["percentile maps (library)"]) - base
        inside = models.run(cal, lib_r) if c is None else c
        out[f"gated, outside = residual {name}"] = models.run(post, r + w * (inside - r))
    # Both branches on the codes' mean shift: the calibration refitted from R'(S) to T.
    shift = zt.mean(0) - zs.mean(0)
    rs = ss + models.run(dec, zs + shift) - models.run(dec, zs)
    calibration = NeuronEdit()
    calibration.adapt(rs.astype(np.float32), ts.astype(np.float32))
    r = xs + models.run(dec, zx + shift) - base
    inside = models.run(calibration, r)
    out["gated, both branches code mean shift"] = models.run(post, r + w * (inside - r))
    return out


def truth():
    scores = {}
    for case in list(spillover_cases()) + list(cytof_cases()):
        family = case.name.split("_")[0]
        editor = batch._editor(case, 0, 200)
        y = case.scale(case.truth)
        for name, raw in outputs(editor, case.source.values, case.target.values,
                                 case.sample.values).items():
            p = case.scale(raw)
            value = metrics.rmse(p, y) if case.paired else metrics.mean_emd(p, y)
            scores.setdefault(name, {}).setdefault(family, []).append(value)
        print(case.name, flush=True)
    for name, v in scores.items():
        print(f"{name:52s} cytof EMD {np.mean(v['cytof']):.4f}  cross-channel RMSE "
              f"{np.mean(v['spillover']):.4f} ({' / '.join(f'{a:.3f}' for a in v['spillover'])})")


def cv():
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
            held_t = case.scale(target[t_held])
            before = metrics.mean_emd(case.scale(source[s_held]), held_t)
            for name, raw in outputs(editor, source[s_fit], target[t_fit],
                                     source[s_held]).items():
                rows.append({"family": case.name.split("_")[0], "split": split_name,
                             "candidate": name,
                             "ratio": metrics.mean_emd(case.scale(raw), held_t) / before})
            print(case.name, split_name, flush=True)
    scores = batch.cv_scores(rows)
    print(f"{'candidate':52s} CV score  cytof-rand cytof-pop spill-rand spill-pop")
    for name, score in sorted(scores.items(), key=lambda kv: kv[1]):
        parts = [np.mean([r["ratio"] for r in rows if r["candidate"] == name
                          and r["family"] == f and r["split"] == sp])
                 for f in ("cytof", "spillover") for sp in ("random", "population")]
        print(f"{name:52s} {score:.3f}     " + "  ".join(f"{p:.3f}" for p in parts))


if __name__ == "__main__":
    {"truth": truth, "cv": cv}[sys.argv[1]]()
