"""Export a fitted editor as one graph (raw -> edited raw) and verify it outside this package.

Formats (``export_editor(editor, path, format=...)``):

* ``"saved_model"``: written with ``keras.export.ExportArchive``; signatures
  ``serving_default`` (``features`` -> ``edited``: raw -> edited raw),
  ``encode`` (``features`` -> ``latent``), ``edit`` (``latent`` ->
  ``edited_latent``) and ``decode`` (``latent`` -> ``features``), all float32
  with a free batch axis. ``assets/features.txt`` lists the feature names in
  input order and ``assets/neuronedit.json`` the editor's settings (transform,
  cofactor, ...). With ``name``/``version`` the folder is laid out for TF Serving:
  ``PATH/NAME/VERSION/saved_model.pb``.
* ``"tflite"``: ``model.tflite`` (float32, ``serving_default`` only) converted
  with ``tf.lite.TFLiteConverter.from_saved_model`` restricted to TFLite builtin
  ops (no Select TF ops), and with ``quantize=True`` also
  ``model_quantized.tflite`` (dynamic-range: int8 weights, float activations).
  TF Serving's ``--prefer_tflite_model`` looks for ``model.tflite`` in the same
  version folder.
* ``"both"``: all of the above in one folder.

A study (:class:`~neuronedit_tf.study.Study`, ``export_study``) exports the same way as one
graph for every batch: ``serving_default`` takes ``features`` and ``batch`` (each row's batch
name, a string tensor, found by one hash-table lookup per row, ``batch_table``), its per-batch
maps frozen into stacked lookup tables (``StudyLookupEdit``: one-level, or nested where the
knots cluster, so that 100 batches still fit; see ``study_lookup_edit``); a request naming
an unknown batch fails.

In the exported graph the edit is ``LookupEdit`` (``neuronedit_tf.lookup``): the
fitted ``NeuronEdit`` map frozen into a one-gather lookup table (the same
function; verified below). Maps whose knots are too clustered for a small table
keep ``NeuronEdit``'s binary search.

Verification (``verify=True``) runs in a fresh Python process that never imports
``neuronedit_tf``: ``tf.saved_model.load`` and the TFLite interpreter
(``ai_edge_litert`` when installed, else ``tf.lite.Interpreter``) run a sample,
and ``saved_model_cli run`` (the command's entry point, in the same process)
runs the same sample from a ``.npy`` file; every
output is compared with the Keras model. Float exports must agree within
``TOLERANCE``; the quantised TFLite file within ``QUANTIZED_TOLERANCE``.

Both are measured as ``max_error`` (see ``_difference``): the difference in the
model's working space (the editor's preprocessing applied to both outputs, i.e.
standardised units), relative to max(|value|, 1), and divided by the largest
slope of the graph's last percentile map for that feature (``output_gain``).
A steep segment of a fitted map multiplies any rounding of its input by its
slope: on the real CyTOF demo editor one calibration map rises 35.6x faster than
its input, and float32 rounding there, harmless anywhere else, reached 1.1e-4 of
the raw value (2.0e-4 in TFLite), the same relative size as two batch sizes of
the Keras model itself give at a flat map (1.8e-5). Raw-scale figures
(``max_rel``, ``max_spread``) are still reported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from neuronedit_tf import methods
from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.layers import NeuronEdit
from neuronedit_tf.lookup import lookup_edit
from neuronedit_tf.models import run

FORMATS = ("saved_model", "tflite", "both")
ENDPOINTS = ("serving_default", "encode", "edit", "decode")
#: Float32 parity tolerance on ``max_error`` (relative error in the working space,
#: per unit of the last map's slope; see the module docstring).
TOLERANCE = 1e-4
#: Quantised TFLite tolerance on ``max_error``. Dynamic-range quantisation stores
#: the autoencoder's weights as int8 (the edit's table stays exact).
QUANTIZED_TOLERANCE = 0.25
TFLITE_FILE = "model.tflite"
QUANTIZED_FILE = "model_quantized.tflite"
FEATURES_FILE = "features.txt"
METADATA_FILE = "neuronedit.json"
DEFAULT_NAME = "neuronedit"
#: Rows of the default verification sample.
SAMPLE_ROWS = 256

_VERIFY_SCRIPT = r"""
import json, sys
import numpy as np
config = json.loads(sys.argv[1])
with np.load(config["inputs"]) as saved:
    inputs = dict(saved)
outputs, refused = {}, {}
bad = None
if config["must_fail"]:
    with np.load(config["must_fail"]) as saved:
        bad = dict(saved)


def attempt(key, run):
    try:
        run(bad)
    except Exception as error:  # any runtime's error: the request was refused
        refused[key] = f"{type(error).__name__}: {str(error)[-400:]}"
    else:
        refused[key] = None


