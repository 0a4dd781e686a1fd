"""Issue #10: spike-in cross-validation (select_method, unchanged protocol and cases) of the
methods built on a NeuronEditor(members=K) ensemble. Never reads a sample's truth.
Run: PYTHONPATH=. python benchmarks/issue10/cv_members.py 3
"""
import json
import sys

import numpy as np

from neuronedit_tf.bench import batch
from neuronedit_tf.bench.cases import cytof_cases, spillover_cases

members = int(sys.argv[1])
cases = list(cytof_cases())[::2] + list(spillover_cases())
choice, rows = batch.select_method(cases, seed=0, epochs=200, members=members,
                                   log=lambda m: print(m, flush=True))
json.dump(rows, open(f"benchmarks/issue10/cv_members{members}.json", "w"))
scores = batch.cv_scores(rows)
for name, v in sorted(scores.items(), key=lambda kv: kv[1]):
    parts = [np.mean([r["ratio"] for r in rows if r["candidate"] == name and r["family"] == f
                      and r["split"] == sp]) for f in ("cytof", "spillover")
             for sp in ("random", "population")]
    print(f"{name:24s} {v:.3f}  " + "  ".join(f"{p:.3f}" for p in parts))
print("chosen:", choice)
