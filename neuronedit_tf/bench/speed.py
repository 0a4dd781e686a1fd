"""Speed and memory benchmark: writes ``benchmarks/SPEED.md``, every figure measured in one run.

Measures, on this machine:

- the float32 matmul rate (FLOP/s), the yardstick for every throughput;
- training throughput (samples/s) of the paper's dense autoencoder (37 -> 500-250-50
  -> 37, Adam, MSE) at batch 100 and 1024: Keras ``fit`` on the editor's own
  ``tf.data`` pipeline, with Keras's defaults (one step per call), as
  ``NeuronEditor.fit`` trains by default (several steps per call) and with XLA on top
  (``fit(jit_compile="auto")``), and the same model, optimiser and
  loop in PyTorch (CPU, eager) when ``torch`` is importable (``pip install
  neuronedit_tf[bench]``);
- the whole fit, what a user waits for: ``NeuronEditor.fit`` (statistics, training with
  validation, the edit's tables, calibration and gate) on in-memory rows for 2 epochs,
  in a fresh process, against the PyTorch loop's whole 2 epochs (model creation
  included) on as many rows;
- percentile fitting on 10^6 x 50: :func:`neuronedit_tf.layers.percentiles`
  against ``numpy.percentile`` (and ``tfp.stats.percentile``), with equality checked;
- end to end, ``NeuronEditor.fit`` + ``transform`` on the real CyTOF demo files,
  and on synthetic rows of the demo's width (37 markers, resampled from the real
  files with noise) at each size, read from memory-mapped NPY files and written to
  one: wall time and peak resident memory of a fresh process per size (read with
  ``os.wait4``, the per-child form of ``getrusage(RUSAGE_CHILDREN)``), and the
  growth exponents. Synthetic sizes train one epoch at batch 1024;
- studies (:mod:`neuronedit_tf.bench.study_speed`): ``fit_study`` with 100 batches of
  memory-mapped anchors (10^3, 10^4, 10^5 cells each; time, peak RSS, exponents) and the
  served study graph with 100 batches against one (SavedModel and TFLite). ``--sections
  study`` runs this section alone and rewrites it in place in SPEED.md.

Run: ``python -m neuronedit_tf.bench.speed --out benchmarks`` (the CLI's
``neuronedit bench speed`` calls :func:`main`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from neuronedit_tf.bench.child import exponent as _exponent
from neuronedit_tf.bench.child import run_script as _run_script

WIDTH = 37  # the CyTOF demo's marker channels
HIDDEN = (500, 250, 50)
DEFAULT_SIZES = (10**4, 10**5, 10**6, 10**7)
GOAL_MEMORY_BYTES = 24 * 2**30


# ------------------------------------------------------------------ yardsticks
def _load():
    return os.getloadavg()[0]


def matmul_flops(size=2048, repeats=10):
    """Best float32 matmul rate of TensorFlow on this machine, FLOP/s."""
    import tensorflow as tf

    a = tf.random.stateless_normal((size, size), seed=(1, 2))
    b = tf.random.stateless_normal((size, size), seed=(3, 4))
    product = tf.function(lambda x, y: tf.matmul(x, y))
    product(a, b).numpy()
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def dense_flops(width=WIDTH, hidden=HIDDEN):
    """Forward FLOPs per sample of the dense autoencoder (2 per multiply-add)."""
    sizes = [width] + list(hidden) + list(hidden[-2::-1]) + [width]
    return 2 * sum(a * b for a, b in zip(sizes, sizes[1:]))


def encoder_flops(width=WIDTH, hidden=HIDDEN):
    sizes = [width] + list(hidden)
    return 2 * sum(a * b for a, b in zip(sizes, sizes[1:]))


# -------------------------------------------------------------------- training
#: The Keras configurations of the training table: ``fit``'s compile options for each.
CONFIGURATIONS = {
    "keras": {"jit_compile": False, "steps_per_execution": 1},
    "default": {"jit_compile": False, "steps_per_execution": "auto"},
    "xla": {"jit_compile": "auto", "steps_per_execution": "auto"},
}


def keras_training(batch_size, rows, epochs=3, configuration="default", seed=0):
    """Samples/s of Keras ``fit`` of the dense AE on the editor's tf.data pipeline
    (best epoch after a warm-up epoch).

    ``configuration`` (:data:`CONFIGURATIONS`): ``"keras"``, Keras's defaults (one step
    per call, no XLA); ``"default"``, as ``NeuronEditor.fit`` compiles by default
    (:func:`neuronedit_tf.distribute.compile_for_training`: several steps per call);
    ``"xla"``, as ``fit(jit_compile="auto")`` (XLA on top)."""
    import keras

    from neuronedit_tf import distribute, models, streaming
    from neuronedit_tf.errors import NeuronEditError

    if configuration not in CONFIGURATIONS:
        raise NeuronEditError(f"configuration must be one of {sorted(CONFIGURATIONS)}; "
                              f"got {configuration!r}")
    values = np.random.default_rng(seed).normal(size=(rows, WIDTH)).astype(np.float32)
    pre = models.preprocessing(WIDTH, np.zeros(WIDTH, np.float32), np.ones(WIDTH, np.float32))
    training, steps, _ = streaming.training_data(
        [streaming.Rows(values, "rows")], pre, rows, 1e-9, batch_size, seed)
    model = models.dense_autoencoder(WIDTH, HIDDEN, seed=seed)
    distribute.compile_for_training(model, keras.optimizers.Adam(1e-3), steps,
                                    **CONFIGURATIONS[configuration])

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    times = []
    model.fit(training.map(lambda x: (x, x)), epochs=epochs + 1, steps_per_epoch=steps,
              verbose=0, callbacks=[Timer()], shuffle=False)
    return steps * batch_size / min(times[1:])


def _keras_engine(configuration, batch_size, rows):
    """The training table's label of a :func:`keras_training` run."""
    if configuration == "keras":
        return "Keras fit, Keras defaults (tf.data, 1 step per call)"
    from neuronedit_tf import distribute, models

    per_call = distribute.steps_per_call(-(-rows // batch_size))
    if configuration == "default":
        return f"Keras fit, NeuronEditor's default (tf.data, {per_call} steps per call)"
    xla = distribute.xla_helps(models.dense_autoencoder(WIDTH, HIDDEN))
    return (f"Keras fit, fit(jit_compile='auto') (tf.data, {'XLA, ' if xla else ''}"
            f"{per_call} steps per call)")


def _torch_model(torch):
    sizes = [WIDTH] + list(HIDDEN) + list(HIDDEN[-2::-1])
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.LeakyReLU(0.2)]
    return torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-1], WIDTH))


