"""A fit_study SIGKILLed at any moment resumes to the uninterrupted result (as fit does): in
the middle of an epoch, and between the end-of-epoch writes (the early stopping's state and
the weights written, the epoch not yet committed); and beyond the shuffle buffer, where the
anchors and samples are read side by side (each stream's chunks drawn, seeded)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")

SCRIPT = r"""
import json, os, signal, sys
import numpy as np, keras
from neuronedit_tf import NeuronEditor, distribute
from neuronedit_tf.data import load_cytof

mode, checkpoint, out, shuffle_rows = sys.argv[1:5]
if mode == "mid-epoch":  # SIGKILL in epoch 3, from its 4th batch on
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
if mode == "between-writes":  # epoch 3: early stopping's state and the weights written, no commit
    save = distribute.EpochBackup._save_model
    def killing_save(self):
        if self._current_epoch == 3:
            self.model.save_weights(os.path.join(self.backup_dir, self.WEIGHTS.format(3)))
            os.kill(os.getpid(), signal.SIGKILL)
        save(self)
    distribute.EpochBackup._save_model = killing_save
plates = ("021", "028", "034")
study = NeuronEditor(transform="arcsinh", hidden=(16, 8, 4), seed=7).fit_study(
    {p: load_cytof(p, 1) for p in plates}, reference="021",
    samples={p: [load_cytof(p, 2)] for p in plates}, epochs=5, patience=2, batch_size=200,
    verbose=0, checkpoint_dir=None if checkpoint == "-" else checkpoint,
    **({} if shuffle_rows == "-" else {"shuffle_rows": int(shuffle_rows)}))
np.save(out, np.stack([study.transform(load_cytof(p, 2).values, batch=p) for p in plates]))
with open(out + ".json", "w") as handle:
    json.dump(study.history_, handle)
"""


def _run(tmp_path, mode, checkpoint, name, shuffle_rows=None):
    out = str(tmp_path / f"{name}.npy")
    result = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(checkpoint), out,
                             "-" if shuffle_rows is None else str(shuffle_rows)],
                            env=ENV, capture_output=True, text=True, timeout=900)
    return result, out


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The uninterrupted run's output, per shuffle_rows (run once each)."""
    runs = {}

    def get(shuffle_rows):
        if shuffle_rows not in runs:
            result, runs[shuffle_rows] = _run(tmp_path_factory.mktemp("plain"), "plain", "-",
                                              "plain", shuffle_rows)
            assert result.returncode == 0, result.stderr[-3000:]
        return runs[shuffle_rows]

    return get


# shuffle_rows=1000: the 5,400 training rows of 6 streams (3 anchors, 3 samples) go through
# a buffer of 1,000 rows, the streams' chunks drawn side by side; None: held and shuffled
# exactly (the default up to 2^20 rows).
@pytest.mark.parametrize("mode, shuffle_rows",
                         [("mid-epoch", None), ("between-writes", None), ("mid-epoch", 1000)])
def test_a_killed_fit_study_resumes_to_the_uninterrupted_result(plain, mode, shuffle_rows,
                                                                 tmp_path):
    plain = plain(shuffle_rows)
    checkpoint = tmp_path / "checkpoint"
    killed, _ = _run(tmp_path, mode, checkpoint, "killed", shuffle_rows)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    metadata = json.loads((checkpoint / "training_metadata.json").read_text())
    assert metadata["epoch"] == 2  # epochs 1 and 2 committed; 3 was cut short
    if mode == "between-writes":  # epoch 3's state and weights were on disk, uncommitted
        assert (checkpoint / "early_stopping.3.json").exists()
        assert (checkpoint / "backup.3.weights.h5").exists()
    resumed, out = _run(tmp_path, "resume", checkpoint, "resumed", shuffle_rows)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    np.testing.assert_array_equal(np.load(out), np.load(plain))
    assert json.loads(Path(out + ".json").read_text()) == json.loads(
        Path(plain + ".json").read_text())
    assert not checkpoint.exists()  # a finished run removes its backup
