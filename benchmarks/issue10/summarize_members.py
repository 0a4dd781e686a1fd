"""Issue #10: per-seed means of truth_members.py's rows, and gated (on K members) minus the
per-feature quantile map (the benchmark's baseline, deterministic), per CyTOF case and seed.
Reads benchmarks/issue10/truth_members<K>.json; reporting only.
Run: PYTHONPATH=. python benchmarks/issue10/summarize_members.py 3
"""
import json
import sys

import numpy as np

from neuronedit_tf.bench import batch
from neuronedit_tf.bench.cases import cytof_cases

members = int(sys.argv[1])
rows = json.load(open(f"benchmarks/issue10/truth_members{members}.json"))
gated = f"gated, {members} members"
for seed in sorted({r["seed"] for r in rows}):
    mine = [r for r in rows if r["method"] == gated and r["seed"] == seed]
    cytof = [r for r in mine if r["family"] == "cytof"]
    spill = [r for r in mine if r["family"] == "spillover"]
    print(f"seed {seed}: cytof EMD {np.mean([r['emd'] for r in cytof]):.4f} "
          f"r {np.mean([r['r'] for r in cytof]):.4f} | spill RMSE "
          f"{np.mean([r['rmse'] for r in spill]):.4f}")
qmap = {case.name: batch.score(case, batch._baseline("quantile_map", case, 0, None))["emd"]
        for case in cytof_cases()}
diff = np.array([r["emd"] - qmap[r["case"]] for r in rows
                 if r["method"] == gated and r["family"] == "cytof"])
print(f"quantile map cytof EMD {np.mean(list(qmap.values())):.4f}")
print(f"gated - quantile map, cytof EMD per case and seed: {diff.mean():+.4f} "
      f"± {diff.std():.4f} (sd), lower in {(diff < 0).sum()} of {len(diff)}")
