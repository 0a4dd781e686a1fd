"""Faults never lose work, loading never runs foreign code, the same seed repeats exactly.

Real kills: training is SIGKILLed mid-epoch in a subprocess and resumed; ``neuronedit
apply`` gets SIGINT while it writes many files. Failed writes are injected (ENOSPC,
EACCES) into every writer. Crafted saved editors carry a Lambda layer or a pickle whose
payload would leave a marker file if it ever ran. Counts go to ``docs/RELIABILITY.md``.
"""

import errno
import io
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

import neuronedit_tf
from neuronedit_tf import NeuronEditError, NeuronEditor
from neuronedit_tf.cli import main
from neuronedit_tf.data import read, write
from tools.reliability_report import record

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")

# ------------------------------------------------------------------ kill, resume, determinism
TRAIN_SCRIPT = r"""
import os, signal, sys, json
import numpy as np, keras
from neuronedit_tf import NeuronEditor
from neuronedit_tf.data import load_cytof

mode, checkpoint, out, members = sys.argv[1:5]
if mode == "kill":  # SIGKILL this process in the middle of epoch 3 (from its 4th batch on;
    # Keras reports batches once per compiled call of several steps)
    class Killer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 2 and batch >= 3:
                os.kill(os.getpid(), signal.SIGKILL)
    fit = keras.Model.fit
    def killing_fit(self, *args, callbacks=None, **kwargs):
        return fit(self, *args, callbacks=list(callbacks or []) + [Killer()], **kwargs)
    keras.Model.fit = killing_fit
source, target, sample = load_cytof("021", 1), load_cytof("028", 1), load_cytof("021", 2)
editor = NeuronEditor(transform="arcsinh", hidden=(16, 8, 4), seed=7, members=int(members))
editor.fit(source, target, extra=sample, epochs=5, patience=2, batch_size=200, verbose=0,
           checkpoint_dir=None if checkpoint == "-" else checkpoint)
np.save(out, editor.transform(sample.values))
with open(out + ".json", "w") as handle:
    json.dump(editor.history_, handle)
"""


def _train(tmp_path, mode, checkpoint, name, members):
    out = str(tmp_path / f"{name}.npy")
    result = subprocess.run([sys.executable, "-c", TRAIN_SCRIPT, mode, str(checkpoint), out,
                             str(members)],
                            env=ENV, capture_output=True, text=True, timeout=600)
    return result, out


@pytest.fixture(scope="module", params=[1, 2], ids=["one autoencoder", "members=2"])
def runs(tmp_path_factory, request):
    """An uninterrupted run twice (fresh processes), and a run SIGKILLed mid-epoch then resumed."""
    tmp_path = tmp_path_factory.mktemp("train")
    checkpoint = tmp_path / "checkpoint"
    members = request.param
    killed, _ = _train(tmp_path, "kill", checkpoint, "killed", members)
    metadata = json.loads((checkpoint / "training_metadata.json").read_text())
    resumed, resumed_out = _train(tmp_path, "resume", checkpoint, "resumed", members)
    first, first_out = _train(tmp_path, "plain", "-", "first", members)
    second, second_out = _train(tmp_path, "plain", "-", "second", members)
    for result in (resumed, first, second):
        assert result.returncode == 0, result.stderr[-3000:]
    return {"killed": killed, "metadata": metadata, "checkpoint": checkpoint,
            "resumed": resumed_out, "first": first_out, "second": second_out}


def test_sigkill_mid_epoch_resumes_to_the_uninterrupted_result(runs):
    assert runs["killed"].returncode == -signal.SIGKILL
    assert runs["metadata"]["epoch"] == 2  # epochs 1 and 2 were backed up; 3 was cut short
    resumed, plain = np.load(runs["resumed"]), np.load(runs["first"])
    np.testing.assert_array_equal(resumed, plain)
    history = json.loads(Path(runs["resumed"] + ".json").read_text())
    assert history == json.loads(Path(runs["first"] + ".json").read_text())
    assert not runs["checkpoint"].exists()  # a finished run removes its backup
    record("faults: SIGKILL mid-epoch, then resume", "survived")


