"""Issue #10: what members=K, or another edited layer, costs when the edit runs: rows/s of the
default method's whole graph (raw in, edited raw out; Keras, batches of 65,536) on 10^5 rows of
one CyTOF case. Weights do not change the cost: 5 epochs each.
Run: PYTHONPATH=. python benchmarks/issue10/serving_cost.py [members|layers]
  members: members=1 and members=3 (log serving_cost.log)
  layers: members=1 edited at the bottleneck and at encoder_act_0 (log serving_cost_layers.log)
"""
import sys
import time

import numpy as np

from neuronedit_tf import models
from neuronedit_tf.bench import batch
from neuronedit_tf.bench.cases import cytof_cases
from neuronedit_tf.editor import NeuronEditor

case = next(iter(cytof_cases()))
rows = np.tile(case.sample.values, (100, 1))[:100_000].astype(np.float32)


def editors(what):
    if what == "members":
        for members in (1, 3):
            yield f"members={members}", batch._editor(case, 0, 5, members=members)
        return
    for layer in ("bottleneck", "encoder_act_0"):
        editor = NeuronEditor(transform="arcsinh", cofactor=case.cofactor, seed=0, layer=layer)
        yield f"layer={layer}", editor.fit(case.source.values, case.target.values,
                                           extra=case.sample.values, epochs=5, verbose=0)


for name, editor in editors(sys.argv[1] if len(sys.argv) > 1 else "members"):
    models.run(editor.model, rows[:1000])  # trace once
    best = np.inf
    for _ in range(3):
        started = time.perf_counter()
        models.run(editor.model, rows)
        best = min(best, time.perf_counter() - started)
    print(f"{name}: {len(rows) / best:,.0f} rows/s (best of 3)", flush=True)
