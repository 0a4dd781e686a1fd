"""Inference speed of the exported graph: rows/s of SavedModel and TFLite, with and without the edit.

Regenerate the figures of the export notes with::

    python -c "import json; from neuronedit_tf.bench.export_speed import export_speed; \
print(json.dumps(export_speed(), indent=1))"

and the time of each piece alone (encoder, decoder, edit, calibration, gate) with
``component_times()`` in the same way.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from neuronedit_tf import methods
from neuronedit_tf.export import write_saved_model, write_tflite
from neuronedit_tf.lookup import LookupEdit, lookup_edit

#: The graphs compared: ``name -> (edit, method)``: the same autoencoder without the
#: edit, the paper's graph with the edit as exported (lookup) and as the layer's
#: binary search, and the editor's own method's whole graph as exported (for the
#: calibrated and gated methods: residual form with a second decoder pass, the
#: per-feature calibration, and the gate); ``None`` = the editor's method.
GRAPHS = {"plain": ("plain", "paper"), "lookup": ("lookup", "paper"),
          "search": ("search", "paper"), "default": ("lookup", None)}
#: Speed goals of the export (issue 6): the edit's cost and TFLite against SavedModel.
MAX_EDIT_OVERHEAD = 0.15
MIN_TFLITE_RATIO = 0.9


def demo_editor(epochs=5, seed=0, verbose=0):
    """The demo's editor (real CyTOF, 37 markers, arcsinh/5), trained for ``epochs``."""
    from neuronedit_tf.data.datasets import load_cytof
    from neuronedit_tf.editor import NeuronEditor

    source, target, sample = load_cytof("021", 1), load_cytof("028", 1), load_cytof("021", 2)
    editor = NeuronEditor(transform="arcsinh", cofactor=5.0, seed=seed)
    return editor.fit(source, target, extra=sample, epochs=epochs, verbose=verbose), sample


