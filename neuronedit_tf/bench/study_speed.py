"""Studies at scale: ``fit_study`` time and memory with 100 batches, and the served study
graph's rows/s with 100 batches against one (``benchmarks/SPEED.md``, section "Studies").

- :func:`study_fit_scaling`: ``fit_study`` on ``batches`` anchors of each size, read from
  memory-mapped NPY files (the CyTOF demo's anchor cells of three plates resampled with
  noise), one epoch at batch 1024, the default method, ``reference="mean"``, each size in a
  fresh process: fit seconds, wall seconds and peak resident memory (read by a launcher
  with ``getrusage(RUSAGE_CHILDREN)``, the per-child form of ``os.wait4``; see
  :mod:`neuronedit_tf.bench.speed`), and the growth exponents;
- :func:`study_serving`: a study of one batch and the same study grown to ``batches`` with
  ``add_batch`` (the autoencoder shared, so the graphs differ in their tables only), both
  exported as :func:`~neuronedit_tf.export.export_study` does (and, for reference, a pair
  editor's export), timed interleaved in SavedModel and TFLite, best of ``repeats`` rounds,
  every row of a request naming a random batch.

Run alone: ``neuronedit bench speed --sections study`` (rewrites only this section of
SPEED.md).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

#: Anchor cells per batch of the fit_study runs, and the batches.
STUDY_CELLS = (10**3, 10**4, 10**5)
STUDY_BATCHES = 100
#: The served graph's goal: 100 batches serve at least this share of one batch's rows/s.
SERVING_SHARE = 0.9
#: The plates whose donor-1 anchors the synthetic batches resample (the CyTOF demo files).
PLATES = ("021", "028", "034")

_FIT_CHILD = r"""
import json, sys, time
import numpy as np
spec = json.loads(sys.argv[1])
from neuronedit_tf import NeuronEditor
anchors = {name: np.load(path, mmap_mode="r") for name, path in spec["anchors"].items()}
start = time.perf_counter()
study = NeuronEditor(transform="arcsinh", cofactor=5.0, seed=0).fit_study(
    anchors, reference="mean", epochs=1, batch_size=1024, verbose=0)
fitted = time.perf_counter() - start
print(json.dumps({"fit": fitted, "batches": len(study.batches), "method": study.method_,
                  "epochs": len(study.history_["loss"])}))
"""


def _anchor_files(folder, batches, cells, seed=0):
    """``{batch name: path}``: ``batches`` NPY files of ``cells`` rows each, the demo plates'
    anchor cells (donor 1) resampled in turn with 10% multiplicative noise."""
    from neuronedit_tf import streaming
    from neuronedit_tf.data.datasets import load_cytof

    rng = np.random.default_rng(seed)
    bases = [load_cytof(plate, 1).values.astype(np.float32) for plate in PLATES]
    width = bases[0].shape[1]
    paths = {}
    for b in range(batches):
        base = bases[b % len(bases)]
        path = Path(folder) / f"anchor_{b}.npy"
        out = np.lib.format.open_memmap(path, "w+", np.float32, (cells, width))
        sizes = [min(streaming.CHUNK_ROWS, cells - start)
                 for start in range(0, cells, streaming.CHUNK_ROWS)]
        streaming.write_chunks((base[rng.integers(0, len(base), n)]
                                * rng.lognormal(0.0, 0.1, (n, width)).astype(np.float32)
                                for n in sizes), out)
        del out
        paths[str(b)] = str(path)
    return paths


def study_fit_scaling(cells=STUDY_CELLS, batches=STUDY_BATCHES, scratch=None, log=print):
    """``fit_study`` on ``batches`` memory-mapped anchors of each size in ``cells``, a fresh
    process each: ``[{"cells", "batches", "rows", "fit", "wall", "peak_rss", "load"}, ...]``
    (seconds, bytes)."""
    from neuronedit_tf.bench.child import run_script

    results = []
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        for size in cells:
            log(f"studies: fit_study, {batches} batches x {size} anchor cells ...")
            paths = _anchor_files(folder, batches, int(size))
            result = run_script(_FIT_CHILD, {"anchors": paths})
            results.append(dict(result, cells=int(size), rows=int(size) * batches,
                                load=os.getloadavg()[0]))
            for path in paths.values():
                os.remove(path)
    return results


def _interleaved(runners, requests, repeats):
    """Best rows/s of every runner ``{(graph, format): runner}`` over its graph's requests
    ``requests[graph]`` (``[(features, batch names), ...]``), the runners taken in turn in
    each of ``repeats`` rounds, so a neighbour's load hits every graph alike."""
    best = {key: 0.0 for key in runners}
    for _ in range(int(repeats)):
        for key, runner in runners.items():
            chunks = requests[key[0]]
            started = time.perf_counter()
            for features, names in chunks:
                runner(features, names)
            rows = sum(len(f) for f, _ in chunks)
            best[key] = max(best[key], rows / (time.perf_counter() - started))
    return best


