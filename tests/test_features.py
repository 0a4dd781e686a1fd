"""Feature matching by name across S, T and X; chosen channels edited, the others passed through."""

import numpy as np
import pytest

from neuronedit_tf import NeuronEditError, NeuronEditor
from neuronedit_tf.data import load_cytof
from neuronedit_tf.data.datasets import cytof_markers

FAST = {"transform": "arcsinh", "hidden": (32, 16, 8), "seed": 0}


@pytest.fixture(scope="module")
def files():
    """The real files with all 55 channels (markers plus Time, Event_length, barcodes, ...)."""
    return {"source": load_cytof("021", 1, markers_only=False),
            "target": load_cytof("028", 1, markers_only=False),
            "sample": load_cytof("021", 2, markers_only=False)}


@pytest.fixture(scope="module")
def marker_editor(files):
    return NeuronEditor(channels=cytof_markers(), **FAST).fit(
        files["source"], files["target"], extra=files["sample"], epochs=2, verbose=0)


def test_only_chosen_channels_are_edited_and_the_rest_pass_through(marker_editor, files):
    sample = files["sample"]
    edited = marker_editor.transform(sample)
    others = [i for i, c in enumerate(sample.channels) if c not in cytof_markers()]
    markers = [i for i, c in enumerate(sample.channels) if c in cytof_markers()]
    assert edited.channels == sample.channels and edited.text == sample.text
    np.testing.assert_array_equal(edited.values[:, others], sample.values[:, others])
    assert not np.allclose(edited.values[:, markers], sample.values[:, markers])
    assert marker_editor.passthrough_ == [sample.channels[i] for i in others]


def test_reordered_channels_give_the_same_edit_in_the_input_order(marker_editor, files):
    frame = files["sample"].to_frame()
    shuffled = frame[list(np.random.default_rng(0).permutation(frame.columns))]
    expected = marker_editor.transform(frame)
    got = marker_editor.transform(shuffled)
    assert list(got.columns) == list(shuffled.columns)
    np.testing.assert_allclose(got[frame.columns].to_numpy(), expected.to_numpy(), rtol=1e-6)


def test_text_columns_outside_the_chosen_channels_pass_through(marker_editor, files):
    frame = files["sample"].to_frame().assign(sample_id="donor2")
    editor = NeuronEditor(channels=cytof_markers(), **FAST).fit(
        files["source"].to_frame().assign(sample_id="donor1"),
        files["target"].to_frame().assign(sample_id="donor1"), epochs=1, verbose=0)
    edited = editor.transform(frame)
    assert (edited["sample_id"] == "donor2").all() and list(edited.columns) == list(frame.columns)


def test_files_with_different_channels_are_one_error_listing_them(files):
    renamed = files["target"].to_frame().rename(columns={"Time": "time"})
    with pytest.raises(NeuronEditError,
                       match=r"target's columns do not match the source's: missing \['Time'\], "
                             r"extra \['time'\]"):
        NeuronEditor(channels=cytof_markers(), **FAST).fit(files["source"], renamed, epochs=1)


def test_missing_or_extra_channels_at_transform_are_listed(marker_editor, files):
    frame = files["sample"].to_frame()
    with pytest.raises(NeuronEditError, match=r"missing \['Event_length'\], extra \[\]"):
        marker_editor.transform(frame.drop(columns="Event_length"))
    with pytest.raises(NeuronEditError, match=r"missing \[\], extra \['CD999'\]"):
        marker_editor.transform(frame.assign(CD999=1.0))


def test_channels_need_names_and_must_exist(files):
    with pytest.raises(NeuronEditError, match="has no channel"):
        NeuronEditor(channels=["CD999"], **FAST).fit(files["source"], files["target"], epochs=1)
    with pytest.raises(NeuronEditError, match="no column names"):
        NeuronEditor(channels=["a"], **FAST).fit(files["source"].values, files["target"].values,
                                                 epochs=1)
    with pytest.raises(NeuronEditError, match="list of names"):
        NeuronEditor(channels="Nd142Di")


def test_channels_and_pass_through_survive_save_and_load(marker_editor, files, tmp_path):
    loaded = NeuronEditor.load(marker_editor.save(tmp_path / "editor"))
    assert loaded.channels == marker_editor.channels
    assert loaded.passthrough_ == marker_editor.passthrough_
    np.testing.assert_array_equal(loaded.transform(files["sample"]).values,
                                  marker_editor.transform(files["sample"]).values)


def test_several_extra_sets_are_used_together(files):
    editor = NeuronEditor(channels=cytof_markers(), **FAST)
    editor.fit(files["source"], files["target"],
               extra=[files["sample"], load_cytof("034", 2, markers_only=False)], epochs=1,
               verbose=0)
    assert editor.transform(files["sample"]).values.shape == (1000, 55)