def test_same_seed_same_output_in_two_fresh_processes(runs):
    np.testing.assert_array_equal(np.load(runs["first"]), np.load(runs["second"]))
    record("determinism: two fresh processes", "correct result")


# ------------------------------------------------------------------ failed writes
@pytest.fixture(scope="module")
def frame(cytof):
    table = cytof["sample"].to_frame().iloc[:200]
    table.index = [f"c{i}" for i in range(len(table))]
    return table


SUFFIXES = ["csv", "tsv", "parquet", "npy", "npz", "h5", "h5ad", "fcs"]


def _no_leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep) == []


def _library_writers(monkeypatch, fail):
    """Make every library call that writes bytes fail with ``fail`` after a partial write."""
    import anndata
    import flowio
    import h5py
    import pandas as pd
    import pyarrow.parquet as pq

    def partial(real=None):
        def broken(*args, **kwargs):
            for arg in args:  # write a little first, like a disk that fills up mid-file
                if isinstance(arg, io.IOBase):
                    arg.write(b"partial")
                    break
                if isinstance(arg, (str, os.PathLike)) and str(arg).endswith(".part"):
                    Path(arg).write_bytes(b"partial")
                    break
            raise fail
        return broken

    monkeypatch.setattr(flowio, "create_fcs", partial())
    monkeypatch.setattr(pd.DataFrame, "to_csv", partial())
    monkeypatch.setattr(np, "save", partial())
    monkeypatch.setattr(np, "savez", partial())
    monkeypatch.setattr(h5py.Group, "create_dataset", partial())
    monkeypatch.setattr(pq, "write_table", partial())
    monkeypatch.setattr(anndata.AnnData, "write_h5ad", partial())


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("where", ["write", "rename"])
def test_disk_full_leaves_the_previous_file_intact(frame, tmp_path, monkeypatch, suffix, where):
    path = write(tmp_path / f"cells.{suffix}", frame)
    before = path.read_bytes()
    disk_full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with monkeypatch.context() as patch:
        if where == "write":
            _library_writers(patch, disk_full)
        else:
            import neuronedit_tf.data.atomic as atomic

            def full(*_):
                raise disk_full

            patch.setattr(atomic.os, "replace", full)
        with pytest.raises(NeuronEditError, match="No space left"):
            write(path, frame * 2)
    assert path.read_bytes() == before
    assert _no_leftovers(tmp_path, {path.name})
    read(path)
    record("faults: disk full while writing", "survived")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_permission_denied_leaves_the_previous_file_intact(frame, tmp_path, monkeypatch, suffix):
    folder = tmp_path / "locked"
    path = write(folder / f"cells.{suffix}", frame)
    before = path.read_bytes()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):  # root ignores modes: inject the error the mode would give
            import tempfile

            def denied(*args, **kwargs):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder))

            monkeypatch.setattr(tempfile, "mkstemp", denied)
        with pytest.raises(NeuronEditError, match="Permission denied"):
            write(path, frame * 2)
    finally:
        folder.chmod(0o755)
        monkeypatch.undo()
    assert path.read_bytes() == before
    assert _no_leftovers(folder, {path.name})
    record("faults: permission denied while writing", "survived")


def test_a_failed_save_leaves_the_previous_editor_intact(small_editor, cytof, tmp_path,
                                                        monkeypatch):
    saved = small_editor.save(tmp_path / "editor")
    before = {p.name: p.read_bytes() for p in saved.iterdir()}

    def full(self, *args, **kwargs):
        Path(args[0]).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(keras.Model, "save", full)
    with pytest.raises(OSError):
        small_editor.save(saved, overwrite=True)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["editor"]
    NeuronEditor.load(saved).transform(cytof["sample"])
    record("faults: disk full while saving an editor", "survived")