def study_serving(batches=STUDY_BATCHES, n_rows=2**18, batch_size=4096, repeats=3,
                  threads=None, epochs=2, anchor_cells=5000, seed=0, log=print):
    """Rows/s of the exported study graph with one batch and with ``batches``, and of a pair
    editor's export (the same method), SavedModel and TFLite, interleaved.

    The one-batch study is fitted on one anchor (``reference="mean"``, so no row passes
    unchanged); the large study is that study with ``batches - 1`` batches added
    (:meth:`~neuronedit_tf.study.Study.add_batch`, anchors of ``anchor_cells`` resampled
    from the demo plates), so both share the autoencoder and differ in their tables only.
    Requests are ``batch_size`` rows of the demo's held-out sample, each row naming a
    random batch of the graph.

    Returns:
        dict with ``rows_per_second[graph][format]`` (graphs ``"one"``, ``"many"``,
        ``"many_files"``: the large study with every request's rows naming one batch, as
        ``neuronedit apply`` sends a file, and ``"pair"``), ``share`` (many ÷ one per format;
        goal >= ``SERVING_SHARE``), ``share_files`` (many_files ÷ one), the
        frozen maps of each study (``layouts``: ``{graph: {map: description}}``) and
        ``lookup_vs_search_max_error`` (the large study's SavedModel against its Keras graph,
        the binary search, in standardised units relative to max(|value|, 1)).
    """
    import pandas as pd
    import tensorflow as tf

    from neuronedit_tf import NeuronEditor
    from neuronedit_tf.bench.export_speed import tflite_interpreter
    from neuronedit_tf.data.datasets import load_cytof
    from neuronedit_tf.export import export_editor, export_study
    from neuronedit_tf.lookup import StudyLookupEdit, study_lookup_edit
    from neuronedit_tf.models import run

    threads = int(threads or os.cpu_count() or 1)
    rng = np.random.default_rng(seed)
    plates = {p: load_cytof(p, 1) for p in PLATES}
    columns = list(plates[PLATES[0]].channels)

    def anchor(plate, n, seed):
        values = plates[plate].values.astype(np.float32)
        r = np.random.default_rng(seed)
        picked = values[r.integers(0, len(values), n)]
        return pd.DataFrame(picked * r.lognormal(0.0, 0.05, picked.shape).astype(np.float32),
                            columns=columns)

    log(f"studies: serving, a one-batch study grown to {batches} batches ...")
    editor = NeuronEditor(transform="arcsinh", cofactor=5.0, seed=seed)
    one = editor.fit_study({"0": anchor(PLATES[0], 4 * anchor_cells, seed)}, reference="mean",
                           epochs=epochs, verbose=0)
    pair = NeuronEditor(transform="arcsinh", cofactor=5.0, seed=seed).fit(
        plates[PLATES[0]], plates[PLATES[1]], epochs=epochs, verbose=0)
    sample = load_cytof(PLATES[0], 2).values.astype(np.float32)
    data = sample[rng.integers(0, len(sample), n_rows)]
    with tempfile.TemporaryDirectory() as scratch:
        many = NeuronEditor.load(one.save(Path(scratch) / "saved"))
        for b in range(1, batches):
            many.add_batch(str(b), anchor=anchor(PLATES[b % len(PLATES)], anchor_cells, 100 + b))
        layouts = {}
        for name, study in (("one", one), ("many", many)):
            layouts[name] = {}
            for part, layer in study._maps.items():
                frozen = study_lookup_edit(layer)
                if isinstance(frozen, StudyLookupEdit):
                    kind = "nested" if frozen.fine else "one-level"
                    layouts[name][part] = (f"{kind} lookup, {frozen.bins} bins, {frozen.rows} "
                                           f"rows, {frozen.table_bytes / 2**20:.2f} MiB")
                else:
                    layouts[name][part] = "binary search"
        folders = {}
        for name, study in (("one", one), ("many", many)):
            log(f"studies: exporting the {len(study.batches)}-batch study ...")
            folders[name] = export_study(study, Path(scratch) / f"served_{name}", verify=False)["path"]
        folders["pair"] = export_editor(pair, Path(scratch) / "served_pair", format="both",
                                        verify=False)["path"]
        names = {name: [str(i).encode() for i in range(len(s.batches))]
                 for name, s in (("one", one), ("many", many))}
        names["pair"] = [b"0"]
        requests = {g: [(data[i:i + batch_size],
                         np.array([n[j] for j in rng.integers(0, len(n), batch_size)], bytes))
                        for i in range(0, n_rows - batch_size + 1, batch_size)]
                    for g, n in names.items()}
        # What `neuronedit apply` sends: a file is one batch, so every row of a request names
        # the same batch (a random one per request), against the worst case above.
        requests["many_files"] = [(features, np.full(batch_size, names["many"][j]))
                                  for (features, _), j in zip(
                                      requests["many"],
                                      rng.integers(0, len(names["many"]), len(requests["many"])))]
        interpreter_class, runtime = tflite_interpreter()
        runners, interpreters = {}, []
        for graph, folder in folders.items():
            serve = tf.saved_model.load(os.fspath(folder)).signatures["serving_default"]
            interpreter = interpreter_class(model_path=os.fspath(Path(folder) / "model.tflite"),
                                            num_threads=threads)
            interpreters.append(interpreter)
            runner = interpreter.get_signature_runner()
            if graph == "pair":
                runners[graph, "saved_model"] = (
                    lambda f, b, s=serve: s(features=tf.constant(f)))
                runners[graph, "tflite"] = lambda f, b, r=runner: r(features=f)
            else:
                runners[graph, "saved_model"] = (
                    lambda f, b, s=serve: s(features=tf.constant(f), batch=tf.constant(b)))
                runners[graph, "tflite"] = lambda f, b, r=runner: r(features=f, batch=b)
        for form in ("saved_model", "tflite"):
            runners["many_files", form] = runners["many", form]
        # The large study's served graph (lookup tables) against its Keras graph (search).
        features, batch = requests["many"][0]
        served = runners["many", "saved_model"](features, batch)["edited"].numpy()
        index = many.index([b.decode() for b in batch])
        pre = many.pieces.pre
        a, b = run(pre, served), run(pre, many._run(features, index))
        agreement = float((np.abs(a - b) / np.maximum(np.abs(b), 1.0)).max())
        for key, runner in runners.items():  # warm up
            runner(*requests[key[0]][0])
        best = _interleaved(runners, requests, repeats)
    rates = {g: {f: best[g, f] for f in ("saved_model", "tflite")} for g in requests}
    return {
        "batches": batches, "rows": len(requests["many"]) * batch_size, "batch_size": batch_size,
        "method": many.method_, "tflite_runtime": runtime, "tflite_threads": threads,
        "rows_per_second": rates,
        "share": {f: rates["many"][f] / rates["one"][f] for f in ("saved_model", "tflite")},
        "share_files": {f: rates["many_files"][f] / rates["one"][f]
                        for f in ("saved_model", "tflite")},
        "layouts": layouts, "lookup_vs_search_max_error": agreement,
        "goal_share": SERVING_SHARE, "load": os.getloadavg()[0],
    }


