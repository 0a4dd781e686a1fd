"""Studies: one autoencoder for many batches (fit_study), each corrected into the reference;
add_batch with the autoencoder frozen; save/load; bad input. The export is in
tests/test_study_export.py."""

import json

import numpy as np
import pandas as pd
import pytest

from neuronedit_tf import NeuronEditError, NeuronEditor, methods, metrics
from neuronedit_tf.layers import NeuronEdit, StudyEdit
from neuronedit_tf.methods.base import EditMethod
from neuronedit_tf.methods.paper import decoded_edit
from neuronedit_tf.study import Study

from conftest import arcsinh

COLUMNS = ["CD3", "CD4", "CD8", "CD19", "CD45"]
#: Each batch's shift on the arcsinh scale, per marker (batch "1" is the reference frame).
SHIFTS = {"1": [0.0, 0.0, 0.0, 0.0, 0.0], "2": [0.8, 0.0, -0.5, 0.0, 0.3],
          "3": [-0.6, 0.4, 0.0, 0.5, 0.0], "4": [0.5, -0.5, 0.3, 0.0, 0.0]}
FAST = dict(epochs=3, verbose=0)


def cells(batch, n=300, seed=0, donor=0.0, same_draw=False):
    """CyTOF-like counts of one donor on one plate: arcsinh-scale values shifted per plate
    (``same_draw``: the same cells on every plate, only the plate's shift differs)."""
    rng = np.random.default_rng(seed + (0 if same_draw else 17 * int(batch)))
    scale = rng.normal(2.0 + donor, 1.0, size=(n, len(COLUMNS))) + SHIFTS[batch]
    return pd.DataFrame(np.abs(np.sinh(scale) * 5.0).astype(np.float32), columns=COLUMNS)


def editor(method=None):
    return NeuronEditor(method=method, transform="arcsinh", cofactor=5.0, hidden=(32, 16, 8))


@pytest.fixture(scope="module")
def anchors():
    return {b: cells(b) for b in ("1", "2", "3")}


@pytest.fixture(scope="module")
def samples():
    return {b: [cells(b, n=200, seed=1, donor=0.3)] for b in ("1", "2", "3")}


@pytest.fixture(scope="module")
def study(anchors, samples):
    """The default method ("gated"), reference batch "1"."""
    return editor().fit_study(anchors, reference="1", samples=samples, **FAST)


@pytest.fixture(scope="module")
def mean_study(anchors):
    """The paper's method, reference "mean"."""
    return editor("paper").fit_study(anchors, reference="mean", **FAST)


@pytest.fixture
def copy_of(tmp_path):
    """A saved and reloaded copy of a study (to mutate without touching the fixtures)."""
    def copy(study):
        return NeuronEditor.load(study.save(tmp_path / f"copy{len(list(tmp_path.iterdir()))}"))
    return copy


def probe(batch):
    """Cells of another donor on that plate (what the study is for): the same cells on every
    plate, so the reference plate's probe is each plate's truth."""
    return cells(batch, n=400, seed=5, donor=0.3, same_draw=True)


def outputs(study, batches=None):
    return {b: study.transform(probe(b).to_numpy(), batch=b) for b in (batches or study.batches)}


def median_gap(a, b):
    return float(np.abs(np.median(arcsinh(a), 0) - np.median(arcsinh(b), 0)).mean())


# ------------------------------------------------------------------ the API
def test_a_study_knows_its_batches_reference_and_method(study, mean_study):
    assert isinstance(study, Study) and study.batches == ("1", "2", "3")
    assert study.reference == "1" and study.method_ == methods.DEFAULT_METHOD
    assert mean_study.reference == "mean" and mean_study.method_ == "paper"
    assert study.columns_ == COLUMNS and study.history_["loss"]
    assert isinstance(study.part("neuron_edit"), StudyEdit)
    assert study.part("calibration").n_batches == 3
    assert "Study(batches=('1', '2', '3')" in repr(study)


def test_transform_keeps_the_input_kind_index_and_column_order(study):
    frame = probe("2")
    frame.index = [f"cell{i}" for i in range(len(frame))]
    edited = study.transform(frame, batch="2")
    assert isinstance(edited, pd.DataFrame) and list(edited.index) == list(frame.index)
    reordered = study.transform(frame[COLUMNS[::-1]], batch="2")
    assert list(reordered.columns) == COLUMNS[::-1]
    # The same computation, whatever the columns' order: bit for bit.
    np.testing.assert_array_equal(reordered[COLUMNS].to_numpy(), edited.to_numpy())
    array = study.transform(frame.to_numpy(), batch="2")
    assert isinstance(array, np.ndarray) and array.shape == frame.shape


