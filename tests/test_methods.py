"""NeuronEditor methods: "paper" is exactly the paper's graph; "calibrated" is calibrated;
"gated" calibrates within the spike-ins' support."""

import json

import keras
import numpy as np
import pytest

from neuronedit_tf import NeuronEditError, NeuronEditor, metrics, models

from conftest import arcsinh

SMALL = dict(transform="arcsinh", cofactor=5.0, hidden=(64, 32, 16), seed=0)


def halves(n, seed=0):
    order = np.random.default_rng(seed).permutation(n)
    return order[: n // 2], order[n // 2 :]


@pytest.fixture(scope="module")
def spike_in_halves(cytof):
    """Half of the spike-in cells to fit on, the other half held out (cells never seen)."""
    fit_s, held_s = halves(len(cytof["source"].values), seed=1)
    fit_t, held_t = halves(len(cytof["target"].values), seed=2)
    source, target = cytof["source"].values, cytof["target"].values
    return {"source": source[fit_s], "target": target[fit_t],
            "held_source": source[held_s], "held_target": target[held_t]}


@pytest.fixture(scope="module")
def editors(spike_in_halves):
    """Both methods fitted the same way (same seed, data and epochs)."""
    data = spike_in_halves
    fitted = {}
    for method in ("paper", "calibrated", "gated"):
        editor = NeuronEditor(method=method, **SMALL)
        fitted[method] = editor.fit(data["source"], data["target"], extra=data["held_source"],
                                    epochs=8, verbose=0, deterministic=True)
    return fitted


def test_paper_method_is_decoder_of_edited_encoding(editors, spike_in_halves):
    editor = editors["paper"]
    x = spike_in_halves["held_source"]
    parts = [editor.part(n) for n in ("preprocessing", "encoder", "neuron_edit", "decoder",
                                      "postprocessing")]
    expected = x
    for part in parts:
        expected = models.run(part, expected)
    np.testing.assert_allclose(editor.transform(x), expected, rtol=1e-5, atol=1e-4)
    assert [layer.name for layer in editor.model_.layers[1:]] == [
        "preprocessing", "encoder", "neuron_edit", "decoder", "postprocessing"]


def test_paper_edit_tables_are_percentiles_of_encoded_spike_ins(editors, spike_in_halves):
    editor = editors["paper"]
    encode = lambda raw: models.run(editor.part("encoder"),  # noqa: E731
                                    models.run(editor.part("preprocessing"), raw))
    edit = editor.part("neuron_edit")
    for table, raw in ((edit.source_q, "source"), (edit.target_q, "target")):
        expected = np.percentile(encode(spike_in_halves[raw]), edit.quantiles, axis=0)
        np.testing.assert_allclose(table.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_calibrated_edit_matches_each_marker_of_the_fitted_target(editors, spike_in_halves):
    data = spike_in_halves
    target = arcsinh(data["target"])
    calibrated = arcsinh(editors["calibrated"].transform(data["source"]))
    paper = arcsinh(editors["paper"].transform(data["source"]))
    # Calibration maps each marker's percentiles of R(S) onto T's: only interpolation is left.
    assert metrics.mean_emd(calibrated, target) < 0.01 < metrics.mean_emd(paper, target)


def test_calibrated_edit_generalises_to_held_out_spike_in_cells(editors, spike_in_halves):
    data = spike_in_halves
    held_target = arcsinh(data["held_target"])
    score = {name: metrics.mean_emd(arcsinh(editor.transform(data["held_source"])), held_target)
             for name, editor in editors.items()}
    uncorrected = metrics.mean_emd(arcsinh(data["held_source"]), held_target)
    floor = metrics.mean_emd(arcsinh(data["target"]), held_target)  # two samples of T
    assert score["calibrated"] < min(score["paper"], uncorrected)
    assert score["calibrated"] < 1.6 * floor


def test_calibrated_is_the_identity_when_source_equals_target(cytof):
    source = cytof["source"].values
    editor = NeuronEditor(method="calibrated", **SMALL).fit(source, source, epochs=1, verbose=0)
    sample = cytof["sample"].values
    np.testing.assert_allclose(arcsinh(editor.transform(sample)), arcsinh(sample), atol=2e-3)


def test_method_survives_save_and_load(editors, spike_in_halves, tmp_path):
    x = spike_in_halves["held_source"]
    editor = editors["calibrated"]
    loaded = NeuronEditor.load(editor.save(tmp_path / "editor"))
    assert loaded.method == "calibrated" and loaded.get_config() == editor.get_config()
    np.testing.assert_allclose(loaded.transform(x), editor.transform(x), rtol=1e-5, atol=1e-4)


def test_editor_saved_without_a_method_loads_as_paper(editors, tmp_path):
    path = editors["paper"].save(tmp_path / "old")
    state = json.loads((path / "neuronedit.json").read_text())
    del state["config"]["method"]
    (path / "neuronedit.json").write_text(json.dumps(state))
    assert NeuronEditor.load(path).method == "paper"


def test_default_method_is_gated_for_tables_and_paper_for_images():
    assert NeuronEditor().method is None  # stored untouched; resolved in fit
    assert NeuronEditor().get_config()["method"] == "gated"
    assert NeuronEditor(model="conv").get_config()["method"] == "paper"


def test_the_paper_keeps_its_101_knots_and_the_residual_methods_edit_quartile_shifts():
    from neuronedit_tf.methods import RESIDUAL_QUANTILES

    def knots(**arguments):
        return tuple(NeuronEditor(**arguments).get_config()["quantiles"])

    assert len(knots(method="paper")) == 101
    assert len(knots(model="conv")) == 101
    assert knots() == knots(method="calibrated")
    assert knots() == RESIDUAL_QUANTILES == (25.0, 75.0)
    assert knots(quantiles=range(0, 101, 10))[-1] == 100.0


def test_residual_methods_shift_each_neurons_quartiles(editors, spike_in_halves):
    editor = editors["gated"]
    edit = editor.part("neuron_edit")
    pre, encoder = editor.part("preprocessing"), editor.part("encoder")
    source = models.run(encoder, models.run(pre, spike_in_halves["source"]))
    target = models.run(encoder, models.run(pre, spike_in_halves["target"]))
    change = models.run(edit, source) - source
    # Beyond the quartiles every code moves by one shift per neuron and side (that quartile's
    # shift); between them the change is linear in the code.
    (s25, s75), (t25, t75) = (np.percentile(v, [25, 75], axis=0) for v in (source, target))
    below, above = source < s25, source > s75
    inside = ~(below | above)
    assert 0.4 < inside.mean() < 0.6
    np.testing.assert_allclose(np.where(below, change, 0), np.where(below, t25 - s25, 0),
                               atol=0.01)
    np.testing.assert_allclose(np.where(above, change, 0), np.where(above, t75 - s75, 0),
                               atol=0.01)
    slope = (t75 - t25) / np.where(s75 > s25, s75 - s25, 1)
    linear = t25 + slope * (source - s25) - source
    np.testing.assert_allclose(np.where(inside, change, 0), np.where(inside, linear, 0),
                               atol=0.01)
    median_shift = np.median(target, 0) - np.median(source, 0)
    assert np.abs(median_shift).max() > 0.05  # a real shift, not the identity
    # The paper's editor keeps a full percentile map: its change is not one shift per neuron.
    paper = editors["paper"].part("neuron_edit")
    paper_codes = models.run(editors["paper"].part("encoder"),
                             models.run(editors["paper"].part("preprocessing"),
                                        spike_in_halves["source"]))
    paper_change = models.run(paper, paper_codes) - paper_codes
    assert paper_change.std(0).max() > 0.05


def test_unknown_method_is_refused_with_the_choices():
    with pytest.raises(NeuronEditError, match="'paper'.*'calibrated'"):
        NeuronEditor(method="best")


def test_gated_calibrates_cells_inside_the_spike_ins_support_only(editors, spike_in_halves):
    editor = editors["gated"]
    gate = editor.part("support_gate")
    encode = lambda raw: models.run(editor.part("encoder"),  # noqa: E731
                                    models.run(editor.part("preprocessing"), raw))
    held = spike_in_halves["held_source"]
    inside = gate.weight(encode(held)).numpy()[:, 0]
    # Held-out spike-in cells are as close to the spike-ins as the spike-ins themselves.
    assert np.median(inside) == 1.0
    far = held[:50] * 20.0 + 500.0  # other cells entirely
    assert np.all(gate.weight(encode(far)).numpy() == 0.0)
    # Weight 1: exactly the calibrated output; weight 0: the residual edit without calibration.
    calibrated = editors["calibrated"].transform(held)
    both = inside == 1.0
    np.testing.assert_allclose(editor.transform(held)[both], calibrated[both], rtol=1e-4, atol=1e-3)
    residual = editor.model_.get_layer("residual_edit").output
    uncalibrated = keras.Model(editor.model_.input,
                                      editor.part("postprocessing")(residual))
    np.testing.assert_allclose(editor.transform(far), models.run(uncalibrated, far),
                               rtol=1e-4, atol=1e-3)


def test_gated_survives_save_and_load_and_exports(editors, spike_in_halves, tmp_path):
    x = spike_in_halves["held_source"]
    editor = editors["gated"]
    loaded = NeuronEditor.load(editor.save(tmp_path / "gated"))
    assert loaded.method == "gated"
    np.testing.assert_allclose(loaded.transform(x), editor.transform(x), rtol=1e-5, atol=1e-4)
    # The exported graph (lookup-table edit and calibration, the same gate) matches the editor,
    # checked in a fresh process for the SavedModel and TFLite (export's own verification).
    editor.export(tmp_path / "served", format="both")


@pytest.mark.parametrize("name", ["gated", "gated_shift"])
def test_the_methods_use_the_codes_the_fit_already_computed(editors, spike_in_halves, name):
    """fit runs the encoder over S once and hands ``E(S)`` to the method (``codes=``): the
    layers adapted from given codes equal those the method computes itself (the same
    computation, bit for bit), and other codes give another gate (so they are used)."""
    from neuronedit_tf import methods

    editor = editors["gated"]
    pieces = methods.Pieces(*(editor.part(n) for n in ("preprocessing", "encoder", "decoder",
                                                       "postprocessing")))
    source = models.run(pieces.pre, spike_in_halves["source"])
    target = models.run(pieces.pre, spike_in_halves["target"])
    codes = models.run(pieces.encoder, source)
    method, edit = methods.get(name), editor.part("neuron_edit")
    own = method.adapt(pieces, edit, source, target, seed=0)
    given = method.adapt(pieces, edit, source, target, seed=0, codes=codes)
    for part in own:
        for mine, theirs in zip(own[part].get_weights(), given[part].get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    moved = method.adapt(pieces, edit, source, target, seed=0, codes=codes + 1.0)
    assert not np.array_equal(moved["support_gate"].get_weights()[0],
                              own["support_gate"].get_weights()[0])
