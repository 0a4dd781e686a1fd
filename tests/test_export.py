"""Export: SavedModel (TF Serving layout) and TFLite, verified in a fresh process."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from neuronedit_tf import NeuronEditor, NeuronEditError
from neuronedit_tf.export import (QUANTIZED_FILE, QUANTIZED_TOLERANCE, TFLITE_FILE, TOLERANCE,
                                  verify_export)
from neuronedit_tf.serving import ServedEditor, rest_request

COLUMNS = ["CD3", "CD4", "CD8", "CD19", "CD45"]


def counts(rng, n, shift=0.0):
    """Positive, CyTOF-like raw values (arcsinh-scale shift per marker)."""
    scale = np.sinh(rng.normal(2.0 + shift, 1.0, size=(n, len(COLUMNS)))) * 5.0
    return pd.DataFrame(np.abs(scale).astype(np.float32), columns=COLUMNS)


@pytest.fixture(scope="module")
def dense_editor():
    rng = np.random.default_rng(0)
    source, target, extra = counts(rng, 300), counts(rng, 300, 0.5), counts(rng, 300, -0.3)
    return NeuronEditor(hidden=(16, 8, 4), transform="arcsinh", cofactor=5.0).fit(
        source, target, extra=extra, epochs=2, verbose=0
    )


@pytest.fixture(scope="module")
def served_root(dense_editor, tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    report = dense_editor.export(root, format="both", name="neuronedit", quantize=True)
    return root, report


def test_dense_export_is_laid_out_for_tf_serving(served_root, dense_editor):
    root, report = served_root
    folder = root / "neuronedit" / "1"
    assert report["path"] == str(folder) and report["version"] == 1
    for name in ("saved_model.pb", "variables", TFLITE_FILE, QUANTIZED_FILE):
        assert (folder / name).exists(), name
    assert (folder / "assets" / "features.txt").read_text().split() == COLUMNS
    assert sorted(p.name for p in (root / "neuronedit").iterdir()) == ["1"]  # no scratch left


def test_both_formats_match_keras_in_a_fresh_process(served_root):
    parity = served_root[1]["parity"]
    for key in ("saved_model", "saved_model_endpoints", "saved_model_cli", TFLITE_FILE):
        assert parity[key]["max_error"] <= TOLERANCE, (key, parity[key])
    assert parity[QUANTIZED_FILE]["max_error"] <= QUANTIZED_TOLERANCE
    expected_runtime = "ai_edge_litert"
    try:
        import ai_edge_litert  # noqa: F401
    except ImportError:
        expected_runtime = "tf.lite.Interpreter"
    assert parity[TFLITE_FILE]["runtime"] == expected_runtime


def test_verification_catches_a_graph_that_differs(served_root, dense_editor):
    folder = Path(served_root[1]["path"])
    inputs = counts(np.random.default_rng(5), 20).to_numpy()
    wrong = dense_editor.transform(inputs) * 1.01
    with pytest.raises(NeuronEditError, match="model.tflite does not match"):
        verify_export(folder, inputs, wrong, saved_model=False, tflite=[TFLITE_FILE])


def test_saved_model_cli_show_and_run(served_root, dense_editor, tmp_path):
    folder = served_root[1]["path"]
    inputs = counts(np.random.default_rng(1), 7).to_numpy()
    np.save(tmp_path / "inputs.npy", inputs)
    cli = Path(sys.executable).with_name("saved_model_cli")
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    commands = {
        "show": [cli, "show", "--dir", folder, "--all"],
        "run": [cli, "run", "--dir", folder, "--tag_set", "serve", "--signature_def",
                "serving_default", "--inputs", f"features={tmp_path / 'inputs.npy'}",
                "--outdir", tmp_path / "out"],
    }
    processes = {key: subprocess.Popen([os.fspath(c) for c in command], env=environment,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for key, command in commands.items()}
    results = {key: (p.communicate(timeout=300), p.returncode) for key, p in processes.items()}
    (shown, errors), code = results["show"]
    assert code == 0, errors[-2000:]
    for signature in ("serving_default", "encode", "edit", "decode"):
        assert f"signature_def['{signature}']" in shown
    assert "inputs['features']" in shown and "shape: (-1, 5)" in shown
    assert "outputs['edited']" in shown
    assert results["run"][1] == 0, results["run"][0][1][-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "out" / "edited.npy"),
                               dense_editor.transform(inputs), rtol=1e-4, atol=1e-4)


def test_served_graph_refuses_wrong_width_and_dtype(served_root):
    folder = served_root[1]["path"]
    serve = tf.saved_model.load(folder).signatures["serving_default"]
    assert serve(features=tf.zeros((3, 5)))["edited"].shape == (3, 5)
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        serve(features=tf.zeros((3, 6)))
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        serve(features=tf.zeros((3, 5), tf.float64))
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    runner = Interpreter(model_path=os.path.join(folder, TFLITE_FILE)).get_signature_runner()
    with pytest.raises((ValueError, RuntimeError)):  # XNNPACK refuses to prepare the graph
        runner(features=np.zeros((3, 6), np.float32))
    with pytest.raises(NeuronEditError, match="columns"):
        ServedEditor(folder).transform(np.zeros((3, 6), np.float32))


def test_served_editor_transforms_like_the_editor_in_chunks(served_root, dense_editor, tmp_path):
    served = ServedEditor(served_root[1]["path"], batch_size=16)
    data = counts(np.random.default_rng(2), 50)
    expected = dense_editor.transform(data)
    shuffled = data[COLUMNS[::-1]]
    out = served.transform(shuffled)
    # Like NeuronEditor.transform: columns come back in the input's order.
    assert list(out.columns) == COLUMNS[::-1] and out.index.equals(data.index)
    np.testing.assert_allclose(out[COLUMNS].to_numpy(), expected.to_numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(served.transform(data.to_numpy()), expected.to_numpy(),
                               rtol=1e-5, atol=1e-5)
    data.to_csv(tmp_path / "cells.csv", index=False)
    served.transform_file(tmp_path / "cells.csv", tmp_path / "edited.csv", chunk_rows=13)
    np.testing.assert_allclose(pd.read_csv(tmp_path / "edited.csv").to_numpy(),
                               expected.to_numpy(), rtol=1e-5, atol=1e-5)


def test_rest_request_follows_the_signature(served_root):
    body = rest_request(served_root[1]["path"], np.ones((2, 5)))
    assert body == {"signature_name": "serving_default", "inputs": {"features": [[1.0] * 5] * 2}}
    with pytest.raises(NeuronEditError, match="columns"):
        rest_request(served_root[1]["path"], np.ones((2, 4)))
    frame = pd.DataFrame([[1.0, 2.0, 3.0, 4.0, 5.0]], columns=COLUMNS)[COLUMNS[::-1]]
    body = rest_request(served_root[1]["path"], frame)
    assert body["inputs"]["features"] == [[1.0, 2.0, 3.0, 4.0, 5.0]]


def test_new_versions_are_numbered_and_existing_ones_refused(served_root, dense_editor):
    root = served_root[0]
    report = dense_editor.export(root, name="neuronedit", verify=False)
    assert report["version"] == 2 and (root / "neuronedit" / "2" / "saved_model.pb").exists()
    for overwrite in (False, True):
        with pytest.raises(NeuronEditError, match="already exists.*next free: 3"):
            dense_editor.export(root, name="neuronedit", version=1, overwrite=overwrite)
    assert sorted(p.name for p in (root / "neuronedit").iterdir()) == ["1", "2"]


def test_existing_path_refused_unless_overwrite(dense_editor, tmp_path):
    path = tmp_path / "model"
    dense_editor.export(path, format="tflite", verify=False)
    assert (path / TFLITE_FILE).exists() and not (path / "saved_model.pb").exists()
    with pytest.raises(NeuronEditError, match="exists; pass overwrite=True"):
        dense_editor.export(path, verify=False)
    dense_editor.export(path, overwrite=True, verify=False)
    assert (path / "saved_model.pb").exists() and not (path / TFLITE_FILE).exists()
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("not an export")
    with pytest.raises(NeuronEditError, match="not an export"):
        dense_editor.export(precious, overwrite=True, verify=False)
    assert (precious / "thesis.txt").exists()


def test_failed_export_leaves_no_partial_folder(dense_editor, tmp_path):
    from neuronedit_tf.export import export_editor

    target = tmp_path / "new" / "served"
    with pytest.raises(NeuronEditError, match="sample must have shape"):
        export_editor(dense_editor, target, name="neuronedit", sample=np.zeros((4, 3)))
    assert list(tmp_path.iterdir()) == []
    # An export being overwritten survives a failed replacement untouched.
    existing = tmp_path / "existing"
    dense_editor.export(existing, verify=False)
    before = sorted(p.name for p in existing.rglob("*"))
    with pytest.raises(NeuronEditError):
        export_editor(dense_editor, existing, overwrite=True, sample=np.zeros((4, 3)))
    assert sorted(p.name for p in existing.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]


def test_unfitted_editor_and_bad_arguments_are_refused(dense_editor, tmp_path):
    with pytest.raises(NeuronEditError, match="not fitted"):
        NeuronEditor().export(tmp_path / "x")
    with pytest.raises(NeuronEditError, match="format must be one of"):
        dense_editor.export(tmp_path / "x", format="onnx")
    with pytest.raises(NeuronEditError, match="quantize=True makes a TFLite file"):
        dense_editor.export(tmp_path / "x", quantize=True)
    with pytest.raises(NeuronEditError, match="positive integer"):
        dense_editor.export(tmp_path / "x", name="m", version=0)
    with pytest.raises(NeuronEditError, match="plain folder name"):
        dense_editor.export(tmp_path / "x", name="a/b", version=1)
    assert list(tmp_path.iterdir()) == []


def test_cli_exports_for_tf_serving(dense_editor, tmp_path, capsys):
    from neuronedit_tf.cli import main

    dense_editor.save(tmp_path / "editor")
    command = ["export", "--model", str(tmp_path / "editor"), "--out", str(tmp_path / "served"),
               "--name", "cells", "--format", "tflite", "--no-verify"]
    assert main(command) == 0
    assert (tmp_path / "served" / "cells" / "1" / TFLITE_FILE).exists()
    assert main(command + ["--version", "1"]) == 1
    assert "already exists" in capsys.readouterr().err


@pytest.fixture(scope="module")
def demo_editor():
    """The demo's editor (real CyTOF, 37 markers, the default method), 20 epochs: it has
    calibration maps 35x steeper than their input, which once failed its own parity check."""
    from neuronedit_tf.bench.export_speed import demo_editor

    return demo_editor(epochs=20, seed=0)


def test_real_cytof_default_editor_exports_and_verifies_both_formats(demo_editor, tmp_path):
    """The default method on real cells: steep calibration maps must not fail float parity."""
    editor, sample = demo_editor
    cells = sample.values[:600]
    report = editor.export(tmp_path / "cytof", format="both", quantize=True, sample=cells)
    parity = report["parity"]
    for key in ("saved_model", "saved_model_cli", TFLITE_FILE):
        assert parity[key]["max_error"] <= TOLERANCE, (key, parity[key])
    assert parity[QUANTIZED_FILE]["max_error"] <= QUANTIZED_TOLERANCE
    served = ServedEditor(tmp_path / "cytof", batch_size=128).transform(cells)
    expected = editor.transform(cells)
    pre = editor.part("preprocessing")
    working = np.abs(np.asarray(pre(served)) - np.asarray(pre(expected)))
    assert working.max() < 1e-3 and np.median(working) < 1e-6


def test_output_gain_is_the_steepest_slope_of_the_calibration(demo_editor):
    from neuronedit_tf.export import output_gain

    gain = output_gain(demo_editor[0])
    calibration = demo_editor[0].part("calibration")
    knots = np.asarray(calibration.source_q)
    middles, halves = (knots[1:] + knots[:-1]) / 2, (knots[1:] - knots[:-1]) / 4
    halves = np.where(halves > 0, halves, 1.0).astype(np.float32)
    ahead = np.asarray(calibration((middles + halves).astype(np.float32)))
    behind = np.asarray(calibration((middles - halves).astype(np.float32)))
    slopes = np.where(knots[1:] > knots[:-1], np.abs(ahead - behind) / (2 * halves), 0.0)
    np.testing.assert_allclose(gain, np.maximum(slopes.max(axis=0), 1.0), rtol=1e-3)
    assert gain.shape == (knots.shape[1],) and (gain > 1).any()


def test_component_times_exports_and_times_every_piece(dense_editor):
    from neuronedit_tf.bench.export_speed import component_times

    rows = counts(np.random.default_rng(1), 200).values
    times = component_times(editor=dense_editor, rows=rows, batch_size=64, repeats=1)
    pieces = {"encoder", "decoder", "edit_lookup", "edit_search", "calibration_lookup",
              "gate_weight"}
    assert pieces <= set(times)
    for piece in pieces:
        figures = times[piece]
        assert figures["saved_model_ms"] > 0 and figures["tflite_ms"] > 0, piece
        assert not any(op.startswith("Flex") for op in figures["tflite_ops"]), piece
    assert times["edit_lookup"]["tflite_ops"].get("GATHER") == 1
    assert "TOPK_V2" in times["gate_weight"]["tflite_ops"]
