"""Readers and writers: a round trip per format, real FCS keywords, chunks, and one clear error per bad file."""

import h5py
import numpy as np
import pytest

from neuronedit_tf import NeuronEditError
from neuronedit_tf.data import FCSData, iter_chunks, read, read_fcs, write, write_fcs
from neuronedit_tf.data.atomic import atomic_path
from neuronedit_tf.data.datasets import cytof_fcs_bytes, facs_diva_bytes

from conftest import LAYOUT, fcs_keywords, fcsparser_parse


@pytest.fixture(scope="module")
def real_files(tmp_path_factory):
    """The real files as a lab has them: a CyTOF file (55 channels) and the FACSDiva file."""
    folder = tmp_path_factory.mktemp("real")
    paths = {"cytof": folder / "cytof.fcs", "diva": folder / "diva.fcs"}
    paths["cytof"].write_bytes(cytof_fcs_bytes("021", 2))
    paths["diva"].write_bytes(facs_diva_bytes())
    return paths


@pytest.fixture(scope="module")
def cells(real_files):
    """The real CyTOF sample, all 55 channels, as a DataFrame with a named row index."""
    frame = read_fcs(real_files["cytof"]).to_frame()
    frame.index = [f"cell{i}" for i in range(len(frame))]
    return frame


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or "part" in p.name)


# ------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("name", ["x.csv", "x.tsv", "x.parquet", "x.npz", "x.h5", "x.h5ad",
                                  "x.fcs"])
def test_round_trip_keeps_values_and_names(cells, tmp_path, name):
    path = write(tmp_path / name, cells)
    back = read(path)
    values = back.X if hasattr(back, "layers") else back.values
    names = list(back.var_names) if hasattr(back, "layers") else (
        back.channels if isinstance(back, FCSData) else list(back.columns))
    np.testing.assert_array_equal(np.asarray(values, np.float32), cells.to_numpy(np.float32))
    assert names == list(cells.columns)
    assert _leftovers(tmp_path) == []


def test_npy_round_trip_keeps_values_and_is_memory_mapped(cells, tmp_path):
    path = write(tmp_path / "x.npy", cells)
    back = read(path)
    assert isinstance(back, np.memmap) and not back.flags.writeable
    np.testing.assert_array_equal(back, cells.to_numpy(np.float32))


def test_parquet_and_h5ad_keep_row_names_and_the_note(cells, tmp_path):
    import pyarrow.parquet as pq

    write(tmp_path / "x.parquet", cells, note="edited by test")
    assert list(read(tmp_path / "x.parquet").index) == list(cells.index)
    assert pq.read_schema(tmp_path / "x.parquet").metadata[b"neuronedit"] == b"edited by test"
    write(tmp_path / "x.h5ad", cells, note="edited by test")
    adata = read(tmp_path / "x.h5ad")
    assert list(adata.obs_names) == list(cells.index)
    assert list(adata.uns["history"]) == ["edited by test"]


@pytest.mark.parametrize("source", ["cytof", "diva"])
def test_real_fcs_round_trip_keeps_every_keyword_and_adds_the_edit_note(real_files, tmp_path,
                                                                        source):
    original = read_fcs(real_files[source])
    write_fcs(tmp_path / "out.fcs", original, note="neuronedit: test edit")
    back = read_fcs(tmp_path / "out.fcs")
    np.testing.assert_array_equal(back.values, original.values)
    assert back.channels == original.channels and back.markers == original.markers
    kept = {k: v for k, v in original.text.items() if k not in LAYOUT | {"com"}}
    written = {k: v for k, v in back.text.items() if k not in LAYOUT | {"com"}}
    # flowio writes the FCS default gain $PnG = 1.0 where the original had none.
    added = {k: v for k, v in written.items() if k not in kept}
    assert all(k.endswith("g") and v == "1.0" for k, v in added.items())
    assert {k: written[k] for k in kept} == kept
    assert back.text["com"].endswith("neuronedit: test edit")
    assert back.text["com"].startswith(original.text.get("com", "neuronedit"))


def test_selecting_fcs_channels_moves_their_keywords_with_them(real_files, tmp_path):
    original = read_fcs(real_files["diva"])
    picked = original.select(["PE-A", "FSC-A"])
    write_fcs(tmp_path / "picked.fcs", picked)
    back = read_fcs(tmp_path / "picked.fcs")
    assert back.channels == ["PE-A", "FSC-A"] and back.markers == ["CD10", ""]
    pe, fsc = original.channels.index("PE-A") + 1, original.channels.index("FSC-A") + 1
    assert back.text["p1v"] == original.text[f"p{pe}v"]
    assert back.text["p1display"] == original.text[f"p{pe}display"] == "LOG"
    assert back.text["p2v"] == original.text[f"p{fsc}v"]
    np.testing.assert_array_equal(back.values[:, 0], original.values[:, pe - 1])


@pytest.mark.parametrize("source", ["cytof", "diva"])
def test_fcsparser_reads_written_files_like_the_originals(real_files, tmp_path, source):
    import hashlib

    write_fcs(tmp_path / "out.fcs", read_fcs(real_files[source]), note="neuronedit: test edit")

    original = fcsparser_parse(real_files[source])
    written = fcsparser_parse(tmp_path / "out.fcs")
    ours = read_fcs(real_files[source]).values
    assert written["sha"] == original["sha"] == hashlib.sha256(ours.tobytes()).hexdigest()
    assert written["shape"] == original["shape"] and written["columns"] == original["columns"]
    assert written["channels"] == original["channels"]  # $PnN, $PnS, $PnR of every channel
    assert fcs_keywords(written["meta"]) == fcs_keywords(original["meta"])
    assert written["meta"]["$COM"].endswith("neuronedit: test edit")


