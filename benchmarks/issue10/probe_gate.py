"""Issue #10: can the "gated" method keep CyTOF's per-feature calibration but spare the
cross-channel cases? Probes on one autoencoder per case (seed 0, the bench's editor), built
from its pieces in numpy (R = residual edit, C = calibration(R), w = the SupportGate's weight):

  gate in data space -- the SupportGate's kNN ratio on standardised features instead of codes
                        (bands 1.5-3, 1.2-2, 1-1.5), alone or the min with the code gate;
  per-feature fade   -- C's change faded to 0 where R_j leaves R(S)_j's [p_lo, p_hi] range
                        (over frac * range), with and without the code gate;
  residual + shift   -- R plus a per-feature constant (mean or median of T - R(S)), or the
                        decoded change scaled per feature (alpha fitted on S/T quantiles);
                        also as the gate's outside branch.

EXPLORATORY, scored against the truth only (CyTOF EMD, cross-channel RMSE): none of these was
adopted, so none is a choice made on the truth.
Run: PYTHONPATH=. python benchmarks/issue10/probe_gate.py
"""
import numpy as np

from neuronedit_tf import metrics, models
from neuronedit_tf.bench import batch
from neuronedit_tf.bench.cases import cytof_cases, spillover_cases
from neuronedit_tf.layers import SupportGate

Q = np.arange(5, 96)


def weight(gate, codes):
    n = len(codes)
    return np.asarray(gate([codes.astype(np.float32), np.ones((n, 1), np.float32),
                            np.zeros((n, 1), np.float32)]))[:, 0][:, None]


def candidates(editor, case):
    names = ("preprocessing", "encoder", "neuron_edit", "decoder", "support_gate", "calibration")
    pre, enc, edit, dec, gate, cal = (editor.part(n) for n in names)
    xs, ss, ts = (models.run(pre, v.values) for v in (case.sample, case.source, case.target))

    def resid(v):
        z = models.run(enc, v)
        return v + models.run(dec, models.run(edit, z)) - models.run(dec, z), z

    (rx, zx), (rs, _) = resid(xs), resid(ss)
    cx = models.run(cal, rx)
    wc = weight(gate, zx)
    out = {"residual": rx, "gated (library)": rx + wc * (cx - rx), "calibrated": cx}
    for lo, hi in ((1.5, 3.0), (1.2, 2.0), (1.0, 1.5)):
        data_gate = SupportGate(k=5, low=lo, high=hi)
        data_gate.adapt(ss.astype(np.float32), seed=0)
        wd = weight(data_gate, xs)
        out[f"data gate {lo}-{hi}"] = rx + wd * (cx - rx)
        out[f"min(data, code) gate {lo}-{hi}"] = rx + np.minimum(wd, wc) * (cx - rx)
    for lo_q, hi_q in ((0, 100), (1, 99), (5, 95)):
        lo, hi = np.percentile(rs, lo_q, axis=0), np.percentile(rs, hi_q, axis=0)
        outside = np.maximum(lo - rx, 0) + np.maximum(rx - hi, 0)
        for frac in (0.0, 0.25):
            fade = ((outside == 0).astype(float) if frac == 0 else
                    np.clip(1 - outside / np.maximum((hi - lo) * frac, 1e-6), 0, 1))
            out[f"fade {lo_q}-{hi_q} x{frac} + code gate"] = rx + wc * fade * (cx - rx)
            out[f"fade {lo_q}-{hi_q} x{frac} alone"] = rx + fade * (cx - rx)
    mean_shifted = rx + (ts.mean(0) - rs.mean(0))
    out["residual + mean shift"] = mean_shifted
    out["residual + median shift"] = rx + (np.median(ts, 0) - np.median(rs, 0))
    sq, tq, rq = (np.percentile(v, Q, axis=0) for v in (ss, ts, rs))
    alpha = np.clip(((rq - sq) * (tq - sq)).sum(0) / np.maximum(((rq - sq) ** 2).sum(0), 1e-9),
                    0, 3)
    out["residual, change x alpha"] = xs + alpha * (rx - xs)
    out["gated, outside = residual + mean shift"] = mean_shifted + wc * (cx - mean_shifted)
    return out


def main():
    scores = {}
    for case in list(spillover_cases()) + list(cytof_cases()):
        family = case.name.split("_")[0]
        editor = batch._editor(case, 0, 200)
        post = editor.part("postprocessing")
        truth = case.scale(case.truth)
        for name, standardised in candidates(editor, case).items():
            p = case.scale(models.run(post, standardised))
            value = metrics.rmse(p, truth) if case.paired else metrics.mean_emd(p, truth)
            scores.setdefault(name, {}).setdefault(family, []).append(value)
        print(case.name, flush=True)
    for name, v in scores.items():
        print(f"{name:40s} cytof EMD {np.mean(v['cytof']):.4f}  cross-channel RMSE "
              f"{np.mean(v['spillover']):.4f} ({' / '.join(f'{a:.3f}' for a in v['spillover'])})")


if __name__ == "__main__":
    main()
