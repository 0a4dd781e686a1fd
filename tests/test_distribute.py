"""NeuronEditor(strategy=...): MirroredStrategy on two CPU devices, and MultiWorkerMirroredStrategy
across two worker processes on 127.0.0.1, each matching single-process training."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from neuronedit_tf import NeuronEditError, NeuronEditor

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = "hidden=(16, 8, 4), seed=0"
FIT = "epochs=2, batch_size=100, verbose=0"
TIMEOUT = 300  # seconds for a worker; the machine's 2 cores are shared


def _environment(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **extra)
    return env


def _run_all(processes):
    """Wait for every process (bounded); kill any still running; return their outputs."""
    outputs = []
    try:
        for process in processes:
            out, _ = process.communicate(timeout=TIMEOUT)
            outputs.append(out)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, out in zip(processes, outputs):
        assert process.returncode == 0, out[-3000:]
    return outputs


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distribute")
    rng = np.random.default_rng(0)
    source = rng.normal(size=(1000, 5)).astype(np.float32)
    np.save(folder / "source.npy", source)
    np.save(folder / "target.npy", source * 1.5 + [1.0, 0.0, 0.0, -1.0, 0.0])
    return folder


@pytest.fixture(scope="module")
def single_process(data):
    source, target = np.load(data / "source.npy"), np.load(data / "target.npy")
    editor = NeuronEditor(hidden=(16, 8, 4), seed=0).fit(source, target, epochs=2,
                                                         batch_size=100, verbose=0)
    return editor, editor.transform(source)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_training_on_two_processes_matches_single_process(data, single_process):
    worker = textwrap.dedent(f"""
        import json, sys
        import numpy as np, tensorflow as tf
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        from neuronedit_tf import NeuronEditor
        folder = sys.argv[1]
        source, target = np.load(folder + "/source.npy"), np.load(folder + "/target.npy")
        editor = NeuronEditor({SETTINGS}, strategy=strategy).fit(source, target, {FIT})
        if editor.is_chief:
            np.save(folder + "/edited.npy", editor.transform(source))
            with open(folder + "/history.json", "w") as handle:
                json.dump(editor.history_, handle)
        print("replicas", strategy.num_replicas_in_sync, "chief", editor.is_chief)
    """)
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", worker, str(data)], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
            env=_environment(TF_CONFIG=json.dumps(
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})),
        )
        for index in range(2)
    ]
    outputs = _run_all(processes)
    assert "replicas 2 chief True" in outputs[0] and "replicas 2 chief False" in outputs[1]
    editor, expected = single_process
    history = json.loads((data / "history.json").read_text())
    for key in ("loss", "val_loss"):
        assert history[key] == pytest.approx(editor.history_[key], rel=1e-4)
    edited = np.load(data / "edited.npy")
    assert np.abs(edited - expected).max() < 1e-4 * np.abs(expected).max()


def test_mirrored_strategy_on_two_cpu_devices_matches_single_device(data, single_process):
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        from neuronedit_tf import NeuronEditor
        folder = sys.argv[1]
        source, target = np.load(folder + "/source.npy"), np.load(folder + "/target.npy")
        editor = NeuronEditor({SETTINGS}, strategy=strategy).fit(source, target, {FIT})
        np.save(folder + "/mirrored.npy", editor.transform(source))
        print("replicas", strategy.num_replicas_in_sync)
    """)
    process = subprocess.Popen([sys.executable, "-c", script, str(data)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=_environment())
    (output,) = _run_all([process])
    assert "replicas 2" in output
    _, expected = single_process
    edited = np.load(data / "mirrored.npy")
    assert np.abs(edited - expected).max() < 1e-4 * np.abs(expected).max()


def test_custom_loop_checkpoints_resume(data, tmp_path):
    import keras
    import tensorflow as tf

    from neuronedit_tf import distribute, models, streaming

    source = np.load(data / "source.npy")
    pre = models.preprocessing(5, source.mean(0), source.var(0))
    training, steps, validation = streaming.training_data(
        [streaming.Rows(source, "source")], pre, len(source), 0.1, 100, seed=0)

    def train(epochs):
        model = models.dense_autoencoder(5, (16, 8, 4), seed=0)
        optimizer = keras.optimizers.Adam(1e-3)
        return distribute.custom_loop(model, optimizer, tf.distribute.get_strategy(), training,
                                      steps, validation,
                                      epochs, patience=10, verbose=0,
                                      checkpoint_dir=tmp_path / "ckpt")

    first = train(2)
    resumed = train(3)
    assert len(first["loss"]) == 2 and len(resumed["loss"]) == 3
    assert resumed["loss"][:2] == first["loss"]


def test_a_non_strategy_is_refused():
    with pytest.raises(NeuronEditError, match="tf.distribute.Strategy"):
        NeuronEditor(strategy="mirrored")


def test_keras_fit_and_the_custom_loop_show_the_same_one_progress_bar(data, capsys):
    import keras
    import tensorflow as tf

    from neuronedit_tf import distribute, models, streaming

    source = np.load(data / "source.npy")
    pre = models.preprocessing(5, source.mean(0), source.var(0))
    training, steps, validation = streaming.training_data(
        [streaming.Rows(source, "source")], pre, len(source), 0.1, 100, seed=0)
    build = lambda: models.dense_autoencoder(5, (16, 8, 4), seed=0)  # noqa: E731
    distribute.train(build, tf.distribute.get_strategy(), training, steps, validation, epochs=3,
                     patience=10, learning_rate=1e-3, verbose="auto")
    by_fit = capsys.readouterr()
    distribute.custom_loop(build(), keras.optimizers.Adam(1e-3), tf.distribute.get_strategy(),
                           training, steps, validation, epochs=3, patience=10, verbose="auto")
    by_loop = capsys.readouterr()
    for printed in (by_fit, by_loop):
        assert printed.out == ""  # no Keras bar per epoch, no line per epoch
        assert printed.err.count("training:   0%") == 1 and "| 3/3 [" in printed.err
        assert "loss=" in printed.err and "val_loss=" in printed.err


def test_the_progress_bar_says_where_early_stopping_ended(capsys):
    from neuronedit_tf.distribute import EpochProgress

    progress = EpochProgress(epochs=10)
    progress.on_train_begin()
    for epoch, val_loss in enumerate((0.5, 0.3, 0.4)):
        progress.on_epoch_end(epoch, {"loss": 1.0, "val_loss": val_loss})
    progress.on_train_end()
    assert "stopped early at epoch 3/10 (best val_loss 0.3000 at epoch 2)" in capsys.readouterr().err