def test_one_name_per_row_mixes_batches_in_one_call(study):
    parts = [probe(b).to_numpy()[:40] for b in study.batches]
    mixed = study.transform(np.concatenate(parts), batch=np.repeat(study.batches, 40))
    for i, b in enumerate(study.batches):
        alone = study.transform(parts[i], batch=b)
        # Other rows beside them in the chunk: a float-order difference at most.
        np.testing.assert_allclose(mixed[40 * i: 40 * (i + 1)], alone, rtol=1e-5, atol=1e-4)


def test_the_reference_batch_passes_unchanged(study, anchors):
    np.testing.assert_array_equal(study.transform(anchors["1"], batch="1").to_numpy(),
                                  anchors["1"].to_numpy())
    np.testing.assert_array_equal(study.transform(probe("1"), batch="1").to_numpy(),
                                  probe("1").to_numpy())


def test_every_batch_moves_toward_the_reference(study):
    reference = probe("1").to_numpy()
    for b in ("2", "3"):
        before = median_gap(probe(b).to_numpy(), reference)
        after = median_gap(study.transform(probe(b).to_numpy(), batch=b), reference)
        assert after < 0.6 * before, (b, before, after)


def test_the_mean_reference_brings_the_batches_together(mean_study):
    raw = [probe(b).to_numpy() for b in mean_study.batches]
    edited = list(outputs(mean_study).values())
    spread = lambda sets: np.std([np.median(arcsinh(x), 0) for x in sets], axis=0).mean()  # noqa
    assert spread(edited) < 0.6 * spread(raw)
    # No batch is the reference: every batch is edited (none passes unchanged).
    assert not any(np.array_equal(e, r) for e, r in zip(edited, raw))


@pytest.mark.parametrize("method", ["paper", "calibrated", "gated"])
@pytest.mark.parametrize("reference", ["2", "mean"])
def test_every_registered_method_fits_a_study(anchors, method, reference):
    study = editor(method).fit_study(anchors, reference=reference, epochs=2, verbose=0)
    assert study.method_ == method and study.batches == ("1", "2", "3")
    for b in study.batches:
        edited = study.transform(probe(b).to_numpy(), batch=b)
        assert np.isfinite(edited).all()
        if b == reference:
            np.testing.assert_array_equal(edited, probe(b).to_numpy())
    assert (study.part("support_gate") is not None) if method == "gated" else True


def test_a_batchs_tables_are_its_own_neuron_edit(mean_study, anchors):
    """Each batch's stacked map is the NeuronEdit from its anchor's codes to the reference's
    (the mean of every anchor's knots): the same function, up to float32 rounding."""
    layer = mean_study.part("neuron_edit")
    pre, encoder = mean_study.part("preprocessing"), mean_study.part("encoder")
    codes = {b: encoder(pre(anchors[b].to_numpy())).numpy() for b in mean_study.batches}
    tables = layer.tables()
    for i, b in enumerate(mean_study.batches):
        single = NeuronEdit(layer.quantiles, layer.extrapolation)
        single.adapt(codes[b], codes[b])  # the batch's own knots...
        np.testing.assert_array_equal(single.source_q.numpy(), tables["source_q"][i])
        single.set_knots(tables["source_q"][i], tables["target_q"][i])  # ...to the mean
        rows = codes[b][:50]
        np.testing.assert_allclose(layer([rows, np.full(50, i, np.int32)]).numpy(),
                                   single(rows).numpy(), rtol=1e-6, atol=1e-6)
    mean = np.mean([tables["source_q"][i] for i in range(3)], axis=0)
    np.testing.assert_allclose(tables["target_q"][0], mean, rtol=1e-6, atol=1e-6)


def test_fit_study_leaves_the_editor_as_it_was(anchors):
    base = editor("paper")
    base.fit_study(anchors, reference="1", epochs=1, verbose=0)
    assert getattr(base, "model_", None) is None and base.get_params()["method"] == "paper"


def test_files_and_fcs_anchors_work_like_arrays(study, tmp_path):
    path = tmp_path / "plate2.csv"
    probe("2").to_csv(path, index=False)
    from_file = study.transform(path, batch="2")
    np.testing.assert_allclose(np.asarray(from_file, np.float32),
                               study.transform(probe("2").to_numpy(), batch="2"),
                               rtol=1e-6, atol=1e-5)  # CSV text round trip of the input