def test_cli_reports_a_full_disk_as_an_error_and_leaves_nothing(small_editor, cytof, tmp_path,
                                                                monkeypatch, capsys):
    model = small_editor.save(tmp_path / "model")
    source = write(tmp_path / "in.fcs", cytof["sample"])  # the editor's 37 markers
    import neuronedit_tf.data.atomic as atomic

    def full(*_):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "replace", full)
    code = main(["apply", "--model", str(model), str(source), "--out-dir", str(tmp_path / "out")])
    assert code == 1 and "No space left" in capsys.readouterr().err
    assert list((tmp_path / "out").iterdir()) == []
    record("faults: disk full in the CLI", "survived")


# ------------------------------------------------------------------ Ctrl-C during apply
@pytest.fixture(scope="module")
def many_files(tmp_path_factory, cytof):
    folder = tmp_path_factory.mktemp("many")
    editor = NeuronEditor(transform="arcsinh", hidden=(8, 4, 2), seed=0)
    editor.fit(cytof["source"], cytof["target"], epochs=1, verbose=0)
    model = editor.save(folder / "model")
    files = [write(folder / f"sample{i:02d}.fcs", cytof["sample"]) for i in range(40)]
    return model, files, editor


@pytest.mark.parametrize("after", [1, 4])
def test_sigint_during_apply_leaves_only_complete_files(many_files, tmp_path, after):
    model, files, editor = many_files
    out = tmp_path / "edited"
    process = subprocess.Popen(
        [sys.executable, "-m", "neuronedit_tf.cli", "apply", "--model", str(model),
         *map(str, files), "--out-dir", str(out)],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    written = 0
    deadline = time.monotonic() + 300
    while written < after and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        written += line.startswith("wrote")
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("apply did not stop after Ctrl-C")
    assert process.returncode in (130, 0), err[-2000:]
    done = sorted(out.iterdir()) if out.exists() else []
    assert all(not p.name.startswith(".") and not p.name.endswith(".part") for p in done), done
    assert written <= len(done) < len(files) or process.returncode == 0
    expected = editor.transform(read(files[0]))
    for path in done:  # every finished file is complete and right
        np.testing.assert_allclose(read(path).values, expected.values, rtol=1e-5, atol=1e-3)
    record("faults: Ctrl-C during neuronedit apply", "survived")


# ------------------------------------------------------------------ trust
class Payload:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _saved_copy(small_editor, tmp_path, name):
    return small_editor.save(tmp_path / name)


def test_a_lambda_layer_in_a_saved_editor_is_refused_and_never_runs(small_editor, tmp_path):
    folder = _saved_copy(small_editor, tmp_path, "lambda_editor")
    marker = tmp_path / "lambda_ran"
    inputs = keras.Input((37,), name="features")
    outputs = keras.layers.Lambda(
        lambda x, m=str(marker): (Path(m).touch(), x)[1])(inputs)  # the payload
    (folder / "model.keras").unlink()
    keras.Model(inputs, outputs).save(folder / "model.keras")
    marker.unlink(missing_ok=True)  # building the model ran it once here; loading must not
    with pytest.raises(NeuronEditError, match="Lambda"):
        NeuronEditor.load(folder)
    assert not marker.exists()
    record("trust: crafted saved files refused", "typed error")


def test_a_lambda_smuggled_into_config_json_is_refused(small_editor, tmp_path):
    folder = _saved_copy(small_editor, tmp_path, "edited_config")
    archive = folder / "model.keras"
    with zipfile.ZipFile(archive) as handle:
        members = {n: handle.read(n) for n in handle.namelist()}
    config = json.loads(members["config.json"])
    layers = config["config"]["layers"]
    layers[-1] = {"module": "keras.layers", "class_name": "Lambda", "name": "evil",
                  "config": {"name": "evil", "function": {"class_name": "__lambda__",
                                                         "config": {"code": "AAAA"}}},
                  "inbound_nodes": layers[-1].get("inbound_nodes", [])}
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(archive, "w") as handle:
        for name, content in members.items():
            handle.writestr(name, content)
    with pytest.raises(NeuronEditError, match="Lambda"):
        NeuronEditor.load(folder)
    record("trust: crafted saved files refused", "typed error")


@pytest.mark.parametrize("where", ["folder", "inside_keras_zip"])
def test_a_pickle_in_a_saved_editor_is_refused_and_never_runs(small_editor, tmp_path, where):
    folder = _saved_copy(small_editor, tmp_path, f"pickle_{where}")
    marker = tmp_path / "pickle_ran"
    payload = pickle.dumps(Payload(marker))
    if where == "folder":
        (folder / "extra_state.pkl").write_bytes(payload)
    else:
        with zipfile.ZipFile(folder / "model.keras", "a") as handle:
            handle.writestr("state.pkl", payload)
    with pytest.raises(NeuronEditError, match="pickle|never has"):
        NeuronEditor.load(folder)
    assert not marker.exists()
    record("trust: crafted saved files refused", "typed error")


def test_a_baseline_with_an_object_array_is_refused(cytof, tmp_path):
    from neuronedit_tf import baselines

    method = baselines.get("quantile_map").fit(cytof["source"], cytof["target"])
    folder = method.save(tmp_path / "method")
    state = folder / "state.npz"
    marker = tmp_path / "npz_ran"
    np.savez(state, evil=np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(NeuronEditError, match="unpickling|pickle"):
        baselines.load(folder)
    assert not marker.exists()
    record("trust: crafted saved files refused", "typed error")


def test_damaged_saved_editors_are_one_clear_error(small_editor, tmp_path):
    folder = _saved_copy(small_editor, tmp_path, "damaged")
    model = (folder / "model.keras").read_bytes()
    for cut in (0, 10, len(model) // 2, len(model) - 10):
        (folder / "model.keras").write_bytes(model[:cut])
        with pytest.raises(NeuronEditError):
            NeuronEditor.load(folder)
        record("trust: crafted saved files refused", "typed error")
    (folder / "model.keras").write_bytes(model)
    for text in ("", "[]", '{"config": 3}', '{"config": {"nonsense": 1}}', "\x00\xff"):
        (folder / "neuronedit.json").write_text(text, encoding="latin-1")
        with pytest.raises(NeuronEditError):
            NeuronEditor.load(folder)
        record("trust: crafted saved files refused", "typed error")


def test_a_flipped_byte_in_a_saved_models_weights_is_refused_by_its_checksum(small_editor,
                                                                             tmp_path):
    # Keras would hand the damaged model.weights.h5 to HDF5, which can crash the process.
    folder = _saved_copy(small_editor, tmp_path, "flipped")
    archive = folder / "model.keras"
    content = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as handle:
        member = handle.getinfo("model.weights.h5")
    start = member.header_offset + 30 + len(member.filename) + len(member.extra)
    content[start + member.compress_size // 2] ^= 0x40
    archive.write_bytes(bytes(content))
    with pytest.raises(NeuronEditError, match="model.weights.h5 fails its checksum"):
        NeuronEditor.load(folder)
    record("trust: crafted saved files refused", "typed error")


UNSAFE = re.compile(r"pickle\.loads?\(|(?<![\w.])eval\(|(?<![\w.])exec\(|allow_pickle\s*=\s*True|"
                    r"safe_mode\s*=\s*False|marshal\.loads?\(|yaml\.load\(|torch\.load\(")


def test_the_package_never_unpickles_or_evaluates():
    package = Path(neuronedit_tf.__file__).parent
    found = [f"{path.relative_to(package)}:{number}: {line.strip()}"
             for path in sorted(package.rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if UNSAFE.search(line)]
    assert found == []
    # and every Keras load goes through the checked, safe_mode loader
    loads = [str(p.relative_to(package)) for p in package.rglob("*.py")
             if "keras.saving.load_model(" in p.read_text() or "keras.models.load_model(" in
             p.read_text()]
    assert loads == ["validation.py"], loads
