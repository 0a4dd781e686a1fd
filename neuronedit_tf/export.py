"""Export a fitted editor as one graph (raw -> edited raw) and verify it outside this package.

The SavedModel is written with ``keras.export.ExportArchive`` and has the
endpoints ``serving_default`` (raw -> edited raw), ``encode`` (raw -> latent),
``edit`` (latent -> edited latent) and ``decode`` (latent -> raw).
Verification loads it with ``tf.saved_model.load`` in a fresh Python process
that never imports ``neuronedit_tf`` and compares its output to the Keras model.
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

from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.models import run

FORMATS = ("saved_model",)
#: float32 parity tolerance between the Keras model and the exported graph.
TOLERANCE = 1e-4

_VERIFY_SCRIPT = r"""
import sys, json, numpy as np, tensorflow as tf
assert "neuronedit_tf" not in sys.modules
path, sample_file = sys.argv[1], sys.argv[2]
sample = np.load(sample_file)
loaded = tf.saved_model.load(path)
serve = loaded.signatures["serving_default"]
outputs = serve(tf.constant(sample["inputs"]))
(out,) = outputs.values()
diff = np.abs(out.numpy() - sample["expected"])
scale = np.maximum(np.abs(sample["expected"]), 1.0)
print(json.dumps({"max_abs": float(diff.max()), "max_rel": float((diff / scale).max()),
                  "neuronedit_imported": "neuronedit_tf" in sys.modules}))
"""


def _spec(shape, name):
    return tf.TensorSpec((None,) + tuple(shape), tf.float32, name=name)


def write_saved_model(editor, path):
    """Write the SavedModel with its four endpoints to ``path`` (a new folder)."""
    model = editor.model
    pre, encoder = editor.part("preprocessing"), editor.part("encoder")
    edit, decoder, post = editor.part("neuron_edit"), editor.part("decoder"), editor.part(
        "postprocessing"
    )
    feature_shape = tuple(model.input.shape[1:])
    latent_shape = tuple(encoder.output.shape[1:])
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default", lambda features: model(features, training=False),
        input_signature=[_spec(feature_shape, "features")],
    )
    archive.add_endpoint(
        "encode", lambda features: encoder(pre(features)),
        input_signature=[_spec(feature_shape, "features")],
    )
    archive.add_endpoint("edit", lambda latent: edit(latent),
                         input_signature=[_spec(latent_shape, "latent")])
    archive.add_endpoint("decode", lambda latent: post(decoder(latent)),
                         input_signature=[_spec(latent_shape, "latent")])
    archive.write_out(os.fspath(path), verbose=False)
    assets = Path(path) / "assets"
    assets.mkdir(exist_ok=True)
    (assets / "neuronedit.json").write_text(
        json.dumps({"columns": editor.columns, **editor.get_config()}, indent=2)
    )


def verify_saved_model(path, inputs, expected):
    """Run the SavedModel in a fresh process that does not import neuronedit_tf.

    Returns ``{"max_abs": ..., "max_rel": ...}``; raises if the outputs differ
    by more than ``TOLERANCE`` (relative to max(|expected|, 1)).
    """
    with tempfile.TemporaryDirectory() as scratch:
        sample_file = os.path.join(scratch, "sample.npz")
        np.savez(sample_file, inputs=inputs.astype(np.float32), expected=expected)
        environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH="")
        result = subprocess.run(
            [sys.executable, "-c", _VERIFY_SCRIPT, os.fspath(path), sample_file],
            capture_output=True, text=True, env=environment, cwd=scratch,
        )
    if result.returncode != 0:
        raise NeuronEditError(f"The exported model failed to run: {result.stderr[-2000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if report["neuronedit_imported"] or report["max_rel"] > TOLERANCE:
        raise NeuronEditError(f"The exported model does not match the Keras model: {report}.")
    return report


def export_editor(editor, path, format="saved_model", overwrite=False, verify=True, sample=None):
    """Export ``editor`` to ``path``; written under a temporary name, then renamed.

    Args:
        format: ``"saved_model"``.
        overwrite: replace an existing ``path``.
        verify: check the export in a fresh process (see ``verify_saved_model``).
        sample: rows to verify with; default: 256 rows drawn from the
            preprocessing layer's training statistics.

    Returns:
        The export's path and, when verified, the parity report.
    """
    if format not in FORMATS:
        raise NeuronEditError(f"format must be one of {FORMATS}; got {format!r}.")
    path = Path(path)
    if path.exists() and not overwrite:
        raise NeuronEditError(f"{path} exists; pass overwrite=True or choose another path.")
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        target = scratch / "model"
        write_saved_model(editor, target)
        report = None
        if verify:
            if sample is None:
                sample = _typical_inputs(editor)
            expected = run(editor.model, sample)
            report = verify_saved_model(target, sample, expected)
        if path.exists():
            shutil.rmtree(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"path": str(path), "parity": report}


def _typical_inputs(editor, n=256):
    """Raw inputs drawn around the training data (standard normal, then postprocessed)."""
    shape = tuple(editor.model.input.shape[1:])
    standard = np.random.default_rng(0).normal(size=(n,) + shape).astype(np.float32)
    return run(editor.part("postprocessing"), standard)
