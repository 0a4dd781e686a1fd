"""Issue #10: fit + transform seconds of NeuronEditor(members=1) vs (members=3) on one CyTOF
case, back to back (so both see the same machine load), and members=3 in the fast training
configuration (fit(jit_compile="auto", steps_per_execution="auto")).
Run: PYTHONPATH=. python benchmarks/issue10/timing.py
"""
import time

from neuronedit_tf.editor import NeuronEditor
from neuronedit_tf.bench.cases import cytof_cases

case = next(iter(cytof_cases()))
FAST = dict(jit_compile="auto", steps_per_execution="auto")
for members, options in ((1, {}), (3, {}), (1, {}), (3, {}), (3, FAST), (3, FAST)):
    started = time.time()
    editor = NeuronEditor(transform="arcsinh", cofactor=case.cofactor, seed=0, members=members)
    editor.fit(case.source.values, case.target.values, extra=case.sample.values, epochs=200,
               verbose=0, **options)
    editor.transform(case.sample.values)
    print(f"members={members}{' fast' if options else ''}: {time.time() - started:.1f} s "
          f"({len(editor.history['loss'])} epochs)", flush=True)
