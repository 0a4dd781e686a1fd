"""Regenerate ``docs/RELIABILITY.md``: run the reliability tests, count what they tried.

``python -m tests.tools.reliability_report [--fuzz-seconds 300]`` runs
``tests/test_reliability_inputs.py`` and ``tests/test_reliability_faults.py``
with pytest; every case in them calls :func:`record` (a no-op in an ordinary
test run), which appends one line to the file named by
``$NEURONEDIT_RELIABILITY_LOG``. The counts in the page (inputs tried, faults
injected, how each ended) are summed from that log, next to pytest's own pass/fail
counts; with ``--fuzz-seconds`` the FCS reader is fuzzed too
(:mod:`tests.tools.fuzz`), else the last fuzz summary (``docs/fuzz_fcs.json``,
written by ``python -m tests.tools.fuzz fcs --seconds 300 --json docs/fuzz_fcs.json``)
is quoted.

Example:
    >>> record("bad input: arrays", "typed error")  # no log set: nothing happens
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOG_VARIABLE = "NEURONEDIT_RELIABILITY_LOG"
TEST_FILES = ("tests/test_reliability_inputs.py", "tests/test_reliability_faults.py")
#: How a case may end; anything else fails its test.
OUTCOMES = ("typed error", "correct result", "survived")


def record(promise, outcome, count=1, detail=None):
    """Count ``count`` cases of ``promise`` that ended in ``outcome`` (one of :data:`OUTCOMES`).

    Writes only when ``$NEURONEDIT_RELIABILITY_LOG`` names a file (the report
    command sets it), so ordinary test runs leave nothing behind.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}; got {outcome!r}")
    path = os.environ.get(LOG_VARIABLE)
    if not path:
        return
    line = json.dumps({"promise": promise, "outcome": outcome, "count": int(count),
                       "detail": detail})
    with open(path, "a") as handle:  # one short line per call: appends do not interleave
        handle.write(line + "\n")


def tally(log_path):
    """``{promise: {outcome: count}}`` from a log written by :func:`record`."""
    counts = collections.defaultdict(collections.Counter)
    if Path(log_path).exists():
        for line in Path(log_path).read_text().splitlines():
            entry = json.loads(line)
            counts[entry["promise"]][entry["outcome"]] += entry["count"]
    return {k: dict(v) for k, v in sorted(counts.items())}


PROMISES = """\
| # | Promise | How it is tested |
|---|---|---|
| 1 | Bad input never crashes silently: every public entry point (``NeuronEditor`` fit/transform, ``NeuronEdit``, ``tl.edit``, ``read``/``iter_chunks``, the ``neuronedit`` CLI) gives one ``NeuronEditError`` naming the problem and the fix, or a correct, finite result; never a hang, a foreign exception or a silent NaN. | ``tests/test_reliability_inputs.py``: hypothesis-generated arrays (NaN/inf, empty, one row, wrong widths and dtypes, float64 beyond float32, 1e30); a table of fit cases (fewer rows than quantiles, constant and duplicate columns, reordered/missing/extra channels, huge values); every real shipped FCS file truncated at many offsets and byte-flipped; CSV/TSV/Parquet/NPY/NPZ/HDF5/h5ad files truncated, byte-flipped, zero-byte and mislabelled; the CLI on each bad file. Each case runs under a 60 s alarm (a hang fails). The FCS reader is also fuzzed with atheris (below). |
| 2 | Numerical safety: the edit is finite for any finite float32 input (extrapolation included); inputs beyond float32 (float64 > 3.4e38) and data whose variance overflows float32 in standardisation (values beyond ~1e19) are refused with a clear error at ``fit``/``transform``; at ``transform`` time any finite float32 input saturates finitely (every layer clips to float32's range); results do not depend on batch size or row order. | ``test_reliability_inputs.py``: hypothesis arrays with values up to ±3.4e38 through fitted editors of every method (``paper``, ``calibrated``, ``gated``); the same rows in random chunkings and permutations. |
| 3 | Faults never lose work: a training run killed with SIGKILL mid-epoch resumes from its checkpoint (``fit(checkpoint_dir=...)``) and ends with exactly the uninterrupted run's result; a failed write (disk full, permission denied, Ctrl-C) leaves the previous file intact and no partial file; Ctrl-C during ``neuronedit apply`` on many files leaves every finished file complete and no partial one. | ``tests/test_reliability_faults.py``: a subprocess killed by SIGKILL inside epoch 3, resumed, compared bit for bit with an uninterrupted run; ENOSPC injected into every writer (and into the final rename) and into ``NeuronEditor.save``; a permission error (a read-only folder; as root, where modes do not bind, an injected EACCES); SIGINT sent to ``neuronedit apply`` subprocesses. |
| 4 | Loading never runs foreign code: ``.keras`` files load with ``safe_mode=True`` after their config is checked for Lambda layers and functions; a saved editor or method folder holding a pickle, an object array or a Lambda layer is refused with a clear message, and the crafted payload never runs; the package source never unpickles, never calls ``eval``/``exec``, and never turns ``allow_pickle`` on or Keras ``safe_mode`` off. | ``test_reliability_faults.py``: crafted folders whose payload would create a marker file if executed. |
| 5 | Determinism: the same seed gives identical outputs in two fresh processes on the same machine. | ``test_reliability_faults.py``: two subprocesses, outputs compared bit for bit. |
"""


def _pytest(log, junit):
    env = dict(os.environ, **{LOG_VARIABLE: str(log)}, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "pytest", *TEST_FILES, "-q", "-p", "no:cacheprovider",
               f"--junitxml={junit}"]
    start = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    return result, time.monotonic() - start