def test_fcs_from_a_table_and_h5ad_from_fcs_keep_markers(real_files, tmp_path):
    original = read_fcs(real_files["cytof"])
    write(tmp_path / "x.h5ad", original)
    adata = read(tmp_path / "x.h5ad")
    assert list(adata.var["marker"]) == original.markers
    write(tmp_path / "y.fcs", adata)
    assert read_fcs(tmp_path / "y.fcs").markers == original.markers


def test_hdf5_dataset_paths_and_other_datasets_are_kept(cells, tmp_path):
    path = tmp_path / "cells.h5"
    with h5py.File(path, "w") as handle:
        handle["meta/info"] = np.arange(3)
    write(f"{path}:/group/events", cells)
    back = read(f"{path}:/group/events")
    assert list(back.columns) == list(cells.columns)
    np.testing.assert_array_equal(back.to_numpy(), cells.to_numpy(np.float32))
    assert read(path, dataset="meta/info").tolist() == [0, 1, 2]


def test_npz_arrays_are_chosen_by_name(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.ones((3, 2)), b=np.zeros((4, 2)))
    assert read(tmp_path / "two.npz", dataset="b").shape == (4, 2)
    assert read(f"{tmp_path / 'two.npz'}:a").shape == (3, 2)
    with pytest.raises(NeuronEditError, match=r"several arrays \['a', 'b'\]"):
        read(tmp_path / "two.npz")


@pytest.mark.parametrize("name", ["x.csv", "x.parquet", "x.npy", "x.npz", "x.h5", "x.h5ad",
                                  "x.fcs"])
def test_chunks_cover_the_file_in_order(cells, tmp_path, name):
    path = write(tmp_path / name, cells)
    chunks = list(iter_chunks(path, chunk_size=300))
    assert [len(c) for c in chunks] == [300, 300, 300, 100]
    np.testing.assert_array_equal(np.concatenate([c.values for c in chunks]),
                                  cells.to_numpy(np.float32))


def test_format_is_overridable(cells, tmp_path):
    (tmp_path / "cells.dat").write_text(cells.to_csv(index=False, sep="\t"))
    assert read(tmp_path / "cells.dat", format="tsv").shape == cells.shape
    with pytest.raises(NeuronEditError, match="Cannot tell the format"):
        read(tmp_path / "cells.dat")


# --------------------------------------------------------------------------- bad files
def test_truncated_fcs_is_one_clear_error(real_files, tmp_path):
    path = tmp_path / "cut.fcs"
    path.write_bytes(real_files["cytof"].read_bytes()[:20_000])
    with pytest.raises(NeuronEditError, match="not a readable FCS file"):
        read(path)


@pytest.mark.parametrize("name, content, message", [
    ("cells.fcs", b"Time,CD3\n1,2\n", "is not a FCS file"),
    ("cells.h5ad", b"Time,CD3\n1,2\n", "is not a H5AD file"),
    ("cells.npy", b"", "is empty"),
])
def test_non_files_of_the_named_format_are_refused(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(NeuronEditError, match=message):
        read(tmp_path / name)


def test_mislabelled_fcs_is_named_for_what_it_is(real_files, tmp_path):
    path = tmp_path / "cells.csv"
    path.write_bytes(real_files["cytof"].read_bytes())
    with pytest.raises(NeuronEditError, match="looks like a FCS file.*format='fcs'"):
        read(path)
    assert read(path, format="fcs").values.shape == (1000, 55)


@pytest.mark.parametrize("name", ["x.parquet", "x.h5ad", "x.h5", "x.npy", "x.npz"])
def test_truncated_binary_files_are_one_clear_error(cells, tmp_path, name):
    path = write(tmp_path / name, cells)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(NeuronEditError, match="not a readable"):
        read(path)


def test_missing_file_and_missing_hdf5_dataset_name_what_exists(cells, tmp_path):
    with pytest.raises(NeuronEditError, match="No such file"):
        read(tmp_path / "absent.h5")
    write(tmp_path / "cells.h5:/events", cells)
    with pytest.raises(NeuronEditError, match=r"no dataset '/evts'; its datasets are \['/events'\]"):
        read(f"{tmp_path / 'cells.h5'}:/evts")


def test_duplicate_channel_names_are_refused_in_every_format(cells, tmp_path):
    import flowio

    duplicated = ["CD3", "CD4", "CD3"]
    (tmp_path / "dup.csv").write_text("CD3,CD4,CD3\n1,2,3\n")
    with open(tmp_path / "dup.fcs", "wb") as handle:
        flowio.create_fcs(handle, [1.0, 2.0, 3.0], duplicated)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table([[1.0], [2.0], [3.0]], names=duplicated), tmp_path / "dup.parquet")
    for name in ("dup.csv", "dup.fcs", "dup.parquet"):
        with pytest.raises(NeuronEditError, match=r"duplicate .*names.*\['CD3'\]"):
            read(tmp_path / name)


def test_object_arrays_are_never_unpickled(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(NeuronEditError, match="not a readable NPY file"):
        read(tmp_path / "objects.npy")


def test_failed_writes_leave_no_file(cells, tmp_path):
    with pytest.raises(NeuronEditError, match="needs channel names"):
        write(tmp_path / "x.fcs", cells.to_numpy())
    with pytest.raises(NeuronEditError, match="Could not write"):
        write(tmp_path / "x.npy", cells.assign(label="text"))
    assert list(tmp_path.iterdir()) == []


def test_interrupt_during_a_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "x.csv"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as temporary:
            with open(temporary, "w") as handle:
                handle.write("half a file")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
