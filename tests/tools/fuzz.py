"""Coverage-guided fuzzing of the file readers (not part of the test suite; run from the
repository's root, it is not in the installed package).

``python -m tests.tools.fuzz fcs --seconds 300`` feeds mutated FCS files to
:func:`neuronedit_tf.data.read_fcs` under `atheris <https://github.com/google/atheris>`_
(libFuzzer for Python; ``pip install atheris``), seeded with the real shipped FCS files
(:mod:`neuronedit_tf.data.datasets`) and small files written by :func:`write_fcs`. The
contract under test: every input either reads or raises :class:`NeuronEditError`; any
other exception, a hang (> ``--timeout`` s per input) or a memory blow-up (> 2 GB) is a
finding, saved as ``crash-*``/``timeout-*`` in ``--artifacts``.

A summary (executions, seconds, coverage, findings) is printed and, with ``--json``,
written to a file (``docs/RELIABILITY.md`` quotes it). Without atheris it falls back
to a time-bounded random mutation loop (truncations, byte flips, splices), which is
not coverage-guided; the summary says which engine ran.

Example:
    $ python -m tests.tools.fuzz fcs --seconds 60 --json fuzz_fcs.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Per-input limits: one input may not take longer or allocate more.
TIMEOUT_SECONDS = 10
RSS_LIMIT_MB = 2048
MAX_LEN = 1 << 18


def seeds():
    """Seed inputs: small FCS files written by this package and the heads and whole
    bodies of the real shipped files (the large FACSDiva file is cut to its first 64 KB)."""
    import numpy as np

    from neuronedit_tf.data.datasets import cytof_fcs_bytes, facs_diva_bytes
    from neuronedit_tf.data.fcs import FCSData, write_fcs

    found = {}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        for events, channels in ((1, 1), (5, 3), (20, 4)):
            data = FCSData(rng.normal(size=(events, channels)).astype("float32"),
                           [f"Ch{i}" for i in range(channels)], [f"M{i}" for i in range(channels)],
                           {"com": "seed"})
            path = Path(folder) / "seed.fcs"
            write_fcs(path, data)
            found[f"written_{events}x{channels}"] = path.read_bytes()
    cytof = cytof_fcs_bytes("021", 1)
    found["cytof"] = cytof[:MAX_LEN]
    found["diva_head"] = facs_diva_bytes()[:MAX_LEN]
    return found


def check_one(data: bytes):
    """Read ``data`` as FCS: True if it reads, False if it is refused with a
    NeuronEditError (the contract); any other exception propagates (a finding)."""
    from neuronedit_tf.data.fcs import read_fcs
    from neuronedit_tf.errors import NeuronEditError

    try:
        read_fcs(bytes(data))
    except NeuronEditError:
        return False
    return True


def _worker(argv):
    """Run inside the atheris process: instrument the reader and fuzz it."""
    import atheris

    # Run as a script (not -m), so nothing of the package is imported yet: the reader, the
    # package's data modules and flowio are all instrumented for coverage.
    with atheris.instrument_imports(include=["flowio", "neuronedit_tf"]):
        import flowio  # noqa: F401

        import neuronedit_tf.data.fcs  # noqa: F401

    def test_one_input(data):
        check_one(data)

    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


def _parse_libfuzzer(log):
    """Executions, coverage and features from libFuzzer's last status line."""
    runs = [int(m) for m in re.findall(r"^#(\d+)\s", log, re.M)]
    done = re.findall(r"Done (\d+) runs in (\d+) second", log)
    cov = re.findall(r"cov: (\d+) ft: (\d+)", log)
    result = {"executions": int(done[-1][0]) if done else (max(runs) if runs else 0)}
    if cov:
        result["coverage_edges"], result["coverage_features"] = map(int, cov[-1])
    return result


def run_atheris(seconds, artifacts, timeout=TIMEOUT_SECONDS):
    """Fuzz for ``seconds`` in a subprocess; return the summary dict."""
    artifacts = Path(artifacts)
    artifacts.mkdir(parents=True, exist_ok=True)
    corpus = Path(tempfile.mkdtemp(prefix="fcs_corpus_"))
    for name, content in seeds().items():
        (corpus / name).write_bytes(content)
    command = [sys.executable, str(Path(__file__).resolve()), "_worker",
               f"-max_total_time={int(seconds)}", f"-timeout={int(timeout)}",
               f"-rss_limit_mb={RSS_LIMIT_MB}", f"-max_len={MAX_LEN}",
               f"-artifact_prefix={artifacts}/", "-print_final_stats=1", str(corpus)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=env,
                            timeout=seconds + 600)
    elapsed = time.monotonic() - start
    log = result.stdout + result.stderr
    (artifacts / "fuzz.log").write_text(log[-200_000:])
    findings = sorted(p.name for p in artifacts.iterdir()
                      if p.name.startswith(("crash-", "timeout-", "oom-", "leak-")))
    summary = {"engine": "atheris (libFuzzer, coverage-guided)", "target": "read_fcs",
               "seconds": round(elapsed, 1), "exit_code": result.returncode,
               "findings": findings, "corpus_seeds": len(seeds()), **_parse_libfuzzer(log)}
    if result.returncode != 0 and not findings:
        summary["error"] = log[-2000:]
    return summary


def run_random(seconds, artifacts, seed=0):
    """The fallback without atheris: random truncations, byte flips and splices of the seeds."""
    import numpy as np

    artifacts = Path(artifacts)
    artifacts.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pool = list(seeds().values())
    executions, findings, read = 0, [], 0
    stop = time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < stop:
        data = bytearray(pool[rng.integers(len(pool))])
        for _ in range(int(rng.integers(1, 8))):
            action = rng.integers(3)
            if action == 0 and len(data) > 1:
                data = data[: int(rng.integers(len(data)))]
            elif action == 1 and data:
                data[int(rng.integers(len(data)))] = int(rng.integers(256))
            else:
                other = pool[rng.integers(len(pool))]
                cut = int(rng.integers(len(other) + 1))
                data = data[: int(rng.integers(len(data) + 1))] + other[cut:]
        executions += 1
        try:
            read += check_one(bytes(data))
        except Exception as error:  # a finding: save the input
            name = f"crash-{executions}-{type(error).__name__}"
            (artifacts / name).write_bytes(bytes(data))
            findings.append(name)
    return {"engine": "random mutation (no atheris; not coverage-guided)", "target": "read_fcs",
            "seconds": round(time.monotonic() - start, 1), "executions": executions,
            "read": read, "refused": executions - read - len(findings),
            "findings": findings, "corpus_seeds": len(pool)}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_worker":
        _worker([sys.argv[0]] + argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m tests.tools.fuzz",
                                     description="Fuzz a file reader for a bounded time.")
    parser.add_argument("target", choices=("fcs",))
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--artifacts", default="fuzz_artifacts",
                        help="folder for crash inputs and the fuzzer's log")
    parser.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto")
    parser.add_argument("--json", help="write the summary here")
    args = parser.parse_args(argv)
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401

            engine = "atheris"
        except ImportError:
            engine = "random"
    run = run_atheris if engine == "atheris" else run_random
    summary = run(args.seconds, args.artifacts)
    summary["budget"] = args.seconds
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        from neuronedit_tf.data.atomic import atomic_path

        with atomic_path(args.json) as temporary:
            Path(temporary).write_text(text + "\n")
    return 1 if summary["findings"] or summary.get("error") else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_worker"]:
        # Started as a script: import the package from the repository's root (two folders up),
        # not from this one.
        sys.path[0] = str(Path(__file__).resolve().parents[2])
    sys.exit(main())