# ------------------------------------------------------------------ add_batch
def test_add_batch_leaves_every_existing_output_bit_identical(study, copy_of):
    grown = copy_of(study)
    before = outputs(grown)
    grown.add_batch("4", anchor=cells("4"))
    assert grown.batches == ("1", "2", "3", "4")
    after = outputs(grown, ("1", "2", "3"))
    for b in before:  # the same computation on the same rows: bit for bit
        np.testing.assert_array_equal(after[b], before[b])
    reference = probe("1").to_numpy()
    added = grown.transform(probe("4").to_numpy(), batch="4")
    assert median_gap(added, reference) < 0.6 * median_gap(probe("4").to_numpy(), reference)


@pytest.mark.parametrize("which", ["study", "mean_study"])
def test_a_batch_added_later_gets_the_tables_it_would_have_had(which, request, anchors, copy_of):
    """add_batch computes a batch's tables as fit_study does (same frozen autoencoder, same
    reference): the same anchor added under a new name serves exactly as its batch."""
    grown = copy_of(request.getfixturevalue(which))
    grown.add_batch("2 again", anchor=anchors["2"])
    x = probe("2").to_numpy()
    np.testing.assert_array_equal(grown.transform(x, batch="2 again"),
                                  grown.transform(x, batch="2"))


def test_add_batch_overwrite_replaces_only_that_batch(study, anchors, copy_of):
    grown = copy_of(study)
    before = outputs(grown)
    with pytest.raises(NeuronEditError, match="Batch '2' exists.*overwrite=True"):
        grown.add_batch("2", anchor=anchors["3"])
    grown.add_batch("2", anchor=anchors["3"], overwrite=True)
    assert grown.batches == ("1", "2", "3")
    x = probe("3").to_numpy()
    np.testing.assert_array_equal(grown.transform(x, batch="2"), grown.transform(x, batch="3"))
    for b in ("1", "3"):
        np.testing.assert_array_equal(outputs(grown, (b,))[b], before[b])
    with pytest.raises(NeuronEditError, match="'1' is the reference"):
        grown.add_batch("1", anchor=anchors["2"], overwrite=True)


def test_add_batch_refuses_a_bad_anchor_and_changes_nothing(study, copy_of):
    grown = copy_of(study)
    with pytest.raises(NeuronEditError, match=r"has 50 cells; the tables need at least 101"):
        grown.add_batch("4", anchor=cells("4", n=50))
    with pytest.raises(NeuronEditError, match=r"missing \['CD45'\]"):
        grown.add_batch("4", anchor=cells("4").drop(columns="CD45"))
    assert grown.batches == ("1", "2", "3")


# ------------------------------------------------------------------ save and load
def test_save_and_load_give_the_same_study_bit_for_bit(study, tmp_path):
    path = study.save(tmp_path / "study")
    state = json.loads((path / "neuronedit.json").read_text())
    assert state["kind"] == "study" and state["format"] == 1
    assert state["study"]["batches"] == ["1", "2", "3"] and state["study"]["reference"] == "1"
    loaded = NeuronEditor.load(path)
    assert isinstance(loaded, Study) and loaded.batches == study.batches
    assert loaded.reference == "1" and loaded.method_ == study.method_
    assert loaded.columns_ == COLUMNS and loaded.history_ == study.history_
    for b, values in outputs(study).items():
        np.testing.assert_array_equal(outputs(loaded, (b,))[b], values)
    with pytest.raises(NeuronEditError, match="exists; pass overwrite=True"):
        study.save(path)


def test_add_batch_after_loading_equals_add_batch_before_saving(study, copy_of):
    first, second = copy_of(study), copy_of(study)
    first.add_batch("4", anchor=cells("4"))
    again = copy_of(first)  # saved with the added batch
    second.add_batch("4", anchor=cells("4"))
    x = probe("4").to_numpy()
    np.testing.assert_array_equal(again.transform(x, batch="4"), second.transform(x, batch="4"))


def test_a_newer_study_format_is_refused(study, tmp_path):
    path = study.save(tmp_path / "study")
    state = json.loads((path / "neuronedit.json").read_text())
    state["format"] = 99
    (path / "neuronedit.json").write_text(json.dumps(state))
    with pytest.raises(NeuronEditError, match="study format 99"):
        NeuronEditor.load(path)


