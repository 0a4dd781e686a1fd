"""Issue #10: fit + transform seconds of NeuronEditor(members=1) vs (members=3) on one CyTOF
case (machine shared; run both back to back so they see the same load).
Run: PYTHONPATH=. python benchmarks/issue10/timing.py
"""
import time

from neuronedit_tf.bench import batch
from neuronedit_tf.bench.cases import cytof_cases

case = next(iter(cytof_cases()))
for members in (1, 3, 1, 3):
    started = time.time()
    editor = batch._editor(case, 0, 200, members=members)
    editor.transform(case.sample.values)
    print(f"members={members}: {time.time() - started:.1f} s", flush=True)