if config["saved_model"]:
    import tensorflow as tf
    loaded = tf.saved_model.load(config["saved_model"])
    missing = sorted(set(config["endpoints"]) - set(loaded.signatures))
    if missing:
        raise SystemExit(f"signatures missing: {missing}")
    serve = lambda arrays: loaded.signatures["serving_default"](
        **{k: tf.constant(v) for k, v in arrays.items()})["edited"]
    outputs["saved_model"] = serve(inputs)
    if "encode" in config["endpoints"]:
        latent = loaded.signatures["encode"](features=tf.constant(inputs["features"]))["latent"]
        extra = {k: tf.constant(v) for k, v in inputs.items() if k != "features"}
        edited = loaded.signatures["edit"](latent=latent, **extra)["edited_latent"]
        outputs["saved_model_endpoints"] = loaded.signatures["decode"](latent=edited)["features"]
    if bad is not None:
        attempt("saved_model", serve)
try:
    from ai_edge_litert.interpreter import Interpreter
    runtime = "ai_edge_litert"
except ImportError:
    import tensorflow as tf
    Interpreter = tf.lite.Interpreter
    runtime = "tf.lite.Interpreter"
for key, path in config["tflite"].items():
    runner = Interpreter(model_path=path).get_signature_runner("serving_default")
    outputs[key] = runner(**inputs)["edited"]
    if bad is not None:
        attempt(key, lambda arrays: runner(**arrays)["edited"])
np.savez(config["outputs"], **{key: np.asarray(value) for key, value in outputs.items()})
if config["saved_model_cli"]:
    # The `saved_model_cli` command's own entry point, run here to import TensorFlow once.
    from tensorflow.python.tools import saved_model_cli
    sys.argv = ["saved_model_cli", *config["saved_model_cli"]]
    try:
        saved_model_cli.main()
    except SystemExit as exit:
        if exit.code not in (0, None):
            raise
print(json.dumps({"tflite_runtime": runtime, "neuronedit_imported": "neuronedit_tf" in sys.modules,
                  "refused": refused}), flush=True)
"""


def _spec(shape, name):
    return tf.TensorSpec((None,) + tuple(shape), tf.float32, name=name)


def _edit_graph(layer, edit):
    """A fitted percentile map (the edit, or a method's ``NeuronEdit`` part such as the
    calibration) as exported: ``"lookup"`` (default), ``"search"`` (the layer's binary
    search) or ``"plain"`` (no edit: the same autoencoder without it, for benchmarks).
    A method's other layers (e.g. the support gate) are exported as fitted."""
    if not isinstance(layer, NeuronEdit):
        return layer
    if edit == "lookup":
        return lookup_edit(layer)
    if edit == "search":
        return layer
    if edit == "plain":
        return keras.layers.Identity(name="no_edit")
    raise NeuronEditError(f"edit must be 'lookup', 'search' or 'plain'; got {edit!r}.")


def write_saved_model(editor, path, edit="lookup", method=None):
    """Write the SavedModel with its four signatures to ``path`` (a new folder).

    Args:
        editor: a fitted ``NeuronEditor``.
        path: the folder to create.
        edit: how the edit is computed in the graph; see ``_edit_graph``.
        method: the graph's method, a name or an ``EditMethod`` (default: the editor's);
            ``"paper"`` on a calibrated editor drops the residual form and the
            calibration (the speed benchmark compares both graphs).
    """
    fitted = methods.get(editor.method_)
    if not fitted.uses_autoencoder:  # a data-space map: no code, only serving_default
        if edit == "plain" or not (method is None or methods.get(method) is fitted):
            raise NeuronEditError(f"The editor's method {fitted.name!r} has no autoencoder; "
                                  "it exports its own graph only.")
        shape = tuple(editor.model_.input.shape[1:])
        pieces = methods.Pieces(editor.part("preprocessing"), None, None,
                                editor.part("postprocessing"))
        parts = {part: _edit_graph(editor.part(part), edit) for part in fitted.parts}
        serving = fitted.assemble(shape, pieces, None, parts, name="neuron_editor_serving")
        archive = keras.export.ExportArchive()
        archive.track(serving)
        archive.add_endpoint(
            "serving_default", lambda features: {"edited": serving(features, training=False)},
            input_signature=[_spec(shape, "features")],
        )
        archive.write_out(os.fspath(path), verbose=False)
        return
    pieces = methods.Pieces(*(editor.part(name) for name in
                              ("preprocessing", "encoder", "decoder", "postprocessing")))
    pre, encoder, decoder, post = pieces
    edit_layer = _edit_graph(editor.part("neuron_edit"), edit)
    feature_shape = tuple(editor.model_.input.shape[1:])
    latent_shape = tuple(encoder.output.shape[1:])
    # The plain autoencoder (benchmark baseline) is the paper's graph with no edit: no parts.
    method = methods.Paper() if edit == "plain" else methods.get(method or editor.method_)
    parts = {part: _edit_graph(editor.part(part), edit) for part in method.parts}
    serving = method.assemble(feature_shape, pieces, edit_layer, parts,
                              name="neuron_editor_serving")
    archive = keras.export.ExportArchive()
    archive.track(serving)
    archive.add_endpoint(
        "serving_default", lambda features: {"edited": serving(features, training=False)},
        input_signature=[_spec(feature_shape, "features")],
    )
    archive.add_endpoint(
        "encode", lambda features: {"latent": encoder(pre(features))},
        input_signature=[_spec(feature_shape, "features")],
    )
    archive.add_endpoint(
        "edit", lambda latent: {"edited_latent": edit_layer(latent)},
        input_signature=[_spec(latent_shape, "latent")],
    )
    archive.add_endpoint(
        "decode", lambda latent: {"features": post(decoder(latent))},
        input_signature=[_spec(latent_shape, "latent")],
    )
    archive.write_out(os.fspath(path), verbose=False)