# ------------------------------------------------------------------ bad input
def test_unknown_batches_are_refused_listing_the_known_ones(study):
    with pytest.raises(NeuronEditError, match=r"batch='9' is not a batch.*\['1', '2', '3'\]"):
        study.transform(probe("2"), batch="9")
    with pytest.raises(NeuronEditError, match=r"batch \['9'\] is not in this study"):
        study.transform(probe("2").to_numpy()[:2], batch=["2", "9"])
    with pytest.raises(NeuronEditError, match="3 names for 2 rows"):
        study.transform(probe("2").to_numpy()[:2], batch=["2", "2", "2"])


def bad_inputs(anchors):
    a, b, c = anchors["1"], anchors["2"], anchors["3"]
    return {
        "sample without anchor": (dict(anchors={"1": a, "2": b}, reference="1",
                                       samples={"3": [c]}),
                                  r"samples of batch\(es\) \['3'\] have no anchor"),
        "too few cells": (dict(anchors={"1": a, "2": b.iloc[:40]}, reference="1"),
                          r"anchors\['2'\] has 40 cells; the tables need at least 101 "
                          r"\(the calibration's 101 quantiles\)"),
        "reference not a batch": (dict(anchors={"1": a, "2": b}, reference="7"),
                                  r"reference='7' is not a batch.*\['1', '2'\].*'mean'"),
        "duplicate names": (dict(anchors={"1": a, 1: b}, reference="1"),
                            r"Duplicate batch names \['1'\]"),
        "channels differ": (dict(anchors={"1": a, "2": b.drop(columns="CD3")}, reference="1",
                                 samples={"1": [c.drop(columns="CD19")]}),
                            r"anchors\['2'\] lacks \['CD3'\]; samples\['1'\]\[0\] lacks "
                            r"\['CD19'\]"),
        "no anchors": (dict(anchors={}, reference="mean"), "anchors is empty"),
        "a batch named mean": (dict(anchors={"mean": a, "2": b}, reference="mean"),
                               "A batch is named 'mean'"),
    }


BAD_INPUTS = ["sample without anchor", "too few cells", "reference not a batch", "duplicate names",
              "channels differ", "no anchors", "a batch named mean"]


def test_every_bad_input_case_is_listed(anchors):
    assert list(bad_inputs(anchors)) == BAD_INPUTS


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_study_input_is_refused_clearly_and_nothing_is_written(anchors, case, tmp_path):
    arguments, message = bad_inputs(anchors)[case]
    checkpoint = tmp_path / "checkpoint"
    with pytest.raises(NeuronEditError, match=message):
        editor().fit_study(**arguments, checkpoint_dir=checkpoint, **FAST)
    assert not checkpoint.exists()


def test_a_method_without_study_support_is_refused(anchors):
    class Halfway(EditMethod):
        name = "halfway_study_test"

        def assemble(self, sample_shape, pieces, edit, parts, name="neuron_editor"):
            features, _, _, decoded = decoded_edit(sample_shape, pieces, edit)
            import keras
            return keras.Model(features, pieces.post(decoded), name=name)

    methods.register(Halfway())
    try:
        with pytest.raises(NeuronEditError, match="cannot be fitted as a study"):
            editor("halfway_study_test").fit_study(anchors, reference="1", **FAST)
    finally:
        methods.unregister("halfway_study_test")


