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
inputs = np.load(config["inputs"])
outputs = {}
if config["saved_model"]:
    import tensorflow as tf
    loaded = tf.saved_model.load(config["saved_model"])
    missing = sorted(set(config["endpoints"]) - set(loaded.signatures))
    if missing:
        raise SystemExit(f"signatures missing: {missing}")
    features = tf.constant(inputs)
    outputs["saved_model"] = loaded.signatures["serving_default"](features=features)["edited"]
    if "encode" in config["endpoints"]:
        latent = loaded.signatures["encode"](features=features)["latent"]
        edited = loaded.signatures["edit"](latent=latent)["edited_latent"]
        outputs["saved_model_endpoints"] = loaded.signatures["decode"](latent=edited)["features"]
try:
    from ai_edge_litert.interpreter import Interpreter
    runtime = "ai_edge_litert"
except ImportError:
    import tensorflow as tf
    Interpreter = tf.lite.Interpreter
    runtime = "tf.lite.Interpreter"
for key, path in config["tflite"].items():
    runner = Interpreter(model_path=path).get_signature_runner("serving_default")
    outputs[key] = runner(features=inputs)["edited"]
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
print(json.dumps({"tflite_runtime": runtime, "neuronedit_imported": "neuronedit_tf" in sys.modules}),
      flush=True)
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
        pieces = methods.Pieces(editor.part("preprocessing"), None, None,
                                editor.part("postprocessing"))
        parts = {part: _edit_graph(editor.part(part), edit) for part in fitted.parts}
        serving = fitted.assemble(tuple(editor.model_.input.shape[1:]), pieces, None, parts,
                                  name="neuron_editor_serving")
        archive = keras.export.ExportArchive()
        archive.track(serving)
        archive.add_endpoint(
            "serving_default", lambda features: {"edited": serving(features, training=False)},
            input_signature=[_spec(tuple(editor.model_.input.shape[1:]), "features")],
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
                  expected_endpoints=None, working=None, gain=None, endpoints=ENDPOINTS):
    """Run the exported files in a fresh process that does not import neuronedit_tf.

    Args:
        folder: the export folder.
        inputs: raw input rows, float32, shape ``(n, ...)``.
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
        endpoints: the SavedModel's signatures (default all four; a data-space method
            exports ``("serving_default",)``).

    Returns:
        ``{artifact: {"max_error", "max_abs", "max_rel", "max_spread",
        "mean_spread"}}`` (see ``_difference``) for ``saved_model``,
        ``saved_model_endpoints`` (encode -> edit -> decode), ``saved_model_cli``
        and every TFLite file (keyed by file name).

    Raises:
        NeuronEditError: an artifact failed to run or differs beyond its tolerance.
    """
    folder = Path(folder).resolve()  # the check runs in another working directory
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH="")
    inputs = np.asarray(inputs, np.float32)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        np.save(scratch / "inputs.npy", inputs)
        config = {
            "inputs": os.fspath(scratch / "inputs.npy"),
            "outputs": os.fspath(scratch / "outputs.npz"),
            "saved_model": os.fspath(folder) if saved_model else None,
            "endpoints": list(endpoints),
            "tflite": {name: os.fspath(folder / name) for name in (*tflite, *quantized)},
            "saved_model_cli": [
                "run", "--dir", os.fspath(folder), "--tag_set", "serve",
                "--signature_def", "serving_default", "--inputs",
                f"features={scratch / 'inputs.npy'}", "--outdir", os.fspath(scratch / "cli"),
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
    references = {"saved_model_endpoints": expected if expected_endpoints is None
                  else expected_endpoints}
    report = {key: _difference(value, references.get(key, expected), inputs, working,
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
    if format not in FORMATS:
        raise NeuronEditError(f"format must be one of {FORMATS}; got {format!r}.")
    if quantize and format == "saved_model":
        raise NeuronEditError("quantize=True makes a TFLite file; use format='tflite' or 'both'.")
    editor._require_fitted()
    target, version = _served_folder(path, name, version, overwrite)
    missing_parents = [p for p in target.parents if not p.exists()]  # deepest first
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        staging = scratch / "export"
        graph = staging if format != "tflite" else scratch / "graph"
        write_saved_model(editor, graph, edit=edit)
        files = []
        if format != "tflite":
            files += ["saved_model.pb", "variables/", "assets/"]
        tflite, quantized = [], []
        if format != "saved_model":
            staging.mkdir(exist_ok=True)
            write_tflite(graph, staging / TFLITE_FILE)
            tflite.append(TFLITE_FILE)
            if quantize:
                write_tflite(graph, staging / QUANTIZED_FILE, quantize=True)
                quantized.append(QUANTIZED_FILE)
        write_assets(editor, staging)
        files += tflite + quantized
        report = None
        if verify:
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
                                   endpoints=ENDPOINTS if method.uses_autoencoder
                                   else ENDPOINTS[:1])
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