def torch_training(batch_size, rows, epochs=3, seed=0, threads=None, whole=False):
    """Samples/s of the same AE, Adam and MSE in PyTorch (CPU, eager), best epoch after a
    warm-up epoch; ``whole=True``: the seconds of the whole loop instead (model creation and
    ``epochs`` epochs, no warm-up). None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(seed)
    torch.set_num_threads(threads or os.cpu_count() or 1)
    data = torch.from_numpy(np.random.default_rng(seed).normal(size=(rows, WIDTH)).astype(np.float32))
    started = time.perf_counter()
    model = _torch_model(torch)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_function = torch.nn.MSELoss()
    times = []
    for _ in range(epochs + (0 if whole else 1)):
        start = time.perf_counter()
        order = torch.randperm(rows)
        for i in range(0, rows, batch_size):
            batch = data[order[i : i + batch_size]]
            optimizer.zero_grad()
            loss = loss_function(model(batch), batch)
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    if whole:
        return time.perf_counter() - started
    return rows / min(times[1:])


# ------------------------------------------------------------------ percentiles
def percentile_timing(rows=10**6, neurons=50, repeats=2, seed=0):
    """Seconds for 101 percentiles of ``rows x neurons``: ours, numpy, tfp; and equality."""
    import tensorflow_probability as tfp

    from neuronedit_tf.layers import DEFAULT_QUANTILES, percentiles

    values = np.random.default_rng(seed).normal(size=(rows, neurons)).astype(np.float32)
    quantiles = np.asarray(DEFAULT_QUANTILES)

    def best(function):
        times, result = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            result = function()
            times.append(time.perf_counter() - start)
        return min(times), result

    ours, ours_result = best(lambda: percentiles(values, quantiles))
    numpy_time, numpy_result = best(lambda: np.percentile(values, quantiles, axis=0))
    tfp_time, tfp_result = best(lambda: tfp.stats.percentile(
        values, quantiles, axis=0, interpolation="linear").numpy())
    return {
        "ours": ours, "numpy": numpy_time, "tfp": tfp_time,
        "equal_to_numpy": bool(np.array_equal(ours_result, numpy_result.astype(np.float32))),
        "tfp_max_abs_difference": float(np.abs(tfp_result - numpy_result).max()),
    }


# ------------------------------------------------------------------ end to end
_CHILD = r"""
import json, sys, time
import numpy as np
spec = json.loads(sys.argv[1])
from neuronedit_tf import NeuronEditor
load = lambda name: np.load(spec[name], mmap_mode="r" if spec.get("mmap", True) else None)
start = time.perf_counter()
editor = NeuronEditor(transform="arcsinh", cofactor=5.0, seed=0)
editor.fit(load("source"), load("target"), extra=load("extra"), **spec["fit"])
fitted = time.perf_counter()
extra = load("extra")
out = np.lib.format.open_memmap(spec["out"], "w+", np.float32, extra.shape)
editor.transform(extra, out=out)
done = time.perf_counter()
print(json.dumps({"fit": fitted - start, "transform": done - fitted,
                  "epochs": len(editor.history_["loss"]), "phases": editor.timings_,
                  "finite": bool(np.isfinite(np.load(spec["out"], mmap_mode="r")[:100000]).all())}))