def write_tflite(saved_model, path, quantize=False):
    """Convert ``saved_model``'s ``serving_default`` to a TFLite file at ``path``.

    Only TFLite builtin ops are allowed (no Select TF ops, which need the Flex
    delegate); a graph that needs others fails here with the converter's message.
    ``quantize=True`` applies dynamic-range quantisation (int8 weights).
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(
        os.fspath(saved_model), signature_keys=["serving_default"]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    try:
        flatbuffer = converter.convert()
    except Exception as error:  # the converter raises several error types
        raise NeuronEditError(
            f"TFLite conversion with builtin ops only failed: {str(error)[-1500:]}"
        ) from None
    Path(path).write_bytes(flatbuffer)


def write_assets(editor, folder):
    """``assets/features.txt`` (feature names, one per line, input order) and
    ``assets/neuronedit.json`` (settings, shapes and signatures)."""
    assets = Path(folder) / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    feature_shape = list(editor.model_.input.shape[1:])
    columns = editor.columns_ or [f"feature_{i}" for i in range(feature_shape[-1])]
    (assets / FEATURES_FILE).write_text("".join(f"{c}\n" for c in columns))
    coded = methods.get(editor.method_).uses_autoencoder
    signatures = {
        "serving_default": {"inputs": {"features": "float32"}, "outputs": {"edited": "float32"}},
        "encode": {"inputs": {"features": "float32"}, "outputs": {"latent": "float32"}},
        "edit": {"inputs": {"latent": "float32"}, "outputs": {"edited_latent": "float32"}},
        "decode": {"inputs": {"latent": "float32"}, "outputs": {"features": "float32"}},
    }
    metadata = {
        "columns": editor.columns_,
        "feature_shape": feature_shape,
        "latent_shape": list(editor.part("encoder").output.shape[1:]) if coded else None,
        "signatures": signatures if coded else {"serving_default":
                                                signatures["serving_default"]},
        "editor": editor.get_config(),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    (assets / METADATA_FILE).write_text(json.dumps(metadata, indent=2))


def _saved_model_cli():
    """The ``saved_model_cli`` command beside this Python, else its module."""
    script = Path(sys.executable).with_name("saved_model_cli")
    if script.exists():
        return [os.fspath(script)]
    return [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


def verify_export(folder, inputs, expected, saved_model=True, tflite=(), quantized=(),
                  expected_endpoints=None, working=None, gain=None, must_fail=None,
                  endpoints=ENDPOINTS):
    """Run the exported files in a fresh process that does not import neuronedit_tf.

    Args:
        folder: the export folder.
        inputs: raw input rows, float32, shape ``(n, ...)``; or the signature's inputs by
            name, ``{"features": rows, ...}`` (a study's: also ``"batch"``, one name per row).
        expected: the Keras model's outputs for ``inputs``.
        saved_model: check the SavedModel (``tf.saved_model.load`` and
            ``saved_model_cli run``).
        tflite, quantized: TFLite file names in ``folder`` to check at
            ``TOLERANCE`` and ``QUANTIZED_TOLERANCE``.
        expected_endpoints: the Keras outputs of encode -> edit -> decode, when
            they differ from ``expected`` (the calibrated method); default ``expected``.
        working: maps raw outputs to the model's working space (the editor's
            preprocessing); default: compare raw values.
        gain: per feature (last axis), the largest slope of the graph's last
            percentile map (``output_gain``); default 1.
        must_fail: inputs (as ``inputs``) that every artifact must refuse (raise), e.g. a
            request naming a batch the study does not know.
        endpoints: the SavedModel's signatures (default all four; a data-space method
            exports ``("serving_default",)``).

    Returns:
        ``{artifact: {"max_error", "max_abs", "max_rel", "max_spread",
        "mean_spread"}}`` (see ``_difference``) for ``saved_model``,
        ``saved_model_endpoints`` (encode -> edit -> decode), ``saved_model_cli``
        and every TFLite file (keyed by file name); with ``must_fail``, each
        artifact's ``"refused"`` holds the error it raised.

    Raises:
        NeuronEditError: an artifact failed to run, differs beyond its tolerance, or
            returned numbers for a ``must_fail`` request.
    """
    folder = Path(folder).resolve()  # the check runs in another working directory
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH="")
    if not isinstance(inputs, dict):
        inputs = {"features": inputs}
    inputs = {k: (np.asarray(v, np.float32) if k == "features" else np.asarray(v))
              for k, v in inputs.items()}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        np.savez(scratch / "inputs.npz", **inputs)
        for key, value in inputs.items():
            np.save(scratch / f"{key}.npy", value)
        if must_fail is not None:
            np.savez(scratch / "must_fail.npz", **{k: np.asarray(v) for k, v in
                                                    must_fail.items()})
        config = {
            "inputs": os.fspath(scratch / "inputs.npz"),
            "outputs": os.fspath(scratch / "outputs.npz"),
            "must_fail": os.fspath(scratch / "must_fail.npz") if must_fail is not None else None,
            "saved_model": os.fspath(folder) if saved_model else None,
            "endpoints": list(endpoints),
            "tflite": {name: os.fspath(folder / name) for name in (*tflite, *quantized)},
            "saved_model_cli": [
                "run", "--dir", os.fspath(folder), "--tag_set", "serve",
                "--signature_def", "serving_default", "--inputs",
                ";".join(f"{key}={scratch / (key + '.npy')}" for key in inputs),
                "--outdir", os.fspath(scratch / "cli"),
            ] if saved_model else None,
        }
        result = subprocess.run(
            [sys.executable, "-c", _VERIFY_SCRIPT, json.dumps(config)], cwd=scratch,
            env=environment, capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise NeuronEditError(f"The exported model failed to run: {result.stderr[-2000:]}")
        status = json.loads(result.stdout.strip().splitlines()[-1])
        if status["neuronedit_imported"]:
            raise NeuronEditError("The verification process imported neuronedit_tf; it must not.")
        with np.load(scratch / "outputs.npz") as saved:
            outputs = dict(saved)
        if saved_model:
            outputs["saved_model_cli"] = np.load(scratch / "cli" / "edited.npy")
    features = inputs["features"]
    references = {"saved_model_endpoints": expected if expected_endpoints is None
                  else expected_endpoints}
    report = {key: _difference(value, references.get(key, expected), features, working,
                               None if key == "saved_model_endpoints" else gain)
              for key, value in outputs.items()}
    for key in (*tflite, *quantized):
        report[key]["runtime"] = status["tflite_runtime"]
    for key, figures in report.items():
        limit = QUANTIZED_TOLERANCE if key in quantized else TOLERANCE
        if not figures["max_error"] <= limit:
            raise NeuronEditError(
                f"The exported {key} does not match the Keras model: max_error "
                f"{figures['max_error']:.3g} > {limit}. Full report: {report}."
            )
    for key, refusal in status.get("refused", {}).items():
        if refusal is None:
            raise NeuronEditError(f"The exported {key} returned numbers for a request it must "
                                  "refuse (e.g. an unknown batch); it must fail instead.")
        report[key]["refused"] = refusal
    return report


def _difference(out, expected, inputs, working=None, gain=None):
    """How far ``out`` is from ``expected``.

    ``max_error`` (the verified figure): ``|w(out) - w(expected)| / (gain *
    max(|w(expected)|, 1))`` at its largest, ``w`` being ``working`` (default:
    identity) and ``gain`` the per-feature slope of the last map (default 1).
    Also, on the raw values: the largest absolute difference, the largest
    relative to max(|expected|, 1), and the largest and mean relative to the
    input feature's standard deviation over the sample (its spread).
    """
    if working is None:
        working = lambda values: values  # noqa: E731
    gain = np.ones((), np.float64) if gain is None else np.asarray(gain, np.float64)
    reference = np.asarray(working(np.asarray(expected, np.float32)), np.float64)
    error = (np.abs(np.asarray(working(np.asarray(out, np.float32)), np.float64) - reference)
             / (gain * np.maximum(np.abs(reference), 1.0)))
    expected = np.asarray(expected, np.float64)
    diff = np.abs(np.asarray(out, np.float64) - expected)
    spread = np.maximum(np.asarray(inputs, np.float64).reshape(-1, expected.shape[-1]).std(0),
                        1e-6)
    return {"max_error": float(error.max()),
            "max_abs": float(diff.max()),
            "max_rel": float((diff / np.maximum(np.abs(expected), 1.0)).max()),
            "max_spread": float((diff / spread).max()),
            "mean_spread": float((diff / spread).mean())}


def _is_export(path):
    """An earlier export (or an empty folder), which ``overwrite=True`` may replace."""
    if not path.is_dir():
        return False
    markers = ("saved_model.pb", TFLITE_FILE, os.path.join("assets", METADATA_FILE))
    return not any(path.iterdir()) or any((path / m).exists() for m in markers)


def _served_folder(path, name, version, overwrite):
    """Where the export goes: ``path``, or ``path/name/version`` for TF Serving."""
    path = Path(path)
    if name is None and version is None:
        if path.exists() and not overwrite:
            raise NeuronEditError(f"{path} exists; pass overwrite=True or choose another path.")
        if path.exists() and not _is_export(path):
            raise NeuronEditError(
                f"{path} exists and is not an export (no saved_model.pb, {TFLITE_FILE} or "
                f"assets/{METADATA_FILE}); it is never replaced. Choose another path."
            )
        return path, None
    name = DEFAULT_NAME if name is None else str(name)
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise NeuronEditError(f"name must be a plain folder name such as 'neuronedit'; got {name!r}.")
    model_folder = path / name
    taken = sorted(
        int(p.name) for p in model_folder.glob("*") if p.is_dir() and p.name.isdigit()
    ) if model_folder.is_dir() else []
    if version is None:
        version = (taken[-1] + 1) if taken else 1
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise NeuronEditError(f"version must be a positive integer (TF Serving's rule); got {version!r}.")
    target = model_folder / str(int(version))
    if target.exists():
        free = (taken[-1] + 1) if taken else 1
        raise NeuronEditError(
            f"Version {version} of {name!r} already exists at {target}; servers may have it "
            f"loaded, so it is never replaced. Export as a new version (next free: {free})."
        )
    return target, int(version)


def export_editor(editor, path, format="saved_model", name=None, version=None, overwrite=False,
                  verify=True, quantize=False, sample=None, edit="lookup"):
    """Export ``editor``'s graph (raw -> edited raw) to a folder; verify it.

    The folder is assembled under a temporary name beside its destination and
    renamed into place only once it is complete and verified, so a failure
    leaves nothing behind (no partial folder, and an existing export that was
    to be overwritten stays as it was).

    Args:
        editor: a fitted ``NeuronEditor``.
        path: the export folder; with ``name``/``version``, the TF Serving model
            base folder's parent (the export goes to ``path/name/version``).
        format: ``"saved_model"``, ``"tflite"`` or ``"both"``.
        name: the TF Serving model name (default ``"neuronedit"`` when only a
            version is given).
        version: a positive integer; default: one more than the highest existing
            version. An existing version is refused, whatever ``overwrite`` says.
        overwrite: replace an existing ``path`` (without name/version) if it
            holds an earlier export or is empty; other folders are never replaced.
        verify: check every file in a fresh process (see ``verify_export``).
        quantize: also write ``model_quantized.tflite`` (needs a TFLite format).
        sample: rows to verify with; default ``SAMPLE_ROWS`` rows spread like
            the training data (standard normal, then postprocessed).
        edit: ``"lookup"`` (default), ``"search"`` or ``"plain"`` (benchmarks
            only: no edit); see ``_edit_graph``.

    Returns:
        dict with ``path``, ``name``, ``version``, ``files`` and ``parity``
        (the ``verify_export`` report, or None).

    Example:
        >>> export_editor(editor, "served", format="both", name="neuronedit", version=1)  # doctest: +SKIP
        {'path': 'served/neuronedit/1', ...}
    """
    _check_format(format, quantize)
    editor._require_fitted()

    def fill(staging, scratch):
        graph = staging if format != "tflite" else scratch / "graph"
        write_saved_model(editor, graph, edit=edit)
        files, tflite, quantized = _write_formats(staging, graph, format, quantize)
        write_assets(editor, staging)
        if not verify:
            return files, None
        inputs = _typical_inputs(editor) if sample is None else _sample(editor, sample)
        chain = None
        method = methods.get(editor.method_)
        if method.uses_autoencoder and not method.serves_chain:  # the endpoints' own path
            pieces = [editor.part(n) for n in ("preprocessing", "encoder", "neuron_edit",
                                               "decoder", "postprocessing")]
            chain = inputs
            for piece in pieces:
                chain = run(piece, chain)
        pre = editor.part("preprocessing")
        report = verify_export(staging, inputs, run(editor.model_, inputs),
                               saved_model=format != "tflite", tflite=tflite,
                               quantized=quantized, expected_endpoints=chain,
                               working=lambda values: run(pre, values),
                               gain=output_gain(editor),
                               endpoints=ENDPOINTS if method.uses_autoencoder else ENDPOINTS[:1])
        return files, report

    return _publish(path, name, version, overwrite, fill)


def _check_format(format, quantize):
    if format not in FORMATS:
        raise NeuronEditError(f"format must be one of {FORMATS}; got {format!r}.")
    if quantize and format == "saved_model":
        raise NeuronEditError("quantize=True makes a TFLite file; use format='tflite' or 'both'.")


def _write_formats(staging, graph, format, quantize):
    """The TFLite files of ``format`` from the SavedModel ``graph``: ``(files, tflite,
    quantized)``, the export's file list and the TFLite files to verify."""
    files = ["saved_model.pb", "variables/", "assets/"] if format != "tflite" else []
    tflite, quantized = [], []
    if format != "saved_model":
        staging.mkdir(exist_ok=True)
        write_tflite(graph, staging / TFLITE_FILE)
        tflite.append(TFLITE_FILE)
        if quantize:
            write_tflite(graph, staging / QUANTIZED_FILE, quantize=True)
            quantized.append(QUANTIZED_FILE)
    return files + tflite + quantized, tflite, quantized