_SERVING_CHILD = r"""
import json, os, sys
spec = json.loads(sys.argv[1])
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(os.cpu_count())
tf.config.threading.set_inter_op_parallelism_threads(os.cpu_count())
from neuronedit_tf.bench.study_speed import study_serving
print(json.dumps(study_serving(**spec)))
"""


def run_studies(cells=STUDY_CELLS, batches=STUDY_BATCHES, serving_rows=2**18, scratch=None,
                log=print, serving_epochs=2, anchor_cells=5000):
    """Both parts, each in fresh processes: ``{"fit": [...], "serving": {...}}``
    (:func:`study_fit_scaling` and :func:`study_serving` with ``serving_rows`` rows per pass,
    ``serving_epochs`` and ``anchor_cells``)."""
    from neuronedit_tf.bench.child import run_script

    figures = {"fit": study_fit_scaling(cells, batches, scratch, log)}
    log("studies: served graphs (one process) ...")
    figures["serving"] = run_script(_SERVING_CHILD, {
        "batches": batches, "n_rows": int(serving_rows), "epochs": serving_epochs,
        "anchor_cells": anchor_cells})
    return figures


def render_studies(figures, command, section_command):
    """The "Studies" section of SPEED.md (lines)."""
    from neuronedit_tf.bench.child import exponent as _exponent

    fit, serving = figures["fit"], figures["serving"]
    batches = fit[0]["batches"] if fit else serving["batches"]
    lines = [
        "",
        "## Studies: fit_study with 100 batches, and the served study graph",
        "",
        "Regenerate this section alone (the rest of SPEED.md is kept) with:",
        "",
        "```bash",
        section_command,
        "```",
        "",
        f"(or the whole file with `{command}`).",
        "",
        f"`NeuronEditor(transform=\"arcsinh\", cofactor=5).fit_study(anchors, reference=\"mean\", "
        f"epochs=1, batch_size=1024)` with {batches} batches, every anchor a memory-mapped NPY "
        "file (`np.load(mmap_mode=\"r\")`; the CyTOF demo's anchor cells of plates "
        f"{', '.join(PLATES)} resampled with 10% noise), the default method, in a fresh process "
        "per size: the seconds of the `fit_study` call (statistics, training, every batch's "
        "tables) and the process's peak resident memory.",
        "",
        "| anchor cells per batch | batches | cells in all | fit_study s | wall s | cells/s | "
        "peak RSS MiB | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in fit:
        lines.append(f"| {r['cells']:,} | {r['batches']} | {r['rows']:,} | {r['fit']:.1f} | "
                     f"{r['wall']:.1f} | {r['rows'] / r['fit']:,.0f} | "
                     f"{r['peak_rss'] / 2**20:,.0f} | {r['load']:.1f} |")
    if len(fit) >= 2:
        rows = [r["rows"] for r in fit]
        seconds = [r["fit"] for r in fit]
        memory = [r["peak_rss"] for r in fit]
        lines += [
            "",
            f"Growth exponents (log-log slope; goal: time 1 = linear, memory 0 = flat): fit "
            f"time over all sizes **{_exponent(rows, seconds):.2f}**, over the last two "
            f"**{_exponent(rows[-2:], seconds[-2:]):.2f}**; peak RSS over all sizes "
            f"**{_exponent(rows, memory):.2f}**, over the last two "
            f"**{_exponent(rows[-2:], memory[-2:]):.2f}** ({memory[-1] / memory[-2]:.2f}× for "
            f"{rows[-1] / rows[-2]:.0f}× the cells).",
        ]
    rates, share = serving["rows_per_second"], serving["share"]
    lines += [
        "",
        f"Served graphs: the default method ({serving['method']}), a study of one batch and the "
        f"same study grown to {serving['batches']} batches with `add_batch` (one autoencoder: "
        "the graphs differ in their tables only), exported as `study.export` does, and a pair "
        f"editor's export for reference; requests of {serving['batch_size']:,} rows, each row "
        f"naming a random batch; {serving['rows']:,} rows per pass, SavedModel "
        f"(`serving_default`) and TFLite ({serving['tflite_runtime']}, "
        f"{serving['tflite_threads']} threads), interleaved, best of 3 rounds "
        f"(load {serving['load']:.1f}).",
        "",
        "| graph | SavedModel rows/s | TFLite rows/s | ÷ one-batch study (SavedModel / TFLite) |",
        "|---|---|---|---|",
    ]
    labels = {"one": "study, 1 batch", "many": f"study, {serving['batches']} batches",
              "many_files": f"study, {serving['batches']} batches, one batch per request "
                            "(as `neuronedit apply` sends a file)",
              "pair": "pair editor (NeuronEditor.export), for reference"}
    for graph in [g for g in ("one", "many", "many_files", "pair") if g in rates]:
        r = rates[graph]
        lines.append(f"| {labels[graph]} | {r['saved_model']:,.0f} | {r['tflite']:,.0f} | "
                     f"{r['saved_model'] / rates['one']['saved_model']:.2f} / "
                     f"{r['tflite'] / rates['one']['tflite']:.2f} |")
    layouts = "; ".join(f"{labels[g]}: " + ", ".join(f"{part} {text}" for part, text in maps.items())
                        for g, maps in serving["layouts"].items())
    lines += [
        "",
        f"Goal: {serving['batches']} batches serve at least {serving['goal_share']:.0%} of one "
        f"batch's rows/s: SavedModel **{share['saved_model']:.0%}**, TFLite "
        f"**{share['tflite']:.0%}**"
        + (f" with every row naming a random batch (the worst case), and "
           f"{serving['share_files']['saved_model']:.0%} / {serving['share_files']['tflite']:.0%} "
           "with one batch per request" if "share_files" in serving else "")
        + f". The frozen maps: {layouts}. The {serving['batches']}-batch "
        "graph's lookup tables agree with its Keras graph (the binary search) to "
        f"{serving['lookup_vs_search_max_error']:.1e} (standardised units, relative to "
        "max(|value|, 1)).",
    ]
    return lines
