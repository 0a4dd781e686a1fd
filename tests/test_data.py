"""Data: the pinned artifact, FCS round trips, validation of tables."""

import numpy as np
import pytest

from neuronedit_tf import NeuronEditError
from neuronedit_tf.data import datasets, read_fcs, write_fcs
from neuronedit_tf.data.formats import read_table
from neuronedit_tf.data.tables import align, as_table


def test_cytof_files_are_real_and_complete(cytof):
    assert cytof["sample"].values.shape == (1000, 37)
    assert "CD45" in cytof["sample"].markers
    assert len(datasets.cytof_markers()) == 37


def test_cached_artifact_is_checksummed_and_a_corrupt_copy_refused(tmp_path, monkeypatch):
    import shutil

    real = datasets.fetch_artifact(datasets.CYTONORMPY)
    monkeypatch.setenv("NEURONEDIT_HOME", str(tmp_path))
    copy = tmp_path / datasets.CYTONORMPY.filename
    shutil.copy(real, copy)
    assert datasets.fetch_artifact(datasets.CYTONORMPY, download=False) == copy
    copy.write_bytes(copy.read_bytes()[:1000])  # truncated: its sha256 no longer matches
    with pytest.raises(NeuronEditError, match="not in the cache"):
        datasets.fetch_artifact(datasets.CYTONORMPY, download=False)
    assert not copy.exists()


def test_fcs_write_read_round_trip_keeps_values_names_and_keywords(cytof, tmp_path):
    data = cytof["sample"]
    write_fcs(tmp_path / "x.fcs", data, note="edited")
    back = read_fcs(tmp_path / "x.fcs")
    np.testing.assert_array_equal(back.values, data.values)
    assert back.channels == data.channels and back.markers == data.markers
    assert back.text["com"].endswith("edited")
    assert back.text.get("cyt") == data.text.get("cyt")


def test_failed_write_leaves_previous_file_intact(cytof, tmp_path):
    target = tmp_path / "x.fcs"
    write_fcs(target, cytof["sample"])
    before = target.read_bytes()
    broken = cytof["sample"].select(cytof["sample"].channels)
    broken.values = broken.values[:, :3]  # shape no longer matches the channel list
    with pytest.raises(Exception):
        write_fcs(target, broken)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.fcs"]


@pytest.mark.parametrize("content", [b"", b"FCS3.0", b"not an fcs file at all" * 10])
def test_unreadable_fcs_is_one_clear_error(tmp_path, content):
    path = tmp_path / "bad.fcs"
    path.write_bytes(content)
    with pytest.raises(NeuronEditError, match="not a readable FCS file"):
        read_fcs(path)


def test_missing_file_is_named():
    with pytest.raises(NeuronEditError, match="No such"):
        read_table("/nonexistent/cells.fcs")


def test_as_table_refuses_a_file_path_and_says_how_to_read_it():
    with pytest.raises(NeuronEditError, match=r"file path .*read_table\(path\)"):
        as_table("cells.fcs", "source")


def test_align_matches_reordered_names():
    table = as_table(np.arange(6, dtype=np.float32).reshape(2, 3))
    table.columns = ["a", "b", "c"]
    aligned = align(table, ["c", "a", "b"])
    np.testing.assert_array_equal(aligned.values[0], [2, 0, 1])