def _publish(path, name, version, overwrite, fill):
    """Assemble an export under a temporary name beside its destination (``fill(staging,
    scratch)`` writes and verifies it, returning ``(files, report)``) and rename it into
    place only once complete: a failure leaves nothing behind, and an existing export that
    was to be overwritten stays as it was."""
    target, version = _served_folder(path, name, version, overwrite)
    missing_parents = [p for p in target.parents if not p.exists()]  # deepest first
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        staging = scratch / "export"
        files, report = fill(staging, scratch)
        if target.exists():
            os.replace(target, scratch / "replaced")
            try:
                os.replace(staging, target)
            except BaseException:
                os.replace(scratch / "replaced", target)
                raise
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        for parent in missing_parents:
            if parent.exists() and not any(parent.iterdir()):
                parent.rmdir()
        raise
    shutil.rmtree(scratch, ignore_errors=True)
    return {"path": str(target), "name": target.parent.name if version else None,
            "version": version, "files": sorted(set(files)), "parity": report}


def output_gain(editor):
    """Per output feature, the largest slope of the graph's last percentile map (the
    method's ``output_map``, e.g. the calibration of ``"calibrated"``/``"gated"``; at least
    1), or ones (``"paper"``, whose decoder follows the edit).

    Example:
        >>> output_gain(editor).shape  # doctest: +SKIP
        (37,)
    """
    width = int(editor.model_.output.shape[-1])
    last_map = methods.get(editor.method_).output_map
    if last_map is None:
        return np.ones(width, np.float32)
    _, _, width, rise, low, high = (np.asarray(t, np.float64)
                                    for t in editor.part(last_map).tables())
    slopes = np.where(width > 0, np.abs(rise) / np.where(width > 0, width, 1.0), 0.0)
    steepest = np.maximum(slopes.max(axis=0), np.maximum(np.abs(low), np.abs(high)))
    return np.maximum(steepest, 1.0).astype(np.float32)


