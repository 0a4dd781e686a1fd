"""A study's one served graph: SavedModel and TFLite (builtin ops only), each row's batch as
a string, served in a fresh process that never imports neuronedit_tf; an unknown batch fails
the request; a batch added later is served after exporting again."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from neuronedit_tf import NeuronEditError, NeuronEditor
from neuronedit_tf.export import BATCHES_FILE, QUANTIZED_FILE, TFLITE_FILE, TOLERANCE
from neuronedit_tf.lookup import StudyLookupEdit, study_lookup_edit

from conftest import working_error
from test_study import cells, probe

#: Served in a fresh process (no neuronedit_tf): SavedModel and TFLite, one request mixing
#: batches, then the same request with one row's batch unknown.
SERVE = r"""
import json, sys
import numpy as np
import tensorflow as tf
folder, inputs, out = sys.argv[1:4]
with np.load(inputs) as saved:
    features, batch, bad = saved["features"], saved["batch"], saved["bad"]
loaded = tf.saved_model.load(folder)
serve = loaded.signatures["serving_default"]
results = {"saved_model": serve(features=tf.constant(features), batch=tf.constant(batch))["edited"].numpy()}
refused = {}
try:
    serve(features=tf.constant(features), batch=tf.constant(bad))
    refused["saved_model"] = None
except tf.errors.InvalidArgumentError as error:
    refused["saved_model"] = str(error)
runner = tf.lite.Interpreter(model_path=folder + "/model.tflite").get_signature_runner()
results["tflite"] = runner(features=features, batch=batch)["edited"]
try:
    runner(features=features, batch=bad)
    refused["tflite"] = None
except RuntimeError as error:
    refused["tflite"] = str(error)
