"""The `neuronedit` command: demo, fit, apply, export on real FCS files; exit codes."""

import numpy as np
import pytest

from neuronedit_tf.cli import main
from neuronedit_tf.data import read_fcs, write_fcs
from neuronedit_tf.data.datasets import cytof_markers


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
    return paths


def test_fit_then_apply_edits_markers_and_passes_other_channels_through(fcs_files, tmp_path,
                                                                          capsys):
    model = tmp_path / "model"
    markers = ",".join(cytof_markers())
    assert main(["fit", "--source", str(fcs_files["source"]), "--target", str(fcs_files["target"]),
                 "--extra", str(fcs_files["sample"]), "--model", str(model), "--channels", markers,
                 "--transform", "arcsinh", "--epochs", "3"]) == 0
    assert main(["apply", "--model", str(model), str(fcs_files["sample"]),
                 "--out-dir", str(tmp_path / "edited")]) == 0
    original = read_fcs(fcs_files["sample"])
    edited = read_fcs(tmp_path / "edited" / "sample.fcs")
    assert edited.channels == original.channels and edited.markers == original.markers
    untouched = [i for i, c in enumerate(original.channels) if c not in cytof_markers()]
    np.testing.assert_array_equal(edited.values[:, untouched], original.values[:, untouched])
    assert not np.allclose(edited.values, original.values)
    assert "neuronedit" in edited.text["com"]
    assert main(["export", "--model", str(model), "--out", str(tmp_path / "served")]) == 0
    assert (tmp_path / "served" / "saved_model.pb").exists()
    assert "parity" in capsys.readouterr().out


def test_csv_round_trip_through_fit_and_apply(cytof, tmp_path):
    for name in ("source", "target", "sample"):
        cytof[name].to_frame().to_csv(tmp_path / f"{name}.csv", index=False)
    model = tmp_path / "model"
    assert main(["fit", "--source", str(tmp_path / "source.csv"), "--target",
                 str(tmp_path / "target.csv"), "--model", str(model), "--epochs", "2"]) == 0
    assert main(["apply", "--model", str(model), str(tmp_path / "sample.csv"),
                 "--out-dir", str(tmp_path / "out")]) == 0
    import pandas as pd

    edited = pd.read_csv(tmp_path / "out" / "sample.csv")
    assert list(edited.columns) == cytof["sample"].channels and len(edited) == 1000


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
    for command in ("demo", "fit", "apply", "export"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "example:" in capsys.readouterr().out


def test_demo_writes_real_results_and_figure(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--epochs", "3"]) == 0
    printed = capsys.readouterr().out
    assert "Pearson r" in printed and "EMD" in printed
    edited = read_fcs(tmp_path / "donor2_batch021_edited_to_028.fcs")
    assert edited.values.shape == (1000, 37)
    png = (tmp_path / "spike_in_correction.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