"""


def _run_child(spec):
    """Run one fit + transform in a fresh process; its result, wall time and peak RSS (bytes)."""
    return _run_script(_CHILD, spec)


def _torch_in_child(batch_size, rows, whole_epochs=None):
    """:func:`torch_training` in a fresh process without TensorFlow (this file is loaded
    alone, not the package), with as many threads as cores and with one thread; the
    faster is the reference. (With both cores busy, PyTorch's OpenMP threads can stall
    each other: 190 samples/s with 2 threads against 5,400 with 1 under load 8.)
    Returns ``(samples/s, threads)``, or with ``whole_epochs`` the whole loop's
    ``(seconds, threads)`` for that many epochs; ``(None, None)`` without torch."""
    options = "" if whole_epochs is None else f", epochs={int(whole_epochs)}, whole=True"
    code = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('speed', sys.argv[1])\n"
        "speed = importlib.util.module_from_spec(spec); spec.loader.exec_module(speed)\n"
        f"print(json.dumps(speed.torch_training({int(batch_size)}, {int(rows)}, "
        f"threads=int(sys.argv[2]){options})))\n"
    )
    results = {}
    for threads in sorted({os.cpu_count() or 1, 1}, reverse=True):
        done = subprocess.run([sys.executable, "-c", code, __file__, str(threads)],
                              capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if result is None:
            return None, None
        results[threads] = result
    best = min if whole_epochs is not None else max
    threads = best(results, key=results.get)
    return results[threads], threads


def _synthetic(folder, rows, seed=0):
    """S, T, X of ``rows`` rows together, as NPY files: the real demo files' cells
    resampled with 10% multiplicative noise, written chunk by chunk."""
    from neuronedit_tf import streaming
    from neuronedit_tf.data.datasets import load_cytof

    rng = np.random.default_rng(seed)
    bases = {"source": load_cytof("021", 1).values, "target": load_cytof("028", 1).values,
             "extra": load_cytof("021", 2).values}
    paths = {}
    for i, (name, base) in enumerate(bases.items()):
        n = rows // 3 + (1 if i < rows % 3 else 0)
        path = Path(folder) / f"{name}_{rows}.npy"
        out = np.lib.format.open_memmap(path, "w+", np.float32, (n, WIDTH))
        chunks = (base[rng.integers(0, len(base), min(streaming.CHUNK_ROWS, n - start))]
                  * rng.lognormal(0.0, 0.1, (min(streaming.CHUNK_ROWS, n - start), WIDTH))
                  for start in range(0, n, streaming.CHUNK_ROWS))
        streaming.write_chunks((c.astype(np.float32) for c in chunks), out)
        del out
        paths[name] = str(path)
    return paths


def _cytof_files(folder):
    from neuronedit_tf.data.datasets import load_cytof

    paths = {}
    for name, (batch, donor) in {"source": ("021", 1), "target": ("028", 1),
                                 "extra": ("021", 2)}.items():
        paths[name] = str(Path(folder) / f"cytof_{name}.npy")
        np.save(paths[name], load_cytof(batch, donor).values)
    return paths


def _export_in_child(rows):
    """``export_speed`` in a fresh process (TensorFlow's thread settings apply there)."""
    code = ("import json, sys; from neuronedit_tf.bench.export_speed import export_speed; "
            f"print(json.dumps(export_speed(n_rows={int(rows)}, threads=os.cpu_count())))")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", "import os; " + code], capture_output=True,
                          text=True, check=False, env=env)
    if done.returncode:
        raise RuntimeError(f"export speed failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])




def whole_fit(rows=200_000, epochs=2, rounds=3, scratch=None, log=print):
    """``NeuronEditor().fit`` on ``rows`` in-memory rows (S + T + X) for ``epochs`` against
    PyTorch's whole loop on as many rows, at batch 100 and 1024: each side the fastest of
    ``rounds`` fresh processes, run interleaved (on a shared machine one run can be slowed
    by a neighbour, PyTorch's threads most of all, so single runs mislead either way)."""
    results = []
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        paths = _synthetic(folder, rows)
        for batch_size in (100, 1024):
            log(f"whole fit, batch {batch_size} ...")
            spec = dict(paths, out=str(Path(folder) / "edited.npy"), mmap=False,
                        fit={"epochs": epochs, "batch_size": batch_size, "verbose": 0})
            ours, torch_runs = [], []
            for _ in range(rounds):
                ours.append(_run_child(spec))
                torch_runs.append(_torch_in_child(batch_size, rows, epochs))
            best = min(ours, key=lambda run: run["fit"])
            seconds, threads = (None, None) if torch_runs[0][0] is None else min(torch_runs)
            results.append({"batch": batch_size, "rows": rows, "epochs": best["epochs"],
                            "fit": best["fit"], "phases": best.get("phases"),
                            "torch": seconds, "torch_threads": threads,
                            "rounds": rounds, "load": _load()})
    return results


def end_to_end(sizes=DEFAULT_SIZES, demo_epochs=200, scratch=None, log=print):
    """Fit + transform in a fresh process per row: the CyTOF demo's files, then synthetic
    memory-mapped rows of each of ``sizes`` (1 epoch, batch 1024); each row's seconds, wall
    time and peak RSS (the growth of time and memory with the rows)."""
    rows_measured = []
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        log("end to end: CyTOF demo ...")
        spec = dict(_cytof_files(folder), out=str(Path(folder) / "edited.npy"),
                    fit={"verbose": 0, "epochs": demo_epochs})
        rows_measured.append(dict(_run_child(spec), rows=3000, label="CyTOF demo (3 x 1000 "
                                  f"cells, up to {demo_epochs} epochs, early stopping, batch 100)",
                                  load=_load()))
        for rows in sizes:
            log(f"end to end: {rows} synthetic rows ...")
            paths = _synthetic(folder, rows)
            spec = dict(paths, out=str(Path(folder) / "edited.npy"),
                        fit={"epochs": 1, "batch_size": 1024, "verbose": 0})
            rows_measured.append(dict(_run_child(spec), rows=rows, load=_load(),
                                      label=f"synthetic {rows:.0e} rows (1 epoch, batch 1024)"))
            for path in paths.values():
                os.remove(path)
    return rows_measured


# ---------------------------------------------------------------------- report
def run_speed(out_dir="benchmarks", sizes=DEFAULT_SIZES, training_rows=(30_000, 200_000),
              percentile_shape=(10**6, 50), command=None, scratch=None, log=print,
              export_rows=10**6, demo_epochs=200, whole_fit_rows=200_000, whole_fit_epochs=2,
              whole_fit_rounds=3, studies=None):
    """Measure everything and write ``out_dir/SPEED.md``; returns the figures.

    Args:
        out_dir: folder for SPEED.md.
        sizes: total rows (S + T + X, a third each) of the synthetic end-to-end runs.
        training_rows: rows per epoch for the throughput runs at batch 100 and 1024.
        percentile_shape: rows x neurons of the percentile timing.
        command: the command line to print in the report.
        scratch: folder for the temporary NPY files (default: a temporary folder).
        log: progress messages.
        demo_epochs: the most epochs of the CyTOF demo run (as ``neuronedit demo``).
        export_rows: rows per pass of the exported-graph timing
            (:func:`neuronedit_tf.bench.export_speed.export_speed`); 0 skips it.
        whole_fit_rows, whole_fit_epochs, whole_fit_rounds: the whole-fit comparison with
            PyTorch (S + T + X rows, in memory; epochs of each; interleaved rounds, the
            fastest of each side is reported).
        studies: keyword arguments of :func:`neuronedit_tf.bench.study_speed.run_studies`
            (the "Studies" section; None: its defaults).
    """
    from neuronedit_tf.data.atomic import atomic_path

    figures = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "machine": _machine(), "command": command or "python -m neuronedit_tf.bench.speed",
               "load_start": os.getloadavg()}
    log("matmul rate ...")
    figures["matmul"] = matmul_flops()
    training = []
    for batch_size, rows in zip((100, 1024), training_rows):
        for configuration in CONFIGURATIONS:
            log(f"keras training, batch {batch_size}, {configuration}'s configuration ...")
            rate = keras_training(batch_size, rows, configuration=configuration)
            training.append({"engine": _keras_engine(configuration, batch_size, rows),
                             "batch": batch_size, "load": _load(), "rate": rate})
        log(f"torch training, batch {batch_size} ...")
        rate, threads = _torch_in_child(batch_size, rows)
        if rate is not None:
            training.append({"engine": f"PyTorch (eager, {threads} thread{'s' * (threads > 1)}, "
                                       "best of 1 and all cores)",
                             "batch": batch_size, "load": _load(), "rate": rate})
    figures["training"] = training
    figures["whole_fit"] = whole_fit(whole_fit_rows, whole_fit_epochs, whole_fit_rounds,
                                     scratch=scratch, log=log)
    log("percentiles ...")
    figures["percentiles"] = dict(percentile_timing(*percentile_shape), load=_load(),
                                  shape=list(percentile_shape))
    figures["end_to_end"] = end_to_end(sizes, demo_epochs, scratch=scratch, log=log)
    if export_rows:
        log(f"exported graphs: {export_rows} rows per pass ...")
        figures["export"] = _export_in_child(export_rows)
    from neuronedit_tf.bench.study_speed import run_studies

    figures["studies"] = run_studies(scratch=scratch, log=log, **(studies or {}))
    figures["load_end"] = os.getloadavg()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "SPEED.md") as path:
        Path(path).write_text(render(figures))
    with atomic_path(out / "speed.json") as path:
        Path(path).write_text(json.dumps(figures, indent=2))
    return figures


