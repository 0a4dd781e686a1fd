"""Apache Beam: a real pipeline on the DirectRunner applies the exported study of cytonormpy's
files (RunInference with Beam's TensorFlow model handler) and writes the same files as
`neuronedit apply`. Needs the beam extra (pip install -e ".[beam]")."""

import importlib.util
import sys

import numpy as np
import pytest

from neuronedit_tf import NeuronEditError, NeuronEditor
from neuronedit_tf.cli import main
from neuronedit_tf.data import read_fcs, write, write_cytof_study
from neuronedit_tf.export import TOLERANCE

from conftest import LAYOUT, working_error

needs_beam = pytest.mark.skipif(
    importlib.util.find_spec("apache_beam") is None,
    reason='apache-beam is not installed (the beam extra: pip install -e ".[beam]")')


def test_without_the_extra_the_error_says_how_to_install_it(monkeypatch):
    from neuronedit_tf import beam

    monkeypatch.setitem(sys.modules, "apache_beam", None)  # import apache_beam fails
    with pytest.raises(NeuronEditError, match=r'pip install "neuronedit_tf\[beam\]"'):
        beam.require_beam()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """cytonormpy's study fitted and exported by the CLI, and `neuronedit apply`'s files."""
    root = tmp_path_factory.mktemp("beam")
    table = write_cytof_study(root / "data")
    model, served, applied = root / "study", root / "served", root / "applied"
    assert main(["fit", "--metadata", str(table), "--reference-batch", "1", "--channels",
                 f"@{table.parent / 'markers.txt'}", "--transform", "arcsinh", "--hidden",
                 "16,8,4", "--epochs", "2", "--model", str(model)]) == 0
    assert main(["export", "--model", str(model), "--out", str(served), "--no-verify"]) == 0
    assert main(["apply", "--model", str(model), "--metadata", str(table), "--out-dir",
                 str(applied)]) == 0
    return {"table": table, "model": model, "served": served, "applied": applied, "root": root}


@needs_beam
def test_a_directrunner_pipeline_writes_the_files_neuronedit_apply_writes(study, tmp_path):
    from neuronedit_tf.beam import correct_files

    out = tmp_path / "beam"
    written = correct_files(study["served"], study["table"], out, chunk_rows=300)
    names = sorted(p.name for p in study["applied"].iterdir())
    assert sorted(p.name for p in out.iterdir()) == names and len(written) == 6
    fitted = NeuronEditor.load(study["model"])
    markers = None
    for name in names:
        applied, piped = read_fcs(study["applied"] / name), read_fcs(out / name)
        original = read_fcs(study["table"].parent / name)
        markers = markers or [applied.channels.index(c) for c in fitted.columns_]
        assert piped.channels == applied.channels and piped.markers == applied.markers
        changed = {k for k, v in applied.text.items() if piped.text.get(k) != v}
        assert changed <= LAYOUT | {"com"}
        batch = "1" if "021" in name else "2" if "028" in name else "3"
        assert f"corrected batch {batch} into the reference batch 1" in piped.text["com"]
        assert "on Apache Beam (RunInference)" in piped.text["com"]
        others = [i for i in range(len(piped.channels)) if i not in markers]
        np.testing.assert_array_equal(piped.values[:, others], original.values[:, others])
        assert working_error(fitted, piped.values[:, markers],
                             applied.values[:, markers]) <= TOLERANCE, name
        if batch == "1":  # the reference batch passes unchanged through the served graph
            np.testing.assert_array_equal(piped.values, original.values)


@needs_beam
def test_one_request_mixes_batches(study):
    from neuronedit_tf.beam import StudyModelHandler, serve_chunks

    fitted = NeuronEditor.load(study["model"])
    model = StudyModelHandler(str(study["served"])).load_model()
    frame = read_fcs(study["table"].parent / "Gates_PTLG028_Unstim_Control_2.fcs").to_frame()
    starts, batches = (0, 30, 60), ("2", "1", "3")
    chunks = [(frame[fitted.columns_].to_numpy()[i:i + 30], np.full(30, b, dtype=object))
              for i, b in zip(starts, batches)]  # the graph takes the edited channels
    results = serve_chunks(model, chunks, {}, "served")
    assert [r.example is c for r, c in zip(results, chunks)] == [True] * 3
    for i, b, result in zip(starts, batches, results):
        expected = fitted.transform(frame.iloc[i:i + 30], batch=b)[fitted.columns_].to_numpy()
        assert working_error(fitted, result.inference, expected) <= TOLERANCE


@needs_beam
def test_bad_input_is_refused_before_the_pipeline_runs(study, tmp_path):
    from neuronedit_tf.beam import correct_files

    data = study["table"].parent
    table = tmp_path / "metadata.csv"
    table.write_text(f"file_name,reference,batch\n{data / 'Gates_PTLG021_Unstim_Control_1.fcs'}"
                     f",ref,1\n{data / 'Gates_PTLG034_Unstim_Control_1.fcs'},ref,9\n")
    with pytest.raises(NeuronEditError, match=r"batch\(es\) \['9'\] are not in the exported"):
        correct_files(study["served"], table, tmp_path / "out")
    short = read_fcs(data / "Gates_PTLG021_Unstim_Control_2.fcs")
    write(tmp_path / "short.fcs", short.select([c for c in short.channels if c != "Nd142Di"]))
    with pytest.raises(NeuronEditError, match=r"short.fcs lacks \['Nd142Di'\]"):
        correct_files(study["served"], [tmp_path / "short.fcs"], tmp_path / "out", batch="2")
    with pytest.raises(NeuronEditError, match="not an exported SavedModel"):
        correct_files(study["model"], table, tmp_path / "out")
    assert not (tmp_path / "out").exists()
