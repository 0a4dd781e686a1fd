"""`neuronedit fit/apply/add-batch/export` of a study from cytonormpy's own metadata table and
its real CyTOF files (3 plates, donor 1 the anchor on each)."""

import shutil

import numpy as np
import pytest

from neuronedit_tf import NeuronEditor
from neuronedit_tf.cli import main
from neuronedit_tf.data import read, read_fcs, write, write_cytof_study
from neuronedit_tf.data.datasets import cytof_markers
from neuronedit_tf.study import Study

from conftest import LAYOUT

PLATES = {"1": "021", "2": "028", "3": "034"}
FAST = ["--hidden", "16,8,4", "--epochs", "2", "--seed", "0"]


def anchor(plate):
    return f"Gates_PTLG{plate}_Unstim_Control_1.fcs"


def sample(plate):
    return f"Gates_PTLG{plate}_Unstim_Control_2.fcs"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The study as a user has it: six FCS files, metadata.csv and markers.txt."""
    return write_cytof_study(tmp_path_factory.mktemp("study")).parent


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "study"
    assert main(["fit", "--metadata", str(data / "metadata.csv"), "--reference-batch", "1",
                 "--channels", f"@{data / 'markers.txt'}", "--transform", "arcsinh",
                 "--cofactor", "5", *FAST, "--model", str(folder)]) == 0
    return folder


@pytest.fixture
def own_model(model, tmp_path):
    """A copy of the fitted study to change."""
    return shutil.copytree(model, tmp_path / "own_study")


def test_fit_saves_one_study_of_every_batch_in_the_table(model):
    study = NeuronEditor.load(model)
    assert isinstance(study, Study) and study.batches == ("1", "2", "3")
    assert study.reference == "1" and study.columns_ == cytof_markers()
    assert len(study.passthrough_) == 55 - 37


def test_apply_corrects_every_file_as_its_own_batch_in_its_own_format(data, model, tmp_path,
                                                                      capsys):
    out = tmp_path / "normalized"
    assert main(["apply", "--model", str(model), "--metadata", str(data / "metadata.csv"),
                 "--out-dir", str(out)]) == 0
    printed = capsys.readouterr()
    assert "correcting files" in printed.err and printed.out.count("wrote") == 6
    assert sorted(p.name for p in out.iterdir()) == sorted(
        name(p) for p in PLATES.values() for name in (anchor, sample))
    study = NeuronEditor.load(model)
    markers = [i for i, c in enumerate(read_fcs(data / anchor("021")).channels)
               if c in cytof_markers()]
    for batch, plate in PLATES.items():
        for name in (anchor(plate), sample(plate)):
            original, corrected = read_fcs(data / name), read_fcs(out / name)
            assert corrected.channels == original.channels
            assert corrected.markers == original.markers
            changed = {k for k, v in original.text.items() if corrected.text.get(k) != v}
            assert changed <= LAYOUT | {"com"}  # every other keyword kept, with its value
            into = f"corrected batch {batch} into the reference batch 1 ("
            assert into in corrected.text["com"] and f"the study model {model}" in corrected.text["com"]
            # The same computation as the study's own transform: bit for bit.
            expected = study.transform(original, batch=batch)
            np.testing.assert_array_equal(corrected.values, expected.values)
            others = [i for i in range(len(original.channels)) if i not in markers]
            np.testing.assert_array_equal(corrected.values[:, others], original.values[:, others])
            if batch == "1":  # the reference batch passes unchanged
                np.testing.assert_array_equal(corrected.values, original.values)
            else:
                assert not np.allclose(corrected.values[:, markers], original.values[:, markers])


def test_subfolders_of_the_table_are_kept_and_other_formats_written(data, model, tmp_path):
    (tmp_path / "plate2").mkdir()
    shutil.copy(data / sample("028"), tmp_path / "plate2" / "donor2.fcs")
    shutil.copy(data / anchor("028"), tmp_path / "plate2" / "donor1.fcs")
    table = tmp_path / "metadata.csv"
    table.write_text("file_name,reference,batch\nplate2/donor1.fcs,ref,2\n"
                     "plate2/donor2.fcs,other,2\n")
    out = tmp_path / "out"
    assert main(["apply", "--model", str(model), "--metadata", str(table), "--out-dir",
                 str(out), "--out-format", "h5ad"]) == 0
    corrected = read(out / "plate2" / "donor2.h5ad")
    assert list(corrected.var_names) == read_fcs(data / sample("028")).channels
    assert "corrected batch 2" in corrected.uns["history"][-1]
    expected = NeuronEditor.load(model).transform(read_fcs(data / sample("028")), batch="2")
    np.testing.assert_array_equal(corrected.X, expected.values)


def test_files_of_one_batch_with_batch(data, model, tmp_path):
    assert main(["apply", "--model", str(model), "--batch", "3", str(data / sample("034")),
                 "--out-dir", str(tmp_path)]) == 0
    expected = NeuronEditor.load(model).transform(read_fcs(data / sample("034")), batch="3")
    np.testing.assert_array_equal(read_fcs(tmp_path / sample("034")).values, expected.values)


def test_add_batch_then_apply_the_new_batch_and_every_old_output_stays(data, own_model,
                                                                       tmp_path, capsys):
    before = NeuronEditor.load(own_model)
    new = tmp_path / "plate4_control.fcs"
    shutil.copy(data / anchor("034"), new)
    assert main(["add-batch", "--model", str(own_model), "--batch", "4", "--anchor",
                 str(new)]) == 0
    assert "['1', '2', '3', '4']" in capsys.readouterr().out
    after = NeuronEditor.load(own_model)
    assert after.batches == ("1", "2", "3", "4")
    for batch, plate in PLATES.items():  # bit for bit: add_batch changes no other table
        cells = read_fcs(data / sample(plate))
        np.testing.assert_array_equal(after.transform(cells, batch=batch).values,
                                      before.transform(cells, batch=batch).values)
    # Plate 034's anchor as batch 4: batch 3's tables, fitted by another code path (the
    # encoder run on another chunking may round differently), so equal to float32 rounding.
    cells = read_fcs(data / sample("034"))
    np.testing.assert_allclose(after.transform(cells, batch="4").values,
                               after.transform(cells, batch="3").values, rtol=1e-5, atol=1e-4)
    assert main(["apply", "--model", str(own_model), "--batch", "4", str(data / sample("034")),
                 "--out-dir", str(tmp_path / "out")]) == 0
    assert "corrected batch 4" in read_fcs(tmp_path / "out" / sample("034")).text["com"]


def test_add_batch_refuses_an_existing_name_and_writes_elsewhere_with_out(data, own_model,
                                                                          tmp_path, capsys):
    saved = (own_model / "model.keras").read_bytes()
    code = main(["add-batch", "--model", str(own_model), "--batch", "2", "--anchor",
                 str(data / anchor("034"))])
    assert code == 1 and "already in the study" in capsys.readouterr().err
    assert (own_model / "model.keras").read_bytes() == saved
    assert main(["add-batch", "--model", str(own_model), "--batch", "5", "--anchor",
                 str(data / anchor("034")), str(data / anchor("028")), "--out",
                 str(tmp_path / "bigger")]) == 0
    assert "2 anchor files" in capsys.readouterr().out
    assert NeuronEditor.load(tmp_path / "bigger").batches == ("1", "2", "3", "5")
    assert (own_model / "model.keras").read_bytes() == saved
    assert main(["add-batch", "--model", str(own_model), "--batch", "2", "--anchor",
                 str(data / anchor("034")), "--overwrite"]) == 0
    assert NeuronEditor.load(own_model).batches == ("1", "2", "3")


def test_export_of_a_study(model, tmp_path, capsys):
    assert main(["export", "--model", str(model), "--out", str(tmp_path / "served"),
                 "--format", "saved_model"]) == 0
    printed = capsys.readouterr().out
    assert "a study of 3 batches" in printed and "saved_model: parity error" in printed
    assert (tmp_path / "served" / "assets" / "batches.txt").read_text().split() == ["1", "2", "3"]


def test_reference_mean_and_the_papers_method(data, tmp_path):
    folder = tmp_path / "mean"
    assert main(["fit", "--metadata", str(data / "metadata.csv"), "--reference-batch", "mean",
                 "--method", "paper", "--transform", "arcsinh", "--channels",
                 ",".join(cytof_markers()), "--hidden", "16,8,4", "--epochs", "1",
                 "--model", str(folder)]) == 0
    study = NeuronEditor.load(folder)
    assert study.reference == "mean" and study.method_ == "paper"


# ------------------------------------------------------------------ bad input
def test_a_reference_batch_not_in_the_table_is_refused_before_training(data, tmp_path, capsys):
    code = main(["fit", "--metadata", str(data / "metadata.csv"), "--reference-batch", "7",
                 *FAST, "--model", str(tmp_path / "m")])
    assert code == 1
    assert "--reference-batch '7' is not a batch" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_table_errors_exit_1_and_write_nothing(data, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text(f"file_name,reference,batch\n{data / anchor('021')},ref,1\n"
                   f"{data / sample('021')},other,1\n{data / sample('028')},other,2\n"
                   "missing.fcs,other,1\n")
    code = main(["fit", "--metadata", str(bad), "--reference-batch", "1", *FAST, "--model",
                 str(tmp_path / "m")])
    assert code == 1 and "batch(es) ['2'] have samples but no anchor" in capsys.readouterr().err
    bad.write_text(f"file_name,reference,batch\n{data / anchor('021')},ref,1\n"
                   "missing.fcs,other,1\n")
    code = main(["fit", "--metadata", str(bad), "--reference-batch", "1", *FAST, "--model",
                 str(tmp_path / "m")])
    assert code == 1 and "['missing.fcs']" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_files_whose_channels_differ_are_listed_and_nothing_is_written(data, model, tmp_path,
                                                                       capsys):
    short = read_fcs(data / sample("028"))
    write(tmp_path / "short.fcs", short.select([c for c in short.channels if c != "Time"]))
    table = tmp_path / "metadata.csv"
    table.write_text(f"file_name,reference,batch\n{data / anchor('021')},ref,1\n"
                     f"{data / sample('021')},other,1\nshort.fcs,other,1\n")
    code = main(["fit", "--metadata", str(table), "--reference-batch", "1", *FAST, "--model",
                 str(tmp_path / "m")])
    assert code == 1 and "short.fcs lacks ['Time']" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    code = main(["apply", "--model", str(model), "--metadata", str(table), "--out-dir",
                 str(tmp_path / "out")])
    assert code == 1
    assert "short.fcs: missing ['Time'], extra []" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_apply_refuses_an_unknown_batch_before_writing_anything(data, model, tmp_path, capsys):
    table = tmp_path / "metadata.csv"
    table.write_text(f"file_name,reference,batch\n{data / anchor('021')},ref,1\n"
                     f"{data / anchor('034')},ref,9\n")
    code = main(["apply", "--model", str(model), "--metadata", str(table), "--out-dir",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and "batch(es) ['9'] are not in the study" in err
    assert "neuronedit add-batch --model" in err and not (tmp_path / "out").exists()
    code = main(["apply", "--model", str(model), str(data / sample("021")), "--out-dir",
                 str(tmp_path / "out")])
    assert code == 1 and "--batch NAME" in capsys.readouterr().err


def test_a_pair_editor_has_no_batches(data, tmp_path, capsys):
    pair = tmp_path / "pair"
    assert main(["fit", "--source", str(data / anchor("021")), "--target",
                 str(data / anchor("028")), *FAST, "--model", str(pair)]) == 0
    code = main(["apply", "--model", str(pair), "--metadata", str(data / "metadata.csv"),
                 "--out-dir", str(tmp_path / "out")])
    assert code == 1 and "not a study" in capsys.readouterr().err
    code = main(["add-batch", "--model", str(pair), "--batch", "4", "--anchor",
                 str(data / anchor("034"))])
    assert code == 1 and "not a study" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["fit", "--metadata", "m.csv", "--model", "s"], "needs --reference-batch"),
    (["fit", "--metadata", "m.csv", "--reference-batch", "1", "--source", "a.fcs", "--model",
      "s"], "drop --source"),
    (["fit", "--source", "a.fcs", "--target", "b.fcs", "--reference-batch", "1", "--model",
      "s"], "--reference-batch goes with --metadata"),
    (["apply", "--model", "s", "--metadata", "m.csv", "a.fcs", "--out-dir", "o"], "not both"),
    (["apply", "--model", "s", "--metadata", "m.csv", "--batch", "1", "--out-dir", "o"],
     "drop --batch"),
    (["add-batch", "--model", "s", "--batch", "4"], "--anchor"),
])
def test_usage_errors_exit_2_with_the_reason(argv, message, capsys):
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2 and message in capsys.readouterr().err