def _machine():
    import tensorflow as tf

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if "model name" in line)
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB; Python {platform.python_version()}, "
            f"TensorFlow {tf.__version__}, PyTorch {torch_version}")


def render(figures):
    """SPEED.md from the figures of :func:`run_speed`."""
    matmul = figures["matmul"]
    train_flops = 3 * dense_flops()  # forward + backward (2x forward)
    lines = [
        "# Speed and memory",
        "",
        f"Measured {figures['date']} on {figures['machine']}.",
        f"Load average (1 min) at start {figures['load_start'][0]:.2f}, at end "
        f"{figures['load_end'][0]:.2f}; the machine's 2 cores are shared, so each row "
        "also gives the load when it was taken.",
        "",
        "Regenerate with:",
        "",
        "```bash",
        figures["command"],
        "```",
        "",
        f"Float32 matmul rate (TensorFlow, 2048 x 2048): **{matmul / 1e9:.1f} GFLOP/s**. "
        f"The dense autoencoder (37-500-250-50-250-500-37) costs {dense_flops() / 1e6:.2f} MFLOP "
        f"per sample forward, ~{train_flops / 1e6:.2f} MFLOP per training sample.",
        "",
        "## Training throughput (dense autoencoder, Adam, MSE)",
        "",
        "| engine | batch | samples/s | share of matmul rate | vs PyTorch | load |",
        "|---|---|---|---|---|---|",
    ]
    reference = {t["batch"]: t["rate"] for t in figures["training"] if "PyTorch" in t["engine"]}
    for t in figures["training"]:
        ratio = t["rate"] / reference[t["batch"]] if t["batch"] in reference else None
        lines.append(
            f"| {t['engine']} | {t['batch']} | {t['rate']:,.0f} | "
            f"{t['rate'] * train_flops / matmul:.1%} | "
            f"{'–' if ratio is None else f'{ratio:.2f}×'} | {t['load']:.1f} |")
    lines += ["", "Goal: training at least PyTorch's rate at both batch sizes (ratio ≥ 1)."]
    lines += _render_whole_fit(figures.get("whole_fit", []))
    p = figures["percentiles"]
    lines += [
        "",
        f"## Percentile fitting ({p['shape'][0]:,} × {p['shape'][1]}, 101 percentiles)",
        "",
        "| method | seconds | vs numpy.percentile |",
        "|---|---|---|",
        f"| `neuronedit_tf.layers.percentiles` (column sort + numpy's interpolation) | "
        f"{p['ours']:.2f} | {p['ours'] / p['numpy']:.2f}× |",
        f"| `numpy.percentile` | {p['numpy']:.2f} | 1.00× |",
        f"| `tfp.stats.percentile` (linear) | {p['tfp']:.2f} | {p['tfp'] / p['numpy']:.2f}× |",
        "",
        f"Ours equals numpy.percentile bit for bit: {p['equal_to_numpy']}; tfp differs by at most "
        f"{p['tfp_max_abs_difference']:.1e}. Goal: ≤ 1.00× numpy (load {p['load']:.1f}). "
        "Sorting is not matmul work, so no matmul share is given.",
    ]
    lines += _render_end_to_end(figures["end_to_end"], matmul)
    if "export" in figures:
        lines += _render_export(figures["export"])
    if "studies" in figures:
        lines += _render_studies(figures["studies"], figures["command"])
    return "\n".join(lines) + "\n"


