"""A study's metadata table (cytonormpy's file_name,reference,batch): reading, pooling several
anchors of a batch, and every bad table refused with the rows or files named."""

import numpy as np
import pandas as pd
import pytest

from neuronedit_tf import NeuronEditError
from neuronedit_tf.data import (FCSData, channel_names, read, read_fcs, read_metadata,
                                write, write_cytof_study)
from neuronedit_tf.data.datasets import cytof_markers, cytof_metadata
from neuronedit_tf.data.metadata import pool


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory):
    """cytonormpy's own study: six real FCS files and its metadata.csv."""
    return write_cytof_study(tmp_path_factory.mktemp("study")).parent


def table(folder, rows, name="metadata.csv", header="file_name,reference,batch"):
    path = folder / name
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


FILES = [("Gates_PTLG021_Unstim_Control_1.fcs", "ref", 1),
         ("Gates_PTLG021_Unstim_Control_2.fcs", "other", 1),
         ("Gates_PTLG028_Unstim_Control_1.fcs", "ref", 2),
         ("Gates_PTLG028_Unstim_Control_2.fcs", "other", 2)]


def test_cytonormpys_own_table_reads_as_three_batches_with_one_anchor_each(study_folder):
    study = read_metadata(study_folder / "metadata.csv")
    assert study.batches == ("1", "2", "3") and len(study.files) == 6
    for b, plate in zip(study.batches, ("021", "028", "034")):
        [anchor] = study.anchor_files(b)
        [sample] = study.sample_files(b)
        assert anchor.path == study_folder / f"Gates_PTLG{plate}_Unstim_Control_1.fcs"
        assert sample.name == f"Gates_PTLG{plate}_Unstim_Control_2.fcs" and not sample.anchor
    channels = study.check_channels()
    assert len(channels) == 55 and set(cytof_markers()) <= set(channels)
    anchors, samples = study.anchors(), study.samples()
    assert list(anchors) == ["1", "2", "3"] and list(samples) == ["1", "2", "3"]
    np.testing.assert_array_equal(anchors["2"].values,
                                  read_fcs(study.anchor_files("2")[0].path).values)
    assert [len(s) for s in samples.values()] == [1, 1, 1]
    assert "3 anchors, 3 samples" in repr(study)


def test_a_data_frame_and_extra_columns_are_fine(study_folder):
    frame = cytof_metadata().assign(sample_ID=range(6))
    study = read_metadata(frame, root=study_folder)
    assert study.batches == ("1", "2", "3") and study.source is None


def test_tab_separated_paths_in_subfolders_and_absolute_paths(study_folder, tmp_path):
    (tmp_path / "plate1").mkdir()
    (tmp_path / "plate1" / "ctrl.fcs").write_bytes((study_folder / FILES[0][0]).read_bytes())
    path = tmp_path / "metadata.tsv"
    path.write_text("file_name\treference\tbatch\nplate1/ctrl.fcs\tREF\tA\n"
                    f"{study_folder / FILES[1][0]}\tother\tA\n")
    study = read_metadata(path)
    assert [f.path for f in study.files] == [tmp_path / "plate1" / "ctrl.fcs",
                                             study_folder / FILES[1][0]]
    assert [f.anchor for f in study.files] == [True, False] and study.batches == ("A",)


def test_several_anchor_files_of_a_batch_are_pooled(study_folder):
    path = table(study_folder, FILES + [("Gates_PTLG034_Unstim_Control_1.fcs", "ref", 2)],
                 name="two_anchors.csv")
    study = read_metadata(path)
    assert len(study.anchor_files("2")) == 2
    pooled = study.anchors()["2"]
    first, second = (read_fcs(f.path) for f in study.anchor_files("2"))
    assert isinstance(pooled, FCSData) and pooled.channels == first.channels
    np.testing.assert_array_equal(pooled.values, np.concatenate([first.values, second.values]))
    assert pooled.text == first.text


def test_pooling_matches_columns_by_name():
    a = pd.DataFrame({"x": [1.0], "y": [2.0]})
    b = pd.DataFrame({"y": [4.0], "x": [3.0]})
    np.testing.assert_array_equal(pool([a, b]).to_numpy(), [[1, 2], [3, 4]])
    assert pool([a]) is a
    with pytest.raises(NeuronEditError, match=r"b lacks \['y'\], a lacks \['z'\]"):
        pool([a, pd.DataFrame({"x": [1.0], "z": [1.0]})], ["a", "b"])


