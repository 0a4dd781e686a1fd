"""Benchmark runs in a fresh process: the result, wall time and peak resident memory.

Shared by :mod:`neuronedit_tf.bench.speed` and :mod:`neuronedit_tf.bench.study_speed`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# A child's ru_maxrss starts at the resident size of the process it was forked
# from (Linux copies the parent's high-water mark at fork/exec), so each run is
# started by this small launcher (no numpy, no TensorFlow): the launcher's only
# child is the run, and getrusage(RUSAGE_CHILDREN) then reads that run's peak.
_LAUNCHER = r"""
import json, resource, subprocess, sys
completed = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"returncode": completed.returncode, "peak_rss": peak,
                  "stdout": completed.stdout, "stderr": completed.stderr[-3000:]}))
"""


def run_script(code, spec):
    """Run ``code`` (Python; ``sys.argv[1]`` is ``spec`` as JSON; its last line of output is
    its JSON result) in a fresh process: that result with ``wall`` seconds and ``peak_rss``
    bytes."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    start = time.perf_counter()
    launched = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, sys.executable, "-c", code, json.dumps(spec)],
        capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - start
    report = json.loads(launched.stdout)
    if report["returncode"] != 0:
        raise RuntimeError(f"benchmark child failed:\n{report['stderr']}")
    result = json.loads(report["stdout"].strip().splitlines()[-1])
    result.update(wall=wall, peak_rss=report["peak_rss"])
    return result


def exponent(sizes, values):
    """The log-log slope of ``values`` over ``sizes`` (1: linear growth, 0: flat)."""
    return float(np.polyfit(np.log(sizes), np.log(values), 1)[0])