np.savez(out, **results)
print(json.dumps({"refused": refused, "imported": "neuronedit_tf" in sys.modules}))
"""


def serve(folder, features, batch, bad, tmp_path):
    inputs, out = tmp_path / "request.npz", tmp_path / "response.npz"
    np.savez(inputs, features=features, batch=np.array(batch, bytes), bad=np.array(bad, bytes))
    environment = dict(os.environ, PYTHONPATH="", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", SERVE, str(folder), str(inputs), str(out)],
                            env=environment, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    status = json.loads(result.stdout.strip().splitlines()[-1])
    with np.load(out) as saved:
        return dict(saved), status


@pytest.fixture(scope="module")
def study():
    anchors = {b: cells(b) for b in ("1", "2", "3")}
    return NeuronEditor(transform="arcsinh", cofactor=5.0, hidden=(32, 16, 8)).fit_study(
        anchors, reference="1", epochs=3, verbose=0)


@pytest.fixture(scope="module")
def exported(study, tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    return root, study.export(root, name="study", quantize=True)


def test_the_export_is_one_verified_graph_for_every_batch(exported):
    root, report = exported
    folder = root / "study" / "1"
    assert report["path"] == str(folder) and report["version"] == 1
    for name in ("saved_model.pb", "variables", TFLITE_FILE, QUANTIZED_FILE):
        assert (folder / name).exists(), name
    assert (folder / "assets" / BATCHES_FILE).read_text().split() == ["1", "2", "3"]
    metadata = json.loads((folder / "assets" / "neuronedit.json").read_text())
    assert metadata["kind"] == "study" and metadata["reference"] == "1"
    assert metadata["signatures"]["serving_default"]["inputs"] == {"features": "float32",
                                                                   "batch": "string"}
    parity = report["parity"]
    for key in ("saved_model", "saved_model_endpoints", "saved_model_cli", TFLITE_FILE):
        assert parity[key]["max_error"] <= TOLERANCE, (key, parity[key])
    # The verification sent an unknown batch to every artifact; each refused it.
    assert "Unknown batch name(s)" in parity["saved_model"]["refused"]
    assert "gather index out of bounds" in parity[TFLITE_FILE]["refused"]
    assert "gather index out of bounds" in parity[QUANTIZED_FILE]["refused"]


def test_a_fresh_process_serves_several_batches_and_refuses_an_unknown_one(exported, study,
                                                                           tmp_path):
    folder = exported[1]["path"]
    names = ["2", "1", "3", "2", "3", "1"] * 10
    features = np.concatenate([probe(b).to_numpy()[i:i + 1] for i, b in enumerate(names)])
    expected = np.concatenate([study.transform(features[i:i + 1], batch=b)
                               for i, b in enumerate(names)])
    bad = list(names)
    bad[7] = "plate-99"
    served, status = serve(folder, features, names, bad, tmp_path)
    assert status["imported"] is False
    for key in ("saved_model", "tflite"):
        assert working_error(study, served[key], expected) <= TOLERANCE, key
    # The reference batch's rows come back exactly as sent, in every runtime.
    rows = [i for i, b in enumerate(names) if b == "1"]
    for key in ("saved_model", "tflite"):
        np.testing.assert_array_equal(served[key][rows], features[rows])
    assert "plate-99" in status["refused"]["saved_model"]
    assert "known batches are 1, 2, 3" in status["refused"]["saved_model"]
    assert "gather index out of bounds" in status["refused"]["tflite"]


def test_a_batch_added_later_is_served_after_exporting_again(exported, study, tmp_path):
    root = exported[0]
    grown = NeuronEditor.load(study.save(tmp_path / "study"))
    grown.add_batch("4", anchor=cells("4"))
    report = grown.export(root, name="study")
    assert report["version"] == 2
    names = ["4", "2", "4", "1"] * 5
    features = probe("4").to_numpy()[: len(names)]
    expected = np.concatenate([grown.transform(features[i:i + 1], batch=b)
                               for i, b in enumerate(names)])
    served, status = serve(report["path"], features, names, ["4", "5"] * 10, tmp_path)
    for key in ("saved_model", "tflite"):
        assert working_error(grown, served[key], expected) <= TOLERANCE, key
    assert status["refused"]["saved_model"] and status["refused"]["tflite"]
    # The first version still knows only its three batches.
    old, status = serve(exported[1]["path"], features[:4], ["1"] * 4, ["4"] * 4, tmp_path)
    assert status["refused"]["saved_model"] and status["refused"]["tflite"]


def test_the_paper_method_and_the_mean_reference_export_too(tmp_path):
    anchors = {b: cells(b) for b in ("1", "2", "3")}
    study = NeuronEditor(method="paper", transform="arcsinh", hidden=(32, 16, 8)).fit_study(
        anchors, reference="mean", epochs=2, verbose=0)
    # The paper's 101 knots per batch fit stacked lookup tables.
    assert isinstance(study_lookup_edit(study.part("neuron_edit")), StudyLookupEdit)
    report = study.export(tmp_path / "paper", format="tflite")
    assert report["files"] == [TFLITE_FILE]
    assert report["parity"][TFLITE_FILE]["max_error"] <= TOLERANCE


def test_a_failed_study_export_leaves_nothing(study, tmp_path):
    with pytest.raises(NeuronEditError, match="quantize=True makes a TFLite file"):
        study.export(tmp_path / "x", format="saved_model", quantize=True)
    with pytest.raises(NeuronEditError, match="sample has 2 columns; the model expects 5"):
        study.export(tmp_path / "y", sample=np.zeros((3, 2), np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_study_whose_one_level_tables_do_not_fit_serves_nested_tables(study, tmp_path,
                                                                       monkeypatch):
    # With 100 batches the calibration's one-level tables exceed STUDY_TABLE_BYTES; here a
    # budget that only the nested tables fit stands for it. The export then serves them (not
    # the binary search), verified in a fresh process in both formats.
    from neuronedit_tf import lookup

    calibration = study.part("calibration")
    budget = StudyLookupEdit.from_layer(calibration, nested=True).table_bytes
    monkeypatch.setattr(lookup, "STUDY_TABLE_BYTES", budget)
    frozen = study_lookup_edit(calibration)
    assert isinstance(frozen, StudyLookupEdit) and frozen.fine > 0
    report = study.export(tmp_path / "nested")
    for key in ("saved_model", "saved_model_endpoints", TFLITE_FILE):
        assert report["parity"][key]["max_error"] <= TOLERANCE, (key, report["parity"][key])
    assert "gather index out of bounds" in report["parity"][TFLITE_FILE]["refused"]