def _sample(editor, sample):
    values = np.asarray(sample, np.float32)
    expected = tuple(editor.model_.input.shape[1:])
    if values.shape[1:] != expected or len(values) == 0:
        raise NeuronEditError(
            f"sample must have shape (n, {', '.join(map(str, expected))}); got {values.shape}."
        )
    return values


def _typical_inputs(editor, n=SAMPLE_ROWS):
    """Raw inputs drawn around the training data (standard normal, then postprocessed)."""
    shape = tuple(editor.model_.input.shape[1:])
    standard = np.random.default_rng(0).normal(size=(n,) + shape).astype(np.float32)
    return run(editor.part("postprocessing"), standard)


# ------------------------------------------------------------------ studies
#: Where a study export lists its batches (one name per line, in index order).
BATCHES_FILE = "batches.txt"
#: The batch name a study's verification sends to check that the served graph refuses it.
UNKNOWN_BATCH = "not-a-batch"


def batch_table(names):
    """The served graph's ``name -> index`` table of a study's batches: a
    ``tf.lookup.StaticHashTable`` (an unknown name gives ``len(names)``), which TFLite runs
    as builtin ops (``HASHTABLE``, ``HASHTABLE_FIND``), one hash lookup per row whatever the
    number of batches (comparing each row's name with every batch's took 8 ms per 4,096
    rows with 100 batches, a seventh of the served graph's time)."""
    count = len(names)
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(list(names)),
                                            tf.range(count, dtype=tf.int64)),
        default_value=count)


