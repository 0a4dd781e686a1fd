"""The `neuronedit` command: demo, fit, apply, export on real FCS files; exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import neuronedit_tf
from neuronedit_tf.cli import _parser, main
from neuronedit_tf.data import read, read_fcs, write
from neuronedit_tf.data.datasets import cytof_markers

from conftest import fcs_keywords, fcsparser_parse


@pytest.fixture(scope="module")
def fcs_files(tmp_path_factory, cytof):
    """The real CyTOF files, all 55 channels, written out as a user would have them."""
    from neuronedit_tf.data.datasets import cytof_fcs_bytes

    folder = tmp_path_factory.mktemp("fcs")
    paths = {}
    for name, (batch, donor) in {"source": ("021", 1), "target": ("028", 1),
                                 "sample": ("021", 2)}.items():
        paths[name] = folder / f"{name}.fcs"
        paths[name].write_bytes(cytof_fcs_bytes(batch, donor))
    paths["other"] = folder / "other.fcs"
    paths["other"].write_bytes(cytof_fcs_bytes("034", 2))
    paths["markers"] = folder / "markers.txt"
    paths["markers"].write_text("\n".join(cytof_markers()) + "\n")
    return paths


@pytest.fixture(scope="module")
def marker_model(fcs_files, tmp_path_factory):
    """A model fitted by the CLI on the 37 markers of the real files (the rest pass through)."""
    model = tmp_path_factory.mktemp("models") / "markers"
    assert main(["fit", "--source", str(fcs_files["source"]), "--target",
                 str(fcs_files["target"]), "--extra", str(fcs_files["sample"]),
                 str(fcs_files["other"]), "--channels", ",".join(cytof_markers()),
                 "--transform", "arcsinh", "--cofactor", "5", "--hidden", "32,16,8",
                 "--epochs", "2", "--seed", "1", "--model", str(model)]) == 0
    return model


def test_fit_then_apply_edits_markers_and_passes_other_channels_through(fcs_files, marker_model,
                                                                          tmp_path, capsys):
    model = marker_model
    assert main(["apply", "--model", str(model), str(fcs_files["sample"]),
                 "--out-dir", str(tmp_path / "edited")]) == 0
    original = read_fcs(fcs_files["sample"])
    edited = read_fcs(tmp_path / "edited" / "sample.fcs")
    assert edited.channels == original.channels and edited.markers == original.markers
    untouched = [i for i, c in enumerate(original.channels) if c not in cytof_markers()]
    np.testing.assert_array_equal(edited.values[:, untouched], original.values[:, untouched])
    assert not np.allclose(edited.values, original.values)
    assert "neuronedit" in edited.text["com"]
    assert main(["export", "--model", str(model), "--out", str(tmp_path / "served"),
                 "--sample", str(fcs_files["sample"])]) == 0
    assert (tmp_path / "served" / "saved_model.pb").exists()
    assert "saved_model: parity error" in capsys.readouterr().out


def test_csv_round_trip_through_fit_and_apply_with_logicle(cytof, tmp_path):
    for name in ("source", "target", "sample"):
        cytof[name].to_frame().to_csv(tmp_path / f"{name}.csv", index=False)
    model = tmp_path / "model"
    assert main(["fit", "--source", str(tmp_path / "source.csv"), "--target",
                 str(tmp_path / "target.csv"), "--model", str(model), "--epochs", "1",
                 "--hidden", "32,16,8", "--transform", "logicle", "--logicle",
                 "t=20000,w=0.5"]) == 0
    assert main(["apply", "--model", str(model), str(tmp_path / "sample.csv"),
                 "--out-dir", str(tmp_path / "out")]) == 0
    import pandas as pd

    from neuronedit_tf import NeuronEditor

    edited = pd.read_csv(tmp_path / "out" / "sample.csv")
    assert list(edited.columns) == cytof["sample"].channels and len(edited) == 1000
    assert NeuronEditor.load(model).logicle["t"] == 20000.0


def test_data_errors_exit_1_with_a_message_and_no_output(tmp_path, capsys):
    bad = tmp_path / "truncated.fcs"
    bad.write_bytes(b"FCS3.0    not really")
    code = main(["fit", "--source", str(bad), "--target", str(bad), "--model",
                 str(tmp_path / "m")])
    assert code == 1
    assert "not a readable FCS file" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as raised:
        main(["fit", "--source", "a.csv"])
    assert raised.value.code == 2
    assert main([]) == 2


def test_every_subcommand_help_shows_an_example(capsys):
    for command in ("demo", "fit", "apply", "add-batch", "export"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        printed = capsys.readouterr().out
        assert ("example:\n  neuronedit " + command in printed
                or "examples:\n  neuronedit " + command in printed)
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "examples:" in capsys.readouterr().out


#: What `neuronedit --help` and usage errors must not import (they answer at once).
HEAVY_MODULES = ("tensorflow", "keras", "tensorflow_probability")


def _run_python(script, *args):
    """Run ``script`` in a fresh interpreter (this test process has TensorFlow imported already)."""
    path = [str(Path(neuronedit_tf.__file__).parents[1]), os.environ.get("PYTHONPATH")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)))
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          env=env, check=True)


def _help_commands(parser, prefix=()):
    """``[[], ["demo"], ..., ["zoo", "list"], ...]``: every command and subcommand of ``parser``."""
    commands = [list(prefix)]
    for action in parser._actions:
        if isinstance(action.choices, dict):  # a subparsers action: name -> parser
            for name, subparser in action.choices.items():
                commands += _help_commands(subparser, prefix + (name,))
    return commands


def test_help_and_usage_errors_do_not_import_tensorflow():
    calls = [command + ["--help"] for command in _help_commands(_parser())]
    assert ["zoo", "train", "--help"] in calls and ["export", "--help"] in calls
    calls += [["fit", "--metadata", "m.csv", "--model", "s"], ["apply", "--model", "s",
              "--out-dir", "o"], ["fit", "--source", "a.csv"], ["bench", "nope"], ["zoo"], []]
    script = """if True:
        import json, sys
        from neuronedit_tf.cli import main
        codes = []
        for argv in json.loads(sys.argv[1]):
            try:
                codes.append(main(argv))
            except SystemExit as stop:
                codes.append(stop.code)
        heavy = [name for name in json.loads(sys.argv[2]) if name in sys.modules]
        print(json.dumps({"codes": codes, "heavy": heavy}))
    """
    result = _run_python(script, json.dumps(calls), json.dumps(HEAVY_MODULES))
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["codes"] == [0] * (len(calls) - 6) + [2] * 6
    assert report["heavy"] == []


def test_public_names_are_imported_on_first_use():
    script = """if True:
        import sys
        import neuronedit_tf as ne
        before = "tensorflow" in sys.modules
        from neuronedit_tf import NeuronEdit, NeuronEditor
        print(before, NeuronEditor.__module__, NeuronEdit.__module__, ne.zoo.__name__,
              ne.tl.__name__, ne.baselines.__name__, ne.data.__name__)
    """
    printed = _run_python(script).stdout.split()
    assert printed == ["False", "neuronedit_tf.editor", "neuronedit_tf.layers.neuron_edit",
                       "neuronedit_tf.zoo", "neuronedit_tf.tl", "neuronedit_tf.baselines",
                       "neuronedit_tf.data"]


TENSORFLOW_LOG_LINES = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    b"I0000 00:00:1796298953.576387    5896 port.cc:153] oneDNN custom operations are on.\n"
    b"I0000 00:00:1796298953.639616    5896 cpu_feature_guard.cc:227] This TensorFlow binary is "
    b"optimized to use available CPU instructions in performance-critical operations.\n"
    b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow "
    b"with the appropriate compiler flags.\n"
    b"E0000 00:00:1796298958.581445    5896 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n"
)


def test_tensorflow_log_lines_are_hidden_and_every_other_line_passes(capfd):
    from neuronedit_tf.native_logs import hidden_native_logs

    with hidden_native_logs():
        # Python writes first: its line is out before the filter thread has anything to forward
        # (two writers to one descriptor at once may interleave within a line).
        print("from Python", file=sys.stderr, flush=True)
        os.write(2, b"before\n" + TENSORFLOW_LOG_LINES + b"F0000 00:00:1.0 1 x.cc:1] fatal\nafter")
    err = capfd.readouterr().err
    assert sorted(err.splitlines()) == ["F0000 00:00:1.0 1 x.cc:1] fatal", "after", "before",
                                        "from Python"]


def test_fit_shows_one_progress_bar_and_no_tensorflow_logs_unless_verbose(cytof, tmp_path):
    for name in ("source", "target", "sample"):
        cytof[name].to_frame().to_csv(tmp_path / f"{name}.csv", index=False)
    command = "import sys; from neuronedit_tf.cli import main; sys.exit(main(sys.argv[1:]))"
    fit = _run_python(command, "fit", "--source", str(tmp_path / "source.csv"), "--target",
                      str(tmp_path / "target.csv"), "--hidden", "16,8,4", "--epochs", "3",
                      "--model", str(tmp_path / "model"))
    assert "Epoch 1/" not in fit.stdout + fit.stderr  # Keras's bar per epoch
    assert fit.stderr.count("training:   0%") == 1 and "| 3/3 [" in fit.stderr
    assert "loss=" in fit.stderr and "val_loss=" in fit.stderr
    for line in TENSORFLOW_LOG_LINES.decode().splitlines():
        assert line[:12] not in fit.stderr
    verbose = _run_python(command, "--verbose", "apply", "--model", str(tmp_path / "model"),
                          str(tmp_path / "sample.csv"), "--out-dir", str(tmp_path / "out"))
    assert "absl::InitializeLog()" in verbose.stderr


def test_demo_writes_real_results_and_figure(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--epochs", "3"]) == 0
    printed = capsys.readouterr().out
    assert "Pearson r" in printed and "EMD" in printed
    edited = read_fcs(tmp_path / "donor2_batch021_edited_to_028.fcs")
    assert edited.values.shape == (1000, 37)
    png = (tmp_path / "spike_in_correction.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_apply_edits_many_files_with_a_progress_bar(fcs_files, marker_model, tmp_path, capsys):
    out = tmp_path / "edited"
    assert main(["apply", "--model", str(marker_model), str(fcs_files["sample"]),
                 str(fcs_files["other"]), "--out-dir", str(out)]) == 0
    printed = capsys.readouterr()
    assert "editing files" in printed.err and printed.out.count("wrote") == 2
    for name in ("sample", "other"):
        original, edited = read_fcs(fcs_files[name]), read_fcs(out / f"{name}.fcs")
        assert edited.channels == original.channels and edited.markers == original.markers
        kept = {k: v for k, v in original.text.items() if k not in edited.text or k == "com"}
        assert set(kept) <= {"com", "begindata", "enddata"}
        assert f"neuronedit 0.1.0: edited {','.join(cytof_markers())} with" in edited.text["com"]
    assert sorted(p.name for p in out.iterdir()) == ["other.fcs", "sample.fcs"]


def test_fcsparser_reads_the_edited_files_with_the_same_channels_and_keywords(
        fcs_files, marker_model, tmp_path):
    assert main(["apply", "--model", str(marker_model), str(fcs_files["sample"]),
                 "--out-dir", str(tmp_path)]) == 0
    original, edited = fcsparser_parse(fcs_files["sample"]), fcsparser_parse(tmp_path / "sample.fcs")
    assert edited["columns"] == original["columns"] and edited["channels"] == original["channels"]
    assert fcs_keywords(edited["meta"]) == fcs_keywords(original["meta"])
    assert "neuronedit" in edited["meta"]["$COM"] and edited["sha"] != original["sha"]


@pytest.mark.parametrize("out_format, suffix", [("h5ad", ".h5ad"), ("parquet", ".parquet"),
                                                 ("csv", ".csv")])
def test_apply_writes_other_formats_with_every_channel(fcs_files, marker_model, tmp_path,
                                                       out_format, suffix):
    assert main(["apply", "--model", str(marker_model), str(fcs_files["sample"]),
                 "--out-dir", str(tmp_path), "--out-format", out_format]) == 0
    edited, original = read(tmp_path / f"sample{suffix}"), read_fcs(fcs_files["sample"])
    names = list(edited.var_names) if out_format == "h5ad" else list(edited.columns)
    assert names == original.channels
    values = np.asarray(edited.X if out_format == "h5ad" else edited.to_numpy(), np.float32)
    time = original.channels.index("Time")
    np.testing.assert_array_equal(values[:, time], original.values[:, time])


def test_tables_and_hdf5_datasets_go_in_and_out(fcs_files, marker_model, tmp_path):
    sample = read_fcs(fcs_files["sample"]).to_frame()
    shuffled = sample[list(reversed(sample.columns))]
    write(tmp_path / "in" / "sample.tsv", shuffled)
    write(tmp_path / "in" / "sample.h5:/cells/events", sample)
    cells = sample.set_axis([f"cell{i}" for i in range(len(sample))])
    write(tmp_path / "in" / "cells.h5ad", cells.sample(frac=1.0, random_state=0))
    assert main(["apply", "--model", str(marker_model), str(tmp_path / "in" / "sample.tsv"),
                 f"{tmp_path / 'in' / 'sample.h5'}:/cells/events", str(tmp_path / "in" / "cells.h5ad"),
                 "--out-dir", str(tmp_path / "out")]) == 0
    from_tsv = read(tmp_path / "out" / "sample.tsv")
    assert list(from_tsv.columns) == list(shuffled.columns)
    with h5py.File(tmp_path / "out" / "sample.h5", "r") as handle:
        from_h5 = handle["cells/events"][()]
    np.testing.assert_allclose(from_tsv[sample.columns].to_numpy(), from_h5, rtol=1e-6)
    from_h5ad, given = read(tmp_path / "out" / "cells.h5ad"), read(tmp_path / "in" / "cells.h5ad")
    assert list(from_h5ad.obs_names) == list(given.obs_names)  # shuffled order in, same out
    assert "neuronedit" in from_h5ad.uns["history"][-1]
    by_cell = from_h5ad.to_df().loc[[f"cell{i}" for i in range(len(sample))]]
    np.testing.assert_allclose(by_cell.to_numpy(), from_h5, rtol=1e-5, atol=1e-4)


def test_format_option_reads_a_mislabelled_file(fcs_files, marker_model, tmp_path, capsys):
    mislabelled = tmp_path / "in" / "sample.csv"
    mislabelled.parent.mkdir()
    mislabelled.write_bytes(fcs_files["sample"].read_bytes())
    args = ["apply", "--model", str(marker_model), str(mislabelled), "--out-dir",
            str(tmp_path / "out")]
    assert main(args) == 1
    assert "looks like a FCS file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main(args + ["--format", "fcs", "--out-format", "fcs"]) == 0
    assert read_fcs(tmp_path / "out" / "sample.fcs").channels == read_fcs(fcs_files["sample"]).channels


def test_files_with_mismatched_channels_are_refused_with_the_names(fcs_files, tmp_path, capsys):
    renamed = read_fcs(fcs_files["target"])
    renamed.channels = [c if c != "Time" else "time" for c in renamed.channels]
    write(tmp_path / "target.fcs", renamed)
    code = main(["fit", "--source", str(fcs_files["source"]), "--target",
                 str(tmp_path / "target.fcs"), "--channels", f"@{fcs_files['markers']}",
                 "--model", str(tmp_path / "model"), "--epochs", "1"])
    assert code == 1
    assert "missing ['Time'], extra ['time']" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


def test_apply_refuses_a_file_with_other_channels_and_writes_nothing_for_it(
        fcs_files, marker_model, tmp_path, capsys):
    fewer = read_fcs(fcs_files["sample"]).select(cytof_markers())
    write(tmp_path / "markers_only.fcs", fewer)
    code = main(["apply", "--model", str(marker_model), str(tmp_path / "markers_only.fcs"),
                 "--out-dir", str(tmp_path / "out")])
    assert code == 1
    assert "missing ['Time', 'Event_length'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_apply_never_writes_over_its_input(fcs_files, marker_model, tmp_path, capsys):
    before = fcs_files["sample"].read_bytes()
    code = main(["apply", "--model", str(marker_model), str(fcs_files["sample"]),
                 "--out-dir", str(fcs_files["sample"].parent)])
    assert code == 1 and "would overwrite its input" in capsys.readouterr().err
    assert fcs_files["sample"].read_bytes() == before


def test_ctrl_c_during_apply_exits_130_and_leaves_no_partial_file(fcs_files, marker_model,
                                                                   tmp_path, monkeypatch, capsys):
    import flowio

    def interrupted(handle, *args, **kwargs):
        handle.write(b"FCS3.1" + b" " * 1000)  # half-written when Ctrl-C arrives
        raise KeyboardInterrupt

    monkeypatch.setattr(flowio, "create_fcs", interrupted)
    code = main(["apply", "--model", str(marker_model), str(fcs_files["sample"]),
                 "--out-dir", str(tmp_path)])
    assert code == 130 and "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_bad_option_values_exit_1_with_the_expected_form(tmp_path, capsys):
    for option, value in (("--logicle", "t:1"), ("--hidden", "32,x")):
        assert main(["fit", "--source", "a.csv", "--target", "b.csv", "--model", "m",
                     option, value]) == 1
        assert "like" in capsys.readouterr().err


def test_fit_with_a_comparison_method_then_apply(cytof, tmp_path):
    for name in ("source", "target", "sample"):
        cytof[name].to_frame().to_csv(tmp_path / f"{name}.csv", index=False)
    model = tmp_path / "quantile_map"
    assert main(["fit", "--method", "quantile_map", "--transform", "arcsinh",
                 "--source", str(tmp_path / "source.csv"), "--target", str(tmp_path / "target.csv"),
                 "--model", str(model)]) == 0
    assert main(["apply", "--model", str(model), str(tmp_path / "sample.csv"),
                 "--out-dir", str(tmp_path / "out")]) == 0
    import pandas as pd

    from neuronedit_tf import baselines

    edited = pd.read_csv(tmp_path / "out" / "sample.csv")
    expected = baselines.get("quantile_map", transform="arcsinh").fit(
        cytof["source"].to_frame(), cytof["target"].to_frame()).transform(cytof["sample"].to_frame())
    np.testing.assert_allclose(edited.to_numpy(), expected.to_numpy(), rtol=1e-5, atol=1e-3)


def test_fit_picks_neuron_editing_methods_and_members_by_name(cytof, tmp_path):
    from neuronedit_tf import NeuronEditor

    for name in ("source", "target", "sample"):
        cytof[name].to_frame().to_csv(tmp_path / f"{name}.csv", index=False)
    files = ["--source", str(tmp_path / "source.csv"), "--target", str(tmp_path / "target.csv"),
             "--extra", str(tmp_path / "sample.csv"), "--transform", "arcsinh",
             "--hidden", "16,8,4", "--epochs", "2", "--seed", "2"]
    assert main(["fit", *files, "--method", "paper", "--members", "2", "--fast",
                 "--model", str(tmp_path / "paper")]) == 0
    assert main(["fit", *files, "--model", str(tmp_path / "default")]) == 0
    paper, default = (NeuronEditor.load(tmp_path / n) for n in ("paper", "default"))
    assert (paper.method, paper.members) == ("paper", 2)
    assert (default.method, default.members) == ("gated", 1)
    assert "calibration" not in [layer.name for layer in paper.model_.layers]
    # The paper's setting, fitted in Python with the same options, gives the same edit.
    same = NeuronEditor(transform="arcsinh", hidden=(16, 8, 4), seed=2, method="paper",
                        members=2).fit(cytof["source"].to_frame(), cytof["target"].to_frame(),
                                       extra=cytof["sample"].to_frame(), epochs=2, verbose=0,
                                       jit_compile="auto", steps_per_execution="auto")
    sample = cytof["sample"].to_frame()
    np.testing.assert_allclose(paper.transform(sample).to_numpy(),
                               same.transform(sample).to_numpy(), rtol=1e-4, atol=1e-3)


def test_fit_auto_prints_its_choice_and_table_and_saves_them(cytof, tmp_path, capsys):
    from neuronedit_tf import NeuronEditor

    for name in ("source", "target", "sample"):
        cytof[name].to_frame().to_csv(tmp_path / f"{name}.csv", index=False)
    assert main(["fit", "--method", "auto", "--source", str(tmp_path / "source.csv"),
                 "--target", str(tmp_path / "target.csv"), "--extra", str(tmp_path / "sample.csv"),
                 "--transform", "arcsinh", "--hidden", "16,8,4", "--epochs", "2",
                 "--model", str(tmp_path / "auto")]) == 0
    out = capsys.readouterr().out
    editor = NeuronEditor.load(tmp_path / "auto")
    assert f"method='auto' chose {editor.method_!r}" in out
    splits = list(dict.fromkeys(r["split"] for r in editor.selection_["rows"]))
    assert "sample" in splits  # given a sample (--extra), auto holds out the cells like it
    assert "| candidate | " + " | ".join(splits) + " | geometric mean |" in out
    assert editor.selection_["choice"] == editor.method_


def test_members_with_a_comparison_method_is_refused(tmp_path, capsys):
    code = main(["fit", "--method", "quantile_map", "--members", "3", "--source", "a.csv",
                 "--target", "b.csv", "--model", str(tmp_path / "m")])
    assert code == 1 and "comparison method" in capsys.readouterr().err


def test_unknown_method_is_a_data_error_listing_the_methods(tmp_path, capsys):
    code = main(["fit", "--method", "magic", "--source", "a.csv", "--target", "b.csv",
                 "--model", str(tmp_path / "m")])
    assert code == 1 and "quantile_map" in capsys.readouterr().err