def test_the_gate_holds_every_anchors_edited_codes(study, anchors):
    """One gate for every batch, on the reference frame: every anchor's codes with its batch's
    edit applied (3 anchors of 300 cells: all 900 rows, in batch order), not the reference
    batch's anchor alone (decision 0005)."""
    pre, encoder = study.part("preprocessing"), study.part("encoder")
    edit = study.part("neuron_edit")
    edited = [edit([encoder(pre(anchors[b].to_numpy())), np.full(300, i, np.int32)]).numpy()
              for i, b in enumerate(study.batches)]
    reference = study.part("support_gate").reference.numpy()
    assert reference.shape == (900, edited[0].shape[1])
    # A tolerance, not bits: fit_study encoded the rows in other calls (``models.run``) than
    # these, and a CPU's float32 matrix products may round differently per call shape.
    np.testing.assert_allclose(reference, np.concatenate(edited), rtol=1e-6, atol=1e-6)
    # The reference batch's edit is the identity on its own codes (up to the interpolation's
    # float32 rounding).
    np.testing.assert_allclose(edited[0], encoder(pre(anchors["1"].to_numpy())).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_auto_fits_the_default_and_says_why(anchors, tmp_path):
    study = editor("auto").fit_study(anchors, reference="1", **FAST)
    assert study.method_ == methods.DEFAULT_METHOD
    assert study.editor.selection_["choice"] == methods.DEFAULT_METHOD
    assert "does not cross-validate" in study.editor.selection_["reason"]
    loaded = NeuronEditor.load(study.save(tmp_path / "auto"))
    assert loaded.editor.selection_ == study.editor.selection_
    assert editor("gated").fit_study(anchors, reference="1", **FAST).editor.selection_ is None


def test_images_are_refused():
    with pytest.raises(NeuronEditError, match="fit_study works on tables"):
        NeuronEditor(model="conv").fit_study({"1": np.zeros((4, 8, 8))}, reference="1")


# ------------------------------------------------------------------ real data
def test_real_cytof_plates_corrected_into_the_reference_plate():
    """cytonormpy's files as the study they are: donor 1 is the anchor on every plate,
    donor 2 the sample; donor 2 on plate 021 is the truth for donor 2 of 028 and 034."""
    from neuronedit_tf.data import load_cytof

    plates = ("021", "028", "034")
    anchors = {p: load_cytof(p, 1) for p in plates}
    donors = {p: load_cytof(p, 2) for p in plates}
    study = NeuronEditor(transform="arcsinh", cofactor=5.0, hidden=(64, 32, 16)).fit_study(
        anchors, reference="021", samples={p: [donors[p]] for p in plates}, epochs=15,
        verbose=0)
    truth = arcsinh(donors["021"].values)
    for plate in ("028", "034"):
        edited = study.transform(donors[plate], batch=plate)
        assert list(edited.channels) == list(donors[plate].channels)  # FCSData in, FCSData out
        before = metrics.mean_emd(arcsinh(donors[plate].values), truth)
        after = metrics.mean_emd(arcsinh(edited.values), truth)
        assert after < before, (plate, before, after)
    same = study.transform(donors["021"], batch="021")
    np.testing.assert_array_equal(same.values, donors["021"].values)


def test_memory_mapped_anchors_an_ensemble_and_streamed_output(tmp_path, anchors):
    maps = {}
    for b, frame in anchors.items():
        np.save(tmp_path / f"{b}.npy", frame.to_numpy())
        maps[b] = np.load(tmp_path / f"{b}.npy", mmap_mode="r")
    study = editor().set_params(members=2).fit_study(maps, reference="1", epochs=2, verbose=0)
    assert study.part("neuron_edit").tables()["source_q"].shape[-1] == 2 * 8  # both members
    x = probe("2").to_numpy()
    np.save(tmp_path / "x.npy", x)
    out = np.lib.format.open_memmap(tmp_path / "out.npy", "w+", np.float32, x.shape)
    assert study.transform(np.load(tmp_path / "x.npy", mmap_mode="r"), batch="2", out=out) is out
    np.testing.assert_array_equal(np.asarray(out), study.transform(x, batch="2"))
    with pytest.raises(NeuronEditError, match="Streamed data takes one batch name"):
        study.transform(np.load(tmp_path / "x.npy", mmap_mode="r"), batch=["2"] * len(x))


def test_fitting_the_tables_holds_one_memory_mapped_anchor_at_a_time(tmp_path, monkeypatch):
    # Memory flat in the number of batches: after training, the tables are fitted reading
    # one anchor at a time (a memory map chunk by chunk), never all anchors' standardised
    # rows together. tracemalloc sees numpy's allocations (TensorFlow's are not Python's).
    import tracemalloc

    rng = np.random.default_rng(0)
    maps = {}
    for b in range(8):
        np.save(tmp_path / f"{b}.npy", rng.normal(b * 0.1, 1.0, (20000, 6)).astype(np.float32))
        maps[str(b)] = np.load(tmp_path / f"{b}.npy", mmap_mode="r")
    peaks = []
    fit = Study.fit.__func__

    def measured(cls, *args, **kwargs):
        tracemalloc.start()
        try:
            return fit(cls, *args, **kwargs)
        finally:
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()

    monkeypatch.setattr(Study, "fit", classmethod(measured))
    study = NeuronEditor(method="paper", hidden=(16, 8, 4)).fit_study(
        maps, reference="0", epochs=1, batch_size=1024, verbose=0)
    assert study.batches == tuple(maps)
    all_anchors = sum(a.nbytes for a in maps.values())  # 3.84 MB; one anchor 0.48 MB
    assert peaks and peaks[0] < all_anchors / 2, (peaks, all_anchors)