def batch_index(batch, names, table=None):
    """Each row's batch name -> its index in ``names``, in TensorFlow ops that TFLite runs
    as builtins (``table``, :func:`batch_table`'s, made here if not given; a graph to export
    needs it made outside and tracked). A name not in ``names`` fails the request: in
    TensorFlow an assertion lists the unknown and the known names; TFLite drops assertions,
    so the index is ``len(names)`` there and the gather that follows fails (``gather index
    out of bounds``). Never a number for an unknown batch.

    Example:
        >>> batch_index(tf.constant(["b", "a"]), ["a", "b"]).numpy().tolist()
        [1, 0]
    """
    count = len(names)
    table = batch_table(names) if table is None else table
    batch = tf.reshape(batch, [-1])
    index = tf.cast(table.lookup(batch), tf.int32)
    check = tf.debugging.Assert(
        tf.reduce_all(index < count),
        ["Unknown batch name(s):", tf.boolean_mask(batch, index >= count),
         "the known batches are " + ", ".join(names)], summarize=20)
    with tf.control_dependencies([check]):
        index = tf.identity(index)
    return tf.gather(tf.range(count, dtype=tf.int32), index)


def write_study_saved_model(study, path, edit="lookup"):
    """Write a study's SavedModel to ``path`` (a new folder). Signatures:
    ``serving_default`` (``features`` float32 ``(None, d)``, ``batch`` string ``(None,)``
    -> ``edited``), ``encode`` (``features`` -> ``latent``), ``edit`` (``latent``,
    ``batch`` -> ``edited_latent``: the batch's latent edit) and ``decode``
    (``latent`` -> ``features``).

    Args:
        edit: ``"lookup"`` (each per-batch map frozen into stacked lookup tables,
            :func:`~neuronedit_tf.lookup.study_lookup_edit`) or ``"search"`` (the fitted
            ``StudyEdit``'s binary search).
    """
    from neuronedit_tf.lookup import study_lookup_edit

    if edit not in ("lookup", "search"):
        raise NeuronEditError(f"edit must be 'lookup' or 'search'; got {edit!r}.")
    frozen = {}

    def freeze(layer):
        if layer.name not in frozen:
            frozen[layer.name] = study_lookup_edit(layer) if edit == "lookup" else layer
        return frozen[layer.name]

    serving = study._assemble(freeze, name="study_serving")
    latent_edit = frozen["neuron_edit"]
    pre, encoder, decoder, post = study.pieces
    names = list(study.batches)
    feature_shape = study.sample_shape
    latent_shape = tuple(encoder.output.shape[1:])
    batch_spec = tf.TensorSpec((None,), tf.string, name="batch")
    table = batch_table(names)
    archive = keras.export.ExportArchive()
    archive.track(serving)
    archive.track(table)
    archive.add_endpoint(
        "serving_default",
        lambda features, batch: {"edited": serving([features, batch_index(batch, names, table)],
                                                   training=False)},
        input_signature=[_spec(feature_shape, "features"), batch_spec],
    )
    archive.add_endpoint(
        "encode", lambda features: {"latent": encoder(pre(features))},
        input_signature=[_spec(feature_shape, "features")],
    )
    archive.add_endpoint(
        "edit", lambda latent, batch: {"edited_latent": latent_edit(
            [latent, batch_index(batch, names, table)])},
        input_signature=[_spec(latent_shape, "latent"), batch_spec],
    )
    archive.add_endpoint(
        "decode", lambda latent: {"features": post(decoder(latent))},
        input_signature=[_spec(latent_shape, "latent")],
    )
    archive.write_out(os.fspath(path), verbose=False)


