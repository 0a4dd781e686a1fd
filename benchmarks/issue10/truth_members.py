"""Issue #10: the library's NeuronEditor(members=K) (default method "gated", its gate on the
joined codes) on all 14 cases, scored against the truth (reporting only; the choice was made
by cv_members.py). Seeds: member seeds seed..seed+K-1 for each given seed.
Run: PYTHONPATH=. python benchmarks/issue10/truth_members.py 3 0,10
"""
import json
import sys
import time

import numpy as np

from neuronedit_tf import models
from neuronedit_tf.bench import batch
from neuronedit_tf.bench.cases import cytof_cases, spillover_cases

members = int(sys.argv[1])
seeds = [int(v) for v in sys.argv[2].split(",")]
rows = []
for case in list(cytof_cases()) + list(spillover_cases()):
    for seed in seeds:
        started = time.time()
        editor = batch._editor(case, seed, 200, members=members)
        prediction = editor.transform(case.sample.values)
        seconds = time.time() - started
        preds = {f"gated, {members} members": prediction}
        preds.update({f"{k}, {members} members": models.run(g, case.sample.values) for k, g in
                      batch.graphs(editor, case.source.values, case.target.values,
                                   [("paper", None), ("calibrated", None)]).items()})
        for name, p in preds.items():
            rows.append({"case": case.name, "family": case.name.split("_")[0], "seed": seed,
                         "method": name, "seconds": seconds, **batch.score(case, p)})
        print(case.name, seed, f"{seconds:.0f}s", flush=True)
json.dump(rows, open(f"benchmarks/issue10/truth_members{members}.json", "w"))
for name in dict.fromkeys(r["method"] for r in rows):
    c = [r for r in rows if r["method"] == name and r["family"] == "cytof"]
    s = [r for r in rows if r["method"] == name and r["family"] == "spillover"]
    print(f"{name:22s} cytof EMD {np.mean([r['emd'] for r in c]):.4f} (sd {np.std([r['emd'] for r in c]):.4f}) "
          f"r {np.mean([r['r'] for r in c]):.4f} | spill RMSE {np.mean([r['rmse'] for r in s]):.4f} "
          f"EMD {np.mean([r['emd'] for r in s]):.4f} | fit+transform {np.mean([r['seconds'] for r in rows if r['method'] == name]):.1f} s")