def tflite_interpreter():
    """The TFLite interpreter class (``ai_edge_litert``'s when installed) and its name."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        return tf.lite.Interpreter, "tf.lite.Interpreter"


class _SavedModelRunner:
    def __init__(self, folder):
        self._loaded = tf.saved_model.load(os.fspath(folder))
        self._serve = self._loaded.signatures["serving_default"]

    def __call__(self, batch):
        return self._serve(features=tf.constant(batch))["edited"].numpy()


class _TFLiteRunner:
    def __init__(self, file, batch_shape, threads):
        interpreter_class, _ = tflite_interpreter()
        self._interpreter = interpreter_class(model_path=os.fspath(file), num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._interpreter.resize_tensor_input(self._input, list(batch_shape))
        self._interpreter.allocate_tensors()

    def __call__(self, batch):
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)


def _rows_per_second(runner, batches):
    """(rows per wall-clock second, rows per CPU second of this process)."""
    started, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        runner(batch)
    rows = sum(len(b) for b in batches)
    return rows / (time.perf_counter() - started), rows / (time.process_time() - cpu)


def _setup(editor, rows, threads, epochs, seed):
    """Thread settings, the editor (default: the demo's) and its raw rows as float32."""
    if threads is not None:
        # Must run before TensorFlow's first op; otherwise TensorFlow keeps its default.
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(int(threads))
        except RuntimeError:
            pass
    if editor is None:
        editor, sample = demo_editor(epochs=epochs, seed=seed)
        rows = sample.values if rows is None else rows
    if rows is None:
        raise ValueError("Pass rows=... (raw input rows) with a custom editor.")
    return editor, np.asarray(rows, np.float32), int(threads or os.cpu_count() or 1)


def export_speed(editor=None, rows=None, n_rows=1_000_000, batch_size=4096, repeats=3,
                 threads=None, epochs=5, seed=0):
    """Measure rows/s of the exported graph (raw -> edited raw) in both formats.

    The graphs of ``GRAPHS`` are exported the way ``export_editor`` does it:
    ``"plain"`` (the same autoencoder and pre/post-processing without the edit),
    ``"lookup"`` (the paper's graph with the edit as exported: ``LookupEdit``, one
    gather per activation), ``"search"`` (the layer's binary search,
    ``ceil(log2 Q)`` gathers) and, unless the editor's method is the paper's,
    ``"default"`` (its method's whole exported graph). Each is
    timed as a SavedModel (``tf.saved_model.load``, ``serving_default``) and as
    a TFLite file (``ai_edge_litert`` when installed, else ``tf.lite.Interpreter``)
    over ``n_rows // batch_size`` full batches; the passes are interleaved
    (graph by graph, format by format, ``repeats`` rounds) and the best round
    counts, so a neighbour's load hits every graph alike.

    Args:
        editor: a fitted ``NeuronEditor``; default: the demo's editor on real
            CyTOF (37 markers) trained for ``epochs`` epochs.
        rows: raw rows to resample the input from (default: the demo's sample).
        n_rows: rows per pass (resampled with replacement from ``rows``).
        batch_size: rows per call.
        repeats: interleaved rounds; the best of them is reported.
        threads: TFLite interpreter threads (default: the machine's CPU count);
            also TensorFlow's intra/inter-op threads when given and TensorFlow
            has not run an op yet in this process (else its default stays).
        epochs, seed: training of the default (demo) editor.

    Returns:
        dict with ``rows_per_second[graph][format]``, ``edit_overhead[graph][format]``
        (``plain rows/s / graph rows/s - 1``; goal <= ``MAX_EDIT_OVERHEAD``),
        ``matmul_flops_per_row[graph]`` (:func:`matmul_flops_per_row`: the floor of each
        graph's cost, whatever the kernels),
        ``tflite_vs_saved_model[graph]`` (goal >= ``MIN_TFLITE_RATIO``), the lookup
        table's ``bins``, ``width`` and ``rows`` (layout), the largest difference between the lookup
        and search graphs' outputs (relative to max(|output|, 1)), the machine
        (cores, load average) and ``rows_per_cpu_second`` (rows per CPU second
        of this process: less sensitive to other processes on the machine).
    """
    editor, rows, threads = _setup(editor, rows, threads, epochs, seed)
    data = rows[np.random.default_rng(seed).integers(0, len(rows), n_rows)]
    n_batches = n_rows // batch_size
    if n_batches < 1:
        raise ValueError(f"n_rows ({n_rows}) must be at least batch_size ({batch_size}).")
    batches = [data[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]
    load_before = os.getloadavg()
    frozen = lookup_edit(editor.part("neuron_edit"))
    with tempfile.TemporaryDirectory() as scratch:
        runners, flops = {}, {}
        for graph, (edit, method) in GRAPHS.items():
            if method is None and methods.get(editor.method_).serves_chain:
                continue  # the editor's graph is the paper's, already "lookup"
            folder = Path(scratch) / graph
            write_saved_model(editor, folder, edit=edit, method=method)
            write_tflite(folder, folder / "model.tflite")
            flops[graph] = matmul_flops_per_row(folder / "model.tflite")
            runners[graph] = {
                "saved_model": _SavedModelRunner(folder),
                "tflite": _TFLiteRunner(folder / "model.tflite", batches[0].shape, threads),
            }
        check = {g: {f: r(batches[0]) for f, r in formats.items()} for g, formats in runners.items()}
        best = {g: {f: 0.0 for f in formats} for g, formats in runners.items()}
        best_cpu = {g: {f: 0.0 for f in formats} for g, formats in runners.items()}
        for _ in range(int(repeats)):
            for graph, formats in runners.items():
                for fmt, runner in formats.items():
                    wall, cpu = _rows_per_second(runner, batches)
                    best[graph][fmt] = max(best[graph][fmt], wall)
                    best_cpu[graph][fmt] = max(best_cpu[graph][fmt], cpu)
    plain = best["plain"]
    return {
        "rows": n_batches * batch_size,
        "features": int(data.shape[1]),
        "batch_size": batch_size,
        "tflite_threads": threads,
        "tensorflow_threads": [tf.config.threading.get_intra_op_parallelism_threads(),
                               tf.config.threading.get_inter_op_parallelism_threads()],
        "tflite_runtime": tflite_interpreter()[1],
        "rows_per_second": best,
        "rows_per_cpu_second": best_cpu,
        "matmul_flops_per_row": flops,
        "edit_overhead": {g: {f: plain[f] / best[g][f] - 1.0 for f in plain}
                          for g in best if g != "plain"},
        "tflite_vs_saved_model": {g: best[g]["tflite"] / best[g]["saved_model"] for g in best},
        "goals": {"max_edit_overhead": MAX_EDIT_OVERHEAD, "min_tflite_ratio": MIN_TFLITE_RATIO},
        "lookup": ({"bins": frozen.bins, "width": frozen.width, "rows": frozen.rows}
                   if isinstance(frozen, LookupEdit) else None),
        "lookup_vs_search_max_rel": float(max(
            (np.abs(check["lookup"][f] - check["search"][f])
             / np.maximum(np.abs(check["search"][f]), 1.0)).max()
            for f in ("saved_model", "tflite")
        )),
        "machine": {"cpu_count": os.cpu_count(), "load_average_before": load_before,
                    "load_average_after": os.getloadavg(), "tensorflow": tf.__version__},
    }


def matmul_flops_per_row(tflite_file):
    """FLOPs per input row of a TFLite graph's matrix products: 2 x the weights of every
    ``FULLY_CONNECTED`` op (the autoencoder's layers, the gate's distances to its stored
    codes). The rest of a graph (activations, lookups, selections) is extra."""
    interpreter_class, _ = tflite_interpreter()
    interpreter = interpreter_class(model_path=os.fspath(tflite_file))
    shapes = {t["index"]: t["shape"] for t in interpreter.get_tensor_details()}
    return int(sum(2 * int(np.prod(shapes[op["inputs"][1]]))
                   for op in interpreter._get_ops_details()
                   if op["op_name"] == "FULLY_CONNECTED"))


def export_parity(editor=None, rows=None, out=None, epochs=20, seed=0, name="neuronedit"):
    """Export an editor in both formats (and the quantised TFLite file), verified.

    Args:
        editor: a fitted ``NeuronEditor``; default: the demo's editor (real
            CyTOF, 37 markers) trained for ``epochs`` epochs.
        rows: raw rows to verify with (default: the demo's sample, 1000 real
            cells; with a custom editor, ``export_editor``'s default sample).
        out: keep the export at ``out/name/VERSION``; default: a temporary
            folder, removed afterwards.

    Returns:
        ``export_editor``'s report: ``parity[artifact]`` holds ``max_error`` (the
        verified figure: relative, in the working space, per unit of the last
        map's slope; see ``neuronedit_tf.export``), ``max_abs``, ``max_rel``
        (relative to max(|keras|, 1)) and ``max_spread`` / ``mean_spread``
        (relative to each input feature's standard deviation).
    """
    from neuronedit_tf.export import export_editor

    if editor is None:
        editor, sample = demo_editor(epochs=epochs, seed=seed)
        rows = sample if rows is None else rows
    if rows is not None:
        rows = editor._input_table(rows, "rows", tuple(editor.model_.input.shape[1:])).values
    with tempfile.TemporaryDirectory() as scratch:
        return export_editor(editor, Path(out or scratch), format="both", name=name,
                             quantize=True, sample=rows)


def _tflite_ops(flatbuffer):
    """``{op name: count}`` of a TFLite model (its main subgraph)."""
    import contextlib
    import io

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        tf.lite.experimental.Analyzer.analyze(model_content=flatbuffer)
    ops = {}
    for line in text.getvalue().splitlines():
        line = line.strip()
        if line.startswith("Op#"):
            name = line.split()[1].split("(")[0]
            ops[name] = ops.get(name, 0) + 1
    return ops


class _GateWeight(keras.layers.Layer):
    """``SupportGate.weight`` as a layer of its own, to export and time it alone."""

    def __init__(self, gate, **kwargs):
        super().__init__(name="gate_weight", **kwargs)
        self.gate = gate

    def call(self, codes):
        return self.gate.weight(codes)


def component_times(editor=None, rows=None, batch_size=4096, repeats=20, threads=None,
                    epochs=5, seed=0):
    """Where the exported graph's time goes: each piece alone on one batch.

    Every piece (``encoder``, ``decoder``, the edit as ``LookupEdit`` and as the
    binary search, and for a calibrated editor the calibration as ``LookupEdit``
    and, gated, ``SupportGate.weight``) is exported on its own (``Model.export``,
    then ``write_tflite``: builtin ops only) and run on one ``batch_size`` batch
    of its real input (the demo's rows, encoded) ``repeats`` times, best of 3 rounds.

    Returns:
        ``{piece: {"saved_model_ms", "tflite_ms", "saved_model_cpu_ms",
        "tflite_cpu_ms", "tflite_ops"}}`` (milliseconds per batch, wall clock and
        CPU time of this process), plus ``machine`` (cores, load average).
    """
    from neuronedit_tf.models import run

    editor, rows, threads = _setup(editor, rows, threads, epochs, seed)
    batch = rows[np.random.default_rng(seed).integers(0, len(rows), batch_size)]
    standardised = run(editor.part("preprocessing"), batch).astype(np.float32)
    latent = run(editor.part("encoder"), standardised).astype(np.float32)
    pieces = {"encoder": (editor.part("encoder"), standardised),
              "decoder": (editor.part("decoder"), latent),
              "edit_lookup": (lookup_edit(editor.part("neuron_edit")), latent),
              "edit_search": (editor.part("neuron_edit"), latent)}
    parts = methods.get(editor.method_).parts
    if "calibration" in parts:
        pieces["calibration_lookup"] = (lookup_edit(editor.part("calibration")), standardised)
    if "support_gate" in parts:
        pieces["gate_weight"] = (_GateWeight(editor.part("support_gate")), latent)
    load_before = os.getloadavg()
    timings = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, (layer, x) in pieces.items():
            inputs = keras.Input(x.shape[1:])
            folder = Path(scratch) / name
            keras.Model(inputs, layer(inputs)).export(os.fspath(folder), verbose=False)
            write_tflite(folder, folder / "model.tflite")
            loaded = tf.saved_model.load(os.fspath(folder))
            serve = loaded.signatures["serving_default"]
            key = list(serve.structured_input_signature[1])[0]
            interpreter_class, _ = tflite_interpreter()
            interpreter = interpreter_class(model_path=os.fspath(folder / "model.tflite"),
                                            num_threads=threads)
            index = interpreter.get_input_details()[0]["index"]
            output = interpreter.get_output_details()[0]["index"]
            interpreter.resize_tensor_input(index, list(x.shape))
            interpreter.allocate_tensors()
            tensor = tf.constant(x)

            def saved_model_call():
                return [v.numpy() for v in serve(**{key: tensor}).values()]

            def tflite_call():
                interpreter.set_tensor(index, x)
                interpreter.invoke()
                return interpreter.get_tensor(output)

            figures = {}
            for fmt, call in (("saved_model", saved_model_call), ("tflite", tflite_call)):
                call()
                wall, cpu = np.inf, np.inf
                for _ in range(3):
                    started, cpu_started = time.perf_counter(), time.process_time()
                    for _ in range(int(repeats)):
                        call()
                    wall = min(wall, (time.perf_counter() - started) / repeats)
                    cpu = min(cpu, (time.process_time() - cpu_started) / repeats)
                figures[f"{fmt}_ms"], figures[f"{fmt}_cpu_ms"] = 1e3 * wall, 1e3 * cpu
            figures["tflite_ops"] = _tflite_ops((folder / "model.tflite").read_bytes())
            timings[name] = figures
    timings["machine"] = {"cpu_count": os.cpu_count(), "tflite_threads": threads,
                          "batch_size": batch_size, "load_average_before": load_before,
                          "load_average_after": os.getloadavg()}
    return timings