def _junit_counts(junit):
    import xml.etree.ElementTree as ElementTree

    root = ElementTree.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}


def render(counts, tests, seconds, fuzz, command):
    lines = [
        "# Reliability",
        "",
        "What neuronedit_tf promises about bad input, faults, trust and determinism, how each",
        "promise is tested, and how many cases the last run tried. Every number below was",
        "written by",
        "",
        f"    {command}",
        "",
        "(counts come from the tests' own tally, see ``tests/tools/reliability_report.py``;",
        "nothing here is typed by hand).",
        "",
        "## Promises",
        "",
        PROMISES,
        "Documented choice for float32 overflow: ``fit`` and ``transform`` refuse inputs that",
        "float32 cannot hold, and ``fit`` refuses features whose variance float32 cannot hold",
        "(a ``NeuronEditError`` saying to rescale or use ``transform='arcsinh'``); inside the",
        "graph every value is clipped to float32's range, so ``transform`` saturates finitely",
        "on any finite float32 input. A non-finite output is never returned: it becomes a",
        "``NeuronEditError``.",
        "",
        "## Last run",
        "",
        f"pytest: {tests['tests']} tests, {tests['failures']} failed, {tests['errors']} errors, "
        f"{tests['skipped']} skipped, in {seconds:.0f} s (2-core CPU).",
        "",
        "| Promise / case family | typed error | accepted, valid result | survived (fault injected) | total |",
        "|---|---:|---:|---:|---:|",
    ]
    totals = collections.Counter()
    for promise, outcome in counts.items():
        row = [outcome.get(o, 0) for o in OUTCOMES]
        totals.update(dict(zip(OUTCOMES, row)))
        lines.append(f"| {promise} | {row[0]} | {row[1]} | {row[2]} | {sum(row)} |")
    lines.append(f"| **all** | {totals['typed error']} | {totals['correct result']} | "
                 f"{totals['survived']} | {sum(totals.values())} |")
    lines += ["", "*typed error*: refused with a ``NeuronEditError`` (the CLI: exit code 1 and a",
              "message); *accepted, valid result*: the output is finite and of the right shape",
              "(where the expected value is known, e.g. reordered channels or chunked input, it",
              "is compared too); for damaged files: the file was read and its table passed",
              "validation (for the random FCS mutations: read). A flipped byte inside an FCS,",
              "NPY or HDF5 data segment changes numbers and no checksum in those formats can",
              "tell (FCS files carry CRC 00000000), so such a file reads as the numbers it now",
              "holds. *survived*: a fault was injected and nothing was lost.",
              "A case fails its test if it ends any other way (a foreign exception, a hang,",
              "a NaN output, a partial or damaged file); the table counts only cases that ran.",
              "", "## Fuzzing the FCS reader", ""]
    if fuzz:
        budget = fuzz.get("budget", "?")
        lines += [
            f"From ``docs/fuzz_fcs.json``, written by ``python -m tests.tools.reliability_report "
            f"--fuzz-seconds {budget}`` (or ``python -m tests.tools.fuzz fcs --seconds {budget} "
            "--json docs/fuzz_fcs.json``). The target is ``read_fcs``; flowio and the package's "
            "data modules are instrumented for coverage. "
            f"Engine: {fuzz['engine']}; {fuzz['executions']:,} inputs in {fuzz['seconds']} s"
            + (f", {fuzz['coverage_edges']} coverage edges" if "coverage_edges" in fuzz else "")
            + f", seeded with {fuzz['corpus_seeds']} files (the real shipped CyTOF/FACSDiva files "
            "and small files written by ``write_fcs``).",
            "",
            f"Findings in that run: {len(fuzz['findings'])}"
            + (f" ({', '.join(fuzz['findings'])})" if fuzz["findings"] else "") + ".",
        ]
    else:
        lines.append("Not run (no ``--fuzz-seconds`` and no ``docs/fuzz_fcs.json``).")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.tools.reliability_report")
    parser.add_argument("--out", default="docs/RELIABILITY.md")
    parser.add_argument("--fuzz-seconds", type=int, default=0,
                        help="also fuzz the FCS reader this long (else quote docs/fuzz_fcs.json)")
    args = parser.parse_args(argv)
    from neuronedit_tf.data.atomic import atomic_path

    fuzz_json = Path("docs/fuzz_fcs.json")
    if args.fuzz_seconds:
        from . import fuzz

        summary = fuzz.run_atheris(args.fuzz_seconds, tempfile.mkdtemp(prefix="fuzz_"))
        summary["budget"] = args.fuzz_seconds
        with atomic_path(fuzz_json) as temporary:
            Path(temporary).write_text(json.dumps(summary, indent=2) + "\n")
    fuzz_summary = json.loads(fuzz_json.read_text()) if fuzz_json.exists() else None
    with tempfile.TemporaryDirectory() as scratch:
        log, junit = Path(scratch) / "log.jsonl", Path(scratch) / "junit.xml"
        result, seconds = _pytest(log, junit)
        counts = tally(log)
        tests = _junit_counts(junit)
    command = "python -m tests.tools.reliability_report" + (
        f" --fuzz-seconds {args.fuzz_seconds}" if args.fuzz_seconds else "")
    text = render(counts, tests, seconds, fuzz_summary, command)
    with atomic_path(args.out) as temporary:
        Path(temporary).write_text(text)
    print(text)
    if result.returncode != 0:
        print(result.stdout[-5000:], file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