@pytest.mark.parametrize("header, problem", [
    ("file_name,batch", r"no column\(s\) \['reference'\]"),
    ("file,reference,batch", r"no column\(s\) \['file_name'\]"),
])
def test_a_missing_column_is_named(study_folder, header, problem, tmp_path):
    rows = [r[:1] + r[2:] for r in FILES] if "reference" not in header else FILES
    path = table(tmp_path, rows, header=header)
    with pytest.raises(NeuronEditError, match=problem + r".*file_name .*reference .*batch"):
        read_metadata(path, root=study_folder)


def test_unknown_reference_values_are_listed_with_their_lines(study_folder, tmp_path):
    rows = [FILES[0], (FILES[1][0], "sample", 1), FILES[2], (FILES[3][0], "control", 2)]
    with pytest.raises(NeuronEditError, match=r"line 3: 'sample', line 5: 'control'"):
        read_metadata(table(tmp_path, rows), root=study_folder)


def test_a_batch_with_samples_and_no_anchor_is_refused(study_folder, tmp_path):
    rows = FILES[:2] + [FILES[3]]
    with pytest.raises(NeuronEditError, match=r"batch\(es\) \['2'\] have samples but no anchor"):
        read_metadata(table(tmp_path, rows), root=study_folder)


def test_missing_files_are_all_listed(study_folder, tmp_path):
    rows = FILES + [("nope_ctrl.fcs", "ref", 3), ("nope.fcs", "other", 3)]
    with pytest.raises(NeuronEditError, match=r"2 file\(s\) .* do not exist .*"
                                              r"\['nope_ctrl.fcs', 'nope.fcs'\]"):
        read_metadata(table(tmp_path, rows), root=study_folder)


def test_empty_cells_a_file_listed_twice_and_an_empty_table(study_folder, tmp_path):
    with pytest.raises(NeuronEditError, match=r"empty cells: line 3 \(batch\)"):
        read_metadata(table(tmp_path, [FILES[0], (FILES[1][0], "other", "")]), root=study_folder)
    with pytest.raises(NeuronEditError, match="more than once"):
        read_metadata(table(tmp_path, FILES + [(FILES[1][0], "other", 2)]), root=study_folder)
    with pytest.raises(NeuronEditError, match="lists no files"):
        read_metadata(table(tmp_path, []), root=study_folder)
    with pytest.raises(NeuronEditError, match="No such metadata table"):
        read_metadata(tmp_path / "absent.csv")


def test_files_whose_channels_differ_are_listed_with_what_each_lacks(study_folder, tmp_path):
    full = read_fcs(study_folder / FILES[1][0])
    write(tmp_path / "short.fcs", full.select([c for c in full.channels if c != "Nd142Di"]))
    renamed = full.to_frame().rename(columns={"Time": "time"})
    write(tmp_path / "renamed.csv", renamed)
    rows = [(study_folder / FILES[0][0], "ref", 1), ("short.fcs", "other", 1),
            ("renamed.csv", "other", 1)]
    study = read_metadata(table(tmp_path, rows))
    with pytest.raises(NeuronEditError) as raised:
        study.check_channels()
    message = str(raised.value)
    assert "Gates_PTLG021_Unstim_Control_1.fcs lacks ['time']" in message
    assert "short.fcs lacks ['Nd142Di', 'time']" in message
    assert "renamed.csv lacks ['Time']" in message


@pytest.mark.parametrize("suffix", [".fcs", ".csv", ".parquet", ".h5ad", ".npz", ".h5"])
def test_channel_names_come_from_the_header_in_every_format(study_folder, tmp_path, suffix):
    data = read_fcs(study_folder / FILES[0][0]).select(cytof_markers()[:4])
    path = write(tmp_path / f"cells{suffix}", data)
    assert channel_names(path) == cytof_markers()[:4]
    assert list(read(path).columns if suffix in (".csv", ".parquet", ".npz", ".h5") else
                read(path).channels if suffix == ".fcs" else read(path).var_names) == \
        cytof_markers()[:4]
    write(tmp_path / "plain.npy", data.values)
    assert channel_names(tmp_path / "plain.npy") is None