def _render_end_to_end(rows, matmul, alone=None):
    """The end-to-end section of SPEED.md (``matmul``: the machine's float32 matmul rate,
    FLOP/s; ``alone``: the command that regenerates this section by itself, when it was run
    so)."""
    train_flops = 3 * dense_flops()  # forward + backward (2x forward)
    lines = [
        "",
        "## End to end: fit + transform, fresh process per row",
        "",
        "Inputs are memory-mapped NPY files (`np.load(mmap_mode=\"r\")`), the edited X is "
        "written to a memory-mapped NPY file (`transform(x, out=...)`). Rows are S + T + X, a "
        "third each. Synthetic sizes train **one epoch** at batch 1024 (so time should grow "
        "linearly); the demo trains as `neuronedit demo` does. Peak RSS is the child process's "
        "maximum resident set (`os.wait4`).",
        "",
    ]
    if alone:
        lines += _regenerated_alone(alone, f"float32 matmul rate then {matmul / 1e9:.1f} GFLOP/s")
    lines += [
        "| data | rows | fit s | transform s | wall s | rows/s | share of matmul rate | "
        "peak RSS MiB | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in rows:
        third = e["rows"] / 3
        work = (e["rows"] * e["epochs"] * train_flops + 2 * third * encoder_flops()
                + third * dense_flops())
        lines.append(
            f"| {e['label']} | {e['rows']:,} | {e['fit']:.1f} | {e['transform']:.1f} | "
            f"{e['wall']:.1f} | {e['rows'] / e['wall']:,.0f} | {work / e['wall'] / matmul:.1%} | "
            f"{e['peak_rss'] / 2**20:,.0f} | {e['load']:.1f} |")
    synthetic = [e for e in rows if e["label"].startswith("synthetic")]
    if len(synthetic) >= 2:
        sizes = [e["rows"] for e in synthetic]
        work = [e["fit"] + e["transform"] for e in synthetic]
        memory = [e["peak_rss"] for e in synthetic]
        lines += [
            "",
            f"Growth exponents (log-log slope of fit + transform time, without process start; "
            f"goal 1 = linear): over {sizes[0]:.0e}–{sizes[-1]:.0e} rows "
            f"**{_exponent(sizes, work):.2f}**, over the last two sizes "
            f"**{_exponent(sizes[-2:], work[-2:]):.2f}** (fixed costs such as tracing dominate "
            "small sizes). Peak RSS: exponent over all sizes "
            f"{_exponent(sizes, memory):.2f}, last two sizes "
            f"**{_exponent(sizes[-2:], memory[-2:]):.2f}** "
            f"({memory[-1] / memory[-2]:.2f}× for {sizes[-1] / sizes[-2]:.0f}× the rows; goal: flat).",
            f"Largest run's peak RSS: {memory[-1] / 2**30:.2f} GiB = "
            f"{memory[-1] / GOAL_MEMORY_BYTES:.1%} of the 24 GiB goal.",
        ]
    return lines


#: The sections ``--sections`` can run alone, each rewritten in place in SPEED.md; they run in
#: this order whatever order they are given in: the later ones write ~1.5 GB of memory-mapped
#: files each, and a fit measured in the minutes after that ran ~40% slower.
SECTIONS = ("whole_fit", "end_to_end", "study")
#: Each such section's heading in SPEED.md (it runs to the next ``## `` heading).
SECTION_HEADINGS = {"study": "## Studies", "whole_fit": "## The whole fit",
                    "end_to_end": "## End to end"}


def _regenerated_alone(command, detail=None):
    """The lines saying a section was rewritten alone, now, by ``command`` (``detail``: what
    else of that run the reader needs, e.g. the machine's matmul rate then)."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    said = f"{detail}; " if detail else ""
    return [f"Regenerated alone at {when} with `{command}` ({said}the rest of SPEED.md is "
            "another run's).", ""]


def _section_command(command, section):
    """The command that regenerates one section: the full run's with ``--sections``."""
    return f"{command} --sections {section}"


def _render_studies(figures, command):
    from neuronedit_tf.bench.study_speed import render_studies

    return render_studies(figures, command, _section_command(command, "study"))


def replace_section(text, heading, lines):
    r"""``text`` (SPEED.md) with the section starting at ``heading`` (up to the next ``## ``
    heading) replaced by ``lines``, or ``lines`` appended when it has no such section.

    Example:
        >>> replace_section("# S\n\n## A\n\nold\n\n## B\n\nb\n", "## A", ["", "## A", "", "new"])
        '# S\n\n## A\n\nnew\n\n## B\n\nb\n'
    """
    body = "\n".join(lines).strip("\n") + "\n"
    start = text.find("\n" + heading)
    if start < 0:
        return text.rstrip("\n") + "\n\n" + body
    end = text.find("\n## ", start + 1)
    rest = "" if end < 0 else "\n" + text[end:].lstrip("\n")
    return text[: start + 1] + body + rest


def run_sections(sections, out_dir="benchmarks", command=None, scratch=None, log=print,
                 studies=None, whole=None, ends=None):
    """Run only ``sections`` (of :data:`SECTIONS`) and rewrite each in place in
    ``out_dir/SPEED.md`` (the rest of the file, and of ``speed.json``, kept); a missing
    SPEED.md is started with its title. ``studies``, ``whole``, ``ends``: keyword arguments of
    :func:`~neuronedit_tf.bench.study_speed.run_studies`, :func:`whole_fit` and
    :func:`end_to_end`. Returns the figures of those sections."""
    from neuronedit_tf.bench.study_speed import run_studies
    from neuronedit_tf.data.atomic import atomic_path

    command = command or "python -m neuronedit_tf.bench.speed"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = {}
    sections = [section for section in SECTIONS if section in sections]
    for section in sections:
        if section == "study":
            figures["studies"] = run_studies(scratch=scratch, log=log, **(studies or {}))
        elif section == "whole_fit":
            figures["whole_fit"] = whole_fit(scratch=scratch, log=log, **(whole or {}))
        elif section == "end_to_end":
            figures["end_to_end_matmul"] = matmul_flops()
            figures["end_to_end"] = end_to_end(scratch=scratch, log=log, **(ends or {}))
    speed_md = out / "SPEED.md"
    text = speed_md.read_text() if speed_md.exists() else "# Speed and memory\n"
    for section in sections:
        if section == "study":
            text = replace_section(text, SECTION_HEADINGS[section],
                                   _render_studies(figures["studies"], command))
        elif section == "whole_fit":
            text = replace_section(text, SECTION_HEADINGS[section], _render_whole_fit(
                figures["whole_fit"], _section_command(command, section)))
        elif section == "end_to_end":
            text = replace_section(text, SECTION_HEADINGS[section], _render_end_to_end(
                figures["end_to_end"], figures["end_to_end_matmul"],
                _section_command(command, section)))
    stored = out / "speed.json"
    saved = json.loads(stored.read_text()) if stored.exists() else {}
    saved.update(figures)
    with atomic_path(speed_md) as path:
        Path(path).write_text(text)
    with atomic_path(stored) as path:
        Path(path).write_text(json.dumps(saved, indent=2))
    return figures


def _render_whole_fit(rows, alone=None):
    """The whole-fit section of SPEED.md: what a user waits for, against PyTorch (``alone``:
    the command that regenerates this section by itself, when it was run so)."""
    if not rows:
        return []
    lines = [
        "",
        f"## The whole fit, against PyTorch's whole loop ({rows[0]['rows']:,} rows, "
        f"{rows[0]['epochs']} epochs)",
        "",
        "`NeuronEditor(transform=\"arcsinh\").fit(S, T, extra=X, epochs=2, batch_size=B)` on "
        "in-memory arrays (the CyTOF demo's cells resampled, S, T and X a third each) in a "
        "fresh process: the seconds of the `fit` call, which also computes the statistics, "
        "holds out 10% for validation, fits the edit's tables, the calibration and the gate. "
        "PyTorch: the same model, Adam and MSE over as many rows, model creation and every "
        "epoch, no validation (best of all cores and one thread). Each side is the fastest of "
        f"{rows[0].get('rounds', 1)} fresh processes, run interleaved.",
        "",
    ]
    if alone:
        lines += _regenerated_alone(alone)
    lines += [
        "| batch | NeuronEditor().fit s | PyTorch loop s | PyTorch ÷ fit (≥ 1: fit as fast) | load |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = "–" if r["torch"] is None else f"{r['torch'] / r['fit']:.2f}×"
        torch_text = "–" if r["torch"] is None else (
            f"{r['torch']:.1f} ({r['torch_threads']} thread{'s' * (r['torch_threads'] > 1)})")
        lines.append(f"| {r['batch']} | {r['fit']:.1f} | {torch_text} | {ratio} | "
                     f"{r['load']:.1f} |")
    lines += ["", "Goal: the whole fit at least as fast as PyTorch's loop (ratio ≥ 1)."]
    phased = [r for r in rows if r.get("phases")]
    if phased:
        names = list(phased[0]["phases"])
        lines += ["", "Where the fit's seconds go (its fastest run; `NeuronEditor.timings_`: "
                  "`training` includes Keras's first-call tracing and each epoch's validation, "
                  "`edit` the encoder and decoder passes over S and T for the edit's tables, the "
                  "calibration and the gate):", "",
                  "| batch | " + " | ".join(names) + " | all but training | PyTorch loop |",
                  "|---" * (len(names) + 3) + "|"]
        for r in phased:
            phases = r["phases"]
            fixed = sum(v for k, v in phases.items() if k != "training")
            torch_text = "–" if r["torch"] is None else f"{r['torch']:.1f}"
            lines.append(f"| {r['batch']} | " + " | ".join(f"{phases[n]:.2f}" for n in names)
                         + f" | {fixed:.2f} | {torch_text} |")
    return lines


#: The served graph's goal: at most this many times the plain autoencoder's cost per row.
SERVING_GOAL = 1.3

EXPORT_LABELS = {
    "plain": "plain autoencoder (no edit; the yardstick)",
    "lookup": "paper: D(NeuronEdit(E(x))), edit as exported (lookup table)",
    "search": "paper, edit as the layer's binary search",
    "default": "the default method ({method}): its whole graph as exported",
}


def _render_export(e):
    """The exported-graph section of SPEED.md from ``export_speed``'s figures."""
    from neuronedit_tf.methods import DEFAULT_METHOD

    goals = e["goals"]
    lines = [
        "",
        f"## Exported graph inference ({e['rows']:,} rows of the demo's width, batch "
        f"{e['batch_size']})",
        "",
        "Raw rows in, edited raw rows out, through the exported SavedModel "
        "(`tf.saved_model.load`, `serving_default`) and the TFLite file "
        f"({e['tflite_runtime']}, {e['tflite_threads']} threads); the graphs run interleaved, "
        "best of 3 rounds. The editor is the demo's (real CyTOF, 37 markers), trained 5 epochs.",
        "",
        "| graph | SavedModel rows/s | TFLite rows/s | cost over plain AE (SavedModel / TFLite) "
        "| TFLite ÷ SavedModel | matmul FLOPs per row (÷ plain AE) |",
        "|---|---|---|---|---|---|",
    ]
    flops = e.get("matmul_flops_per_row", {})
    for graph, rates in e["rows_per_second"].items():
        cost = e["edit_overhead"].get(graph)
        cost_text = "–" if cost is None else f"{cost['saved_model']:+.0%} / {cost['tflite']:+.0%}"
        label = EXPORT_LABELS.get(graph, graph).format(method=DEFAULT_METHOD)
        flops_text = (f"{flops[graph]:,} ({flops[graph] / flops['plain']:.2f}×)"
                      if graph in flops and flops.get("plain") else "–")
        lines.append(f"| {label} | {rates['saved_model']:,.0f} | "
                     f"{rates['tflite']:,.0f} | {cost_text} | "
                     f"{e['tflite_vs_saved_model'][graph]:.2f} | {flops_text} |")
    lookup = e.get("lookup") or {}
    lines += [
        "",
        f"Goals: the edit costs at most {goals['max_edit_overhead']:.0%} over the plain "
        f"autoencoder; TFLite at least {goals['min_tflite_ratio']:.0%} of SavedModel's rate. "
        f"The lookup table has {lookup.get('bins', '–')} bins; lookup and binary search agree "
        f"to {e['lookup_vs_search_max_rel']:.1e} (relative). The default ({DEFAULT_METHOD}) graph runs the "
        "decoder twice (`x + D(edit(E x)) - D(E x)`) and a nearest-neighbour gate against the "
        "spike-ins' stored codes, so its cost over the plain autoencoder is mostly those, not "
        "the percentile edit.",
    ]
    if "default" in flops and flops.get("plain"):
        floor = flops["default"] / flops["plain"]
        verdict = ("cannot reach" if floor > SERVING_GOAL else "may reach")
        lines += [
            "",
            f"The default's graph {verdict} the serving goal of at most {SERVING_GOAL}× the "
            f"plain autoencoder: its matrix products alone are {floor:.2f}× the plain "
            "autoencoder's per row (the decoder's second pass and the gate's distances), before "
            "any other op; the paper's graph's are "
            f"{flops.get('lookup', 0) / flops['plain']:.2f}×.",
        ]
    lines += [
        "",
        f"Load average before/after: {e['machine']['load_average_before'][0]:.2f} / "
        f"{e['machine']['load_average_after'][0]:.2f}.",
    ]
    return lines


def parse_sections(text):
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown section(s) {unknown}; choose from {SECTIONS}")
    return names


def main(argv=None, prog="python -m neuronedit_tf.bench.speed"):
    """Parse arguments, run, write SPEED.md, print it. The CLI's ``neuronedit bench
    speed`` calls ``main(argv, prog="neuronedit bench speed")``; ``prog`` is the
    command written into SPEED.md."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks", help="folder for SPEED.md (default benchmarks)")
    parser.add_argument("--sizes", type=lambda s: tuple(int(float(x)) for x in s.split(",")),
                        default=DEFAULT_SIZES, help="comma-separated total rows, e.g. 1e4,1e5")
    parser.add_argument("--scratch", help="folder for temporary NPY files (default: system temp)")
    parser.add_argument("--export-rows", type=lambda s: int(float(s)), default=10**6,
                        help="rows per pass of the exported-graph timing (0 skips it)")
    parser.add_argument("--sections", type=parse_sections, default=None,
                        help=f"run only these sections (comma-separated, of {', '.join(SECTIONS)}) "
                             "and rewrite them in place in SPEED.md; default: everything")
    args = parser.parse_args(argv)
    command = prog + (f" --out {args.out}" if args.out != "benchmarks" else "")
    if args.sections:
        log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
        run_sections(args.sections, args.out, command=command, scratch=args.scratch, log=log)
        print((Path(args.out) / "SPEED.md").read_text())
        return 0
    if args.sizes != DEFAULT_SIZES:
        command += " --sizes " + ",".join(f"{s:.0e}".replace("+0", "") for s in args.sizes)
    if args.export_rows != 10**6:
        command += f" --export-rows {args.export_rows:.0e}".replace("+0", "")
    figures = run_speed(args.out, args.sizes, command=command, scratch=args.scratch,
                        log=lambda m: print(m, file=sys.stderr, flush=True),
                        export_rows=args.export_rows)
    print(render(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
