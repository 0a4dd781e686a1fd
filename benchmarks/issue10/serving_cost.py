"""Issue #10: what members=K costs when the edit runs: rows/s of the default method's whole
graph (raw in, edited raw out; Keras, batches of 65,536) for members=1 and members=3, on
10^5 rows of one CyTOF case. Weights do not change the cost: 5 epochs each.
Run: PYTHONPATH=. python benchmarks/issue10/serving_cost.py
"""
import time

import numpy as np

from neuronedit_tf import models
from neuronedit_tf.bench import batch
from neuronedit_tf.bench.cases import cytof_cases

case = next(iter(cytof_cases()))
rows = np.tile(case.sample.values, (100, 1))[:100_000].astype(np.float32)
for members in (1, 3):
    editor = batch._editor(case, 0, 5, members=members)
    models.run(editor.model, rows[:1000])  # trace once
    best = np.inf
    for _ in range(3):
        started = time.perf_counter()
        models.run(editor.model, rows)
        best = min(best, time.perf_counter() - started)
    print(f"members={members}: {len(rows) / best:,.0f} rows/s (best of 3)", flush=True)
