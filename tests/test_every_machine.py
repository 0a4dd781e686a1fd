"""Every machine (DESIGN.md): the float-sensitive tests pass under other oneDNN, thread and ISA settings.

A float32 result computed in another order (kernel, blocking, threads, oneDNN, AVX-512 or not)
differs in the last bits, so a test that compares two such computations bit for bit passes on
one CPU and fails on another. The tests marked ``float_sensitive`` compare results of different
computations; here they run again in fresh processes under settings other than this run's, so
such a comparison fails on this machine rather than on someone else's.
"""

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
X86 = platform.machine().lower() in ("x86_64", "amd64")


def settings(onednn, threads, isa):
    """Environment of one configuration.

    TensorFlow sizes its intra- and inter-op thread pools (which run Eigen and oneDNN) from
    ``TF_NUM_*_THREADS`` (checked: the process gains 2n + 1 threads at its first op, and 3
    threads sum 3e6 floats to other bits than 2); the others bound numpy's and scipy's BLAS.
    ``ONEDNN_MAX_CPU_ISA=AVX2`` makes oneDNN, which also runs TensorFlow's float32 matmuls
    with ``TF_ENABLE_ONEDNN_OPTS=0``, pick the kernels of a CPU without AVX-512 (an AMD EPYC,
    an older Xeon): it reproduced issue #21's two failures on an AVX-512 machine.
    """
    env = {"TF_ENABLE_ONEDNN_OPTS": str(onednn)}
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS",
                 "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    if isa and X86:  # an x86 ISA name; oneDNN on ARM has its own
        env["ONEDNN_MAX_CPU_ISA"] = isa
    return env


#: oneDNN off and on, one and two threads, with and without AVX-512 kernels: each setting
#: differs from the default run (oneDNN on, all cores, the CPU's own ISA) in one to three ways.
CONFIGURATIONS = {
    "onednn0-1thread": settings(0, 1, None),
    "onednn1-1thread-avx2": settings(1, 1, "AVX2"),
    "onednn0-2threads-avx2": settings(0, 2, "AVX2"),
}


def marked_files():
    """The test files holding float-sensitive tests: collecting only these keeps a run short."""
    here = Path(__file__).resolve()
    return [str(path) for path in sorted(here.parent.glob("test_*.py"))
            if path != here and "@pytest.mark.float_sensitive" in path.read_text()]


SETTING_NAMES = set().union(*CONFIGURATIONS.values())


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_float_sensitive_tests_pass_under_other_settings(configuration):
    if os.environ.get("NEURONEDIT_EVERY_MACHINE"):
        pytest.skip("already a configuration's run")
    env_settings = CONFIGURATIONS[configuration]
    if all(os.environ.get(name) == env_settings.get(name) for name in SETTING_NAMES):
        pytest.skip("the same settings as this run")
    paths = [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                           if p and p != "."]
    # This run's own settings are dropped, so a setting left out means the default.
    env = {name: value for name, value in os.environ.items() if name not in SETTING_NAMES}
    env.update(env_settings, PYTHONPATH=os.pathsep.join(paths),
               NEURONEDIT_EVERY_MACHINE=configuration)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "float_sensitive",
         *marked_files()], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    report = f"{configuration} {env_settings}: {summary}\n{result.stdout[-6000:]}{result.stderr[-2000:]}"
    assert result.returncode == 0, report
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) > 0, report  # never pass with nothing run
    print(f"{configuration}: {summary}")