def write_study_assets(study, folder):
    """``assets/features.txt``, ``assets/batches.txt`` (the batch names the graph knows, in
    index order) and ``assets/neuronedit.json`` (settings, batches, reference, signatures)."""
    assets = Path(folder) / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    width = study.sample_shape[-1]
    columns = study.columns_ or [f"feature_{i}" for i in range(width)]
    (assets / FEATURES_FILE).write_text("".join(f"{c}\n" for c in columns))
    (assets / BATCHES_FILE).write_text("".join(f"{b}\n" for b in study.batches))
    metadata = {
        "kind": "study",
        "columns": study.columns_,
        "batches": list(study.batches),
        "reference": study.reference,
        "feature_shape": list(study.sample_shape),
        "latent_shape": list(study.pieces.encoder.output.shape[1:]),
        "signatures": {
            "serving_default": {"inputs": {"features": "float32", "batch": "string"},
                                "outputs": {"edited": "float32"}},
            "encode": {"inputs": {"features": "float32"}, "outputs": {"latent": "float32"}},
            "edit": {"inputs": {"latent": "float32", "batch": "string"},
                     "outputs": {"edited_latent": "float32"}},
            "decode": {"inputs": {"latent": "float32"}, "outputs": {"features": "float32"}},
        },
        "editor": study.editor.get_config(),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    (assets / METADATA_FILE).write_text(json.dumps(metadata, indent=2))


def study_output_gain(study):
    """:func:`output_gain` for a study: per feature, the steepest slope of its last
    percentile map over every batch (ones when the decoder comes last)."""
    width = study.sample_shape[-1]
    last_map = methods.get(study.method_).output_map
    if last_map is None:
        return np.ones(width, np.float32)
    tables = study.part(last_map).tables()
    widths, rises = (np.asarray(tables[k], np.float64).reshape(-1, width)
                     for k in ("widths", "rises"))
    slopes = np.where(widths > 0, np.abs(rises) / np.where(widths > 0, widths, 1.0), 0.0)
    ends = np.abs(np.concatenate([tables["low"], tables["high"]])).max(axis=0)
    return np.maximum(np.maximum(slopes.max(axis=0), ends), 1.0).astype(np.float32)


def export_study(study, path, format="both", name=None, version=None, overwrite=False,
                 verify=True, quantize=False, sample=None, edit="lookup"):
    """Export a :class:`~neuronedit_tf.study.Study` as one served graph for every batch.

    ``serving_default`` takes ``features`` (raw rows, float32) and ``batch`` (each row's
    batch name, a string tensor) and returns ``edited`` (raw); the batch's tables are
    gathered per row from tables stacked along a batch axis, so one request may mix
    batches and a study of 100 batches serves about as fast as one. A request naming a
    batch the study does not know fails (see :func:`batch_index`). Written, laid out and
    replaced as :func:`export_editor` does; ``format`` defaults to ``"both"`` (SavedModel
    and TFLite with builtin ops only). After ``study.add_batch``, export again (a new
    version) to serve the new batch.

    Verification (``verify=True``) runs in a fresh process that never imports
    ``neuronedit_tf``: every artifact on ``sample`` (default: ``SAMPLE_ROWS`` typical rows)
    with the batches taken in turn, row by row, against the Keras graph, and each must
    refuse a request that names an unknown batch.

    Returns:
        dict with ``path``, ``name``, ``version``, ``files`` and ``parity`` (the
        ``verify_export`` report, or None).

    Example:
        >>> study.export("served", name="study", version=1)  # doctest: +SKIP
        {'path': 'served/study/1', ...}
    """
    _check_format(format, quantize)

    def fill(staging, scratch):
        graph = staging if format != "tflite" else scratch / "graph"
        write_study_saved_model(study, graph, edit=edit)
        files, tflite, quantized = _write_formats(staging, graph, format, quantize)
        write_study_assets(study, staging)
        if not verify:
            return files, None
        features = _study_sample(study, sample)
        index = np.arange(len(features), dtype=np.int32) % len(study.batches)
        batch = np.array([study.batches[i].encode() for i in index], dtype=object).astype(bytes)
        expected = study._run(features, index)
        pre, encoder, decoder, post = study.pieces
        chain = run(post, run(decoder, np.asarray(study.part("neuron_edit")(
            [run(encoder, run(pre, features)), index]))))
        unknown = batch.copy()
        unknown[len(unknown) // 2] = UNKNOWN_BATCH.encode()
        report = verify_export(
            staging, {"features": features, "batch": batch}, expected,
            saved_model=format != "tflite", tflite=tflite, quantized=quantized,
            expected_endpoints=chain, working=lambda values: run(pre, values),
            gain=study_output_gain(study), must_fail={"features": features, "batch": unknown})
        return files, report

    return _publish(path, name, version, overwrite, fill)


def _study_sample(study, sample, n=SAMPLE_ROWS):
    if sample is None:
        standard = np.random.default_rng(0).normal(size=(n,) + study.sample_shape)
        return run(study.pieces.post, standard.astype(np.float32))
    values = np.asarray(sample, np.float32)
    if values.shape[1:] != study.sample_shape or len(values) == 0:
        raise NeuronEditError(f"sample must have shape (n, {study.sample_shape[-1]}); got "
                              f"{values.shape}.")
    return values
