"""Training the autoencoder under any ``tf.distribute.Strategy``.

``NeuronEditor(strategy=...)`` trains through :func:`train`. Without a strategy
it is Keras's own ``model.fit``, compiled by :func:`compile_for_training` (XLA for
dense models, several steps per compiled call: the speed of PyTorch's eager loop
on CPU, which Keras's defaults reach only about two thirds of). Under an explicit strategy (``MirroredStrategy``
on several GPUs or CPU devices, ``MultiWorkerMirroredStrategy`` on several
hosts, ``TPUStrategy``) :func:`custom_loop` trains the same Keras model with the
same loss (mean squared error over each global batch), optimiser, batches and
early stopping. Keras 3's ``model.fit`` fails under
``MultiWorkerMirroredStrategy`` (keras-team/keras#20585), and under
``MirroredStrategy`` it trained differently from single-device ``fit`` here,
even with one replica (loss 1.02212 vs 1.02166 after one epoch); the custom
loop reproduces single-process ``fit`` to float rounding (tests/test_distribute.py).
Each replica computes the summed error of its share of the global batch, the
row count is all-reduced, and Keras's optimiser sums the gradients over
replicas, so a step equals one single-process step on the whole global batch.

Several hosts
-------------
Run the same script on every host with ``TF_CONFIG`` naming all workers and
this one's index, and create the strategy before anything else touches
TensorFlow::

    # host 0 (the chief); host 1 is the same with "index": 1
    export TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                       "task": {"type": "worker", "index": 0}}'
    python - <<'EOF'
    import numpy as np, tensorflow as tf
    from neuronedit_tf import NeuronEditor
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    source = np.load("source.npy", mmap_mode="r")   # every worker reads the same files
    target = np.load("target.npy", mmap_mode="r")
    editor = NeuronEditor(strategy=strategy).fit(source, target, batch_size=1024)
    if editor.is_chief:
        editor.save("editor")
    EOF

Every worker must see the same data in the same order (the same files, or the
same seeded ``tf.data`` pipeline): the global batches are then split between
workers, and all of them take the same decisions (early stopping) from
all-reduced losses.

Colab TPU
---------
::

    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    editor = NeuronEditor(strategy=tf.distribute.TPUStrategy(resolver))
    editor.fit(source, target, extra=extra, batch_size=1024)

TPUs want large, fixed-size batches: use ``batch_size`` of 1024 or more. The
fitted editor's graph is rebuilt outside the strategy, so ``transform``,
``save`` and ``export`` run on the host CPU as usual.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

from neuronedit_tf.errors import NeuronEditError

#: The pipeline's maps hold no Python control flow: no AutoGraph conversion (see
#: :data:`neuronedit_tf.streaming.plain`).
_plain = tf.autograph.experimental.do_not_convert


def resolve(strategy):
    """``strategy``, or the current one (``tf.distribute.get_strategy()``) when None."""
    if strategy is None:
        return tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.Strategy):
        raise NeuronEditError(
            f"strategy must be a tf.distribute.Strategy (e.g. tf.distribute.MirroredStrategy()); "
            f"got {type(strategy).__name__}."
        )
    return strategy


def needs_custom_loop(strategy):
    """True for every strategy but the default one (see the module's docstring)."""
    return strategy is not tf.distribute.get_strategy()


def is_chief(strategy):
    """True on the worker that should write files (the only one outside multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not needs_custom_loop(strategy):
        return True
    task = resolver.task_type
    return task in (None, "chief") or (task == "worker" and resolver.task_id == 0
                                       and "chief" not in resolver.cluster_spec().as_dict())


def completed_epochs(checkpoint_dir):
    """How many epochs a backup (:class:`EpochBackup`) in ``checkpoint_dir`` has committed
    (0: none)."""
    for name in ("training_metadata.json",):
        path = os.path.join(os.fspath(checkpoint_dir), name)
        try:
            with open(path) as handle:
                return int(json.load(handle)["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return 0


#: The most training steps run per compiled call (``steps_per_execution``).
MOST_STEPS_PER_CALL = 32
#: Layers XLA compiles into faster CPU code than TensorFlow's own kernels (measured on the
#: dense autoencoder: about 1.2-1.5x the samples/s at batch 100 and 1024). Convolutions are
#: left out: on CPU, XLA trained the conv autoencoder no faster than oneDNN and took ~16 s
#: to compile.
XLA_LAYERS = (keras.layers.InputLayer, keras.layers.Dense, keras.layers.LeakyReLU,
              keras.layers.ReLU, keras.layers.ELU, keras.layers.Activation,
              keras.layers.Concatenate)  # Concatenate: members side by side


def steps_per_call(steps, most=MOST_STEPS_PER_CALL):
    """Training steps per compiled call for epochs of ``steps`` batches: the largest
    divisor of ``steps`` that is at most ``most`` and (from 4 steps on) at most half of
    ``steps``, so an epoch ends exactly at a call's end and callbacks see progress
    within each epoch.

    Keras runs ``steps_per_execution`` steps in one ``tf.function`` call, which saves
    the per-step Python and dispatch overhead (about a quarter of the time of a step
    at batch 100). On a repeating dataset a call always runs all its steps, so a
    count that does not divide the epoch would move the epochs' boundaries (and with
    them the shuffle order of each epoch and the batches a resumed run skips).

    Example:
        >>> steps_per_call(300), steps_per_call(27), steps_per_call(13), steps_per_call(2)
        (30, 9, 1, 2)
    """
    steps = int(steps)
    if steps >= 4:
        most = min(most, steps // 2)
    return max(d for d in range(1, min(most, steps) + 1) if steps % d == 0)


def xla_helps(model):
    """True when XLA (``jit_compile=True``) is expected to train ``model`` faster:
    every layer (in nested models too) is one of :data:`XLA_LAYERS` and TensorFlow's
    op determinism is off (XLA does not offer it for every op).

    Example:
        >>> from neuronedit_tf.models import dense_autoencoder, conv_autoencoder
        >>> xla_helps(dense_autoencoder(5, (4, 2))), xla_helps(conv_autoencoder((8, 8, 1)))
        (True, False)
        >>> from neuronedit_tf.models import side_by_side  # NeuronEditor(members=2)
        >>> xla_helps(side_by_side([dense_autoencoder(5, (4, 2), seed=s) for s in (0, 1)]))
        True
    """
    from tensorflow.python.framework.config import is_op_determinism_enabled

    if is_op_determinism_enabled():
        return False

    def plain(layer):
        if isinstance(layer, keras.Model):
            return all(plain(inner) for inner in layer.layers)
        return isinstance(layer, XLA_LAYERS)

    return plain(model)


def compile_for_training(model, optimizer, steps, jit_compile=False,
                         steps_per_execution="auto"):
    """``model.compile`` as the editor trains: MSE and ``optimizer``.

    The default runs :func:`steps_per_call` training steps per compiled call
    (``steps_per_execution="auto"``), without XLA: each step is the same computation
    as with Keras's one step per call, so seeded weights are the same bit for bit, but
    the per-step Python and dispatch overhead is paid once per call.
    ``jit_compile="auto"`` also compiles with XLA when :func:`xla_helps`; it trains the
    same model, but XLA's float rounding differs, so a seeded fit gives (slightly)
    different weights, and every fit pays XLA's compile time (``neuronedit bench
    speed`` measures both against PyTorch). Returns ``model``.

    Example:
        >>> from neuronedit_tf.models import dense_autoencoder
        >>> model = compile_for_training(dense_autoencoder(5, (4, 2)), "adam", steps=300,
        ...                              jit_compile="auto", steps_per_execution="auto")
        >>> model.steps_per_execution, model.jit_compile
        (30, True)
    """
    if jit_compile == "auto":
        jit_compile = xla_helps(model)
    if steps_per_execution == "auto":
        steps_per_execution = steps_per_call(steps)
    model.compile(optimizer=optimizer, loss="mse", jit_compile=bool(jit_compile),
                  steps_per_execution=int(steps_per_execution))
    return model


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """``EarlyStopping`` whose state (best loss and weights, epochs waited, history) is
    saved to ``folder`` after every epoch and restored when training resumes there, so a
    resumed run stops and keeps the same best weights as an uninterrupted one.

    Each epoch's state goes to new files named by its epoch (``early_stopping.N.json``, and
    ``early_stopping_best.N.npz`` when the best weights changed; the state names the best
    weights' file). :class:`EpochBackup` then commits the epoch: a resumed run reads the
    state of the epoch the backup committed, so a kill between the two writes (or within
    either) pairs nothing of one epoch with the other's. Files of epochs before the
    committed one are removed as training goes on.

    Example:
        >>> import tempfile
        >>> ResumableEarlyStopping(tempfile.mkdtemp(), patience=3).patience
        3
    """

    STATE = "early_stopping.{}.json"
    WEIGHTS = "early_stopping_best.{}.npz"

    def __init__(self, folder, **kwargs):
        super().__init__(**kwargs)
        self.folder = os.fspath(folder)
        self.history = {}
        self.weights_file = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.history = {}
        self.weights_file = None
        done = completed_epochs(self.folder)
        state_file = os.path.join(self.folder, self.STATE.format(done))
        if not (done and os.path.exists(state_file)):
            return
        with open(state_file) as handle:
            state = json.load(handle)
        self.wait, self.best, self.best_epoch = state["wait"], state["best"], state["best_epoch"]
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.weights_file = state.get("weights")
        if self.weights_file:
            with np.load(os.path.join(self.folder, self.weights_file),
                         allow_pickle=False) as arrays:
                self.best_weights = [arrays[f"w{i}"] for i in range(len(arrays.files))]

    def on_epoch_end(self, epoch, logs=None):
        before = self.best_weights
        super().on_epoch_end(epoch, logs)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        os.makedirs(self.folder, exist_ok=True)
        from neuronedit_tf.data.atomic import atomic_path

        if self.best_weights is not None and self.best_weights is not before:
            self.weights_file = self.WEIGHTS.format(epoch + 1)
            with atomic_path(os.path.join(self.folder, self.weights_file)) as temporary:
                with open(temporary, "wb") as handle:
                    np.savez(handle, **{f"w{i}": w for i, w in enumerate(self.best_weights)})
        state = {"epoch": epoch + 1, "wait": int(self.wait), "best": float(self.best),
                 "best_epoch": int(self.best_epoch), "history": self.history,
                 "weights": self.weights_file}
        with atomic_path(os.path.join(self.folder, self.STATE.format(epoch + 1))) as temporary:
            with open(temporary, "w") as handle:
                json.dump(state, handle)
        self._remove_older(completed_epochs(self.folder))

    def _remove_older(self, committed):
        """Remove the state and weights files of epochs before ``committed`` that no state
        still names (what a resumed run may read: the committed epoch's and this one's)."""
        keep = set()
        for epoch in (committed, committed + 1):
            path = os.path.join(self.folder, self.STATE.format(epoch))
            if os.path.exists(path):
                with open(path) as handle:
                    keep.add(json.load(handle).get("weights"))
        for name in os.listdir(self.folder):
            for pattern in (self.STATE, self.WEIGHTS):
                head, tail = pattern.split("{}")
                number = name[len(head):-len(tail)] if name.startswith(head) and \
                    name.endswith(tail) else ""
                if number.isdigit() and int(number) < committed and name not in keep:
                    os.remove(os.path.join(self.folder, name))


class EpochBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` whose backup of each epoch is one commit: the weights (with the
    optimiser's state) are written to a new file named by the epoch, then
    ``training_metadata.json`` (the epoch and that file's name) replaces the previous one
    atomically, then older weight files are removed. Keras's own writes the weights over
    the last ones and then the epoch, so a kill between the two resumed the newer weights
    with the older epoch.

    Example:
        >>> import tempfile
        >>> EpochBackup(tempfile.mkdtemp()).save_freq
        'epoch'
    """

    METADATA = "training_metadata.json"
    WEIGHTS = "backup.{}.weights.h5"

    def __init__(self, backup_dir):
        super().__init__(os.fspath(backup_dir), save_freq="epoch", delete_checkpoint=True)

    def _save_model(self):
        from neuronedit_tf.data.atomic import atomic_path

        os.makedirs(self.backup_dir, exist_ok=True)
        name = self.WEIGHTS.format(self._current_epoch)
        self.model.save_weights(os.path.join(self.backup_dir, name), overwrite=True)
        with atomic_path(os.path.join(self.backup_dir, self.METADATA)) as temporary:
            with open(temporary, "w") as handle:
                json.dump({"epoch": self._current_epoch, "batch": 0, "weights": name}, handle)
        head, tail = self.WEIGHTS.split("{}")
        for other in os.listdir(self.backup_dir):
            if other.startswith(head) and other.endswith(tail) and other != name:
                os.remove(os.path.join(self.backup_dir, other))

    def _load_model(self):
        path = os.path.join(self.backup_dir, self.METADATA)
        if not os.path.exists(path):
            return
        with open(path) as handle:
            metadata = json.load(handle)
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        _load_weights(self.model, os.path.join(self.backup_dir, metadata["weights"]))
        self.model._initial_epoch = int(metadata["epoch"])


def _load_weights(model, path):
    """``model.load_weights(path)`` after the file is read in a child process first: a
    checkpoint damaged on disk is a NeuronEditError, not a crash of the resumed run."""
    from neuronedit_tf.data.hdf5check import check_hdf5

    check_hdf5(path)
    model.load_weights(path)


class EpochProgress(keras.callbacks.Callback):
    """One progress bar over the epochs (tqdm, on stderr) with the loss and validation loss,
    instead of Keras's bar per epoch. When early stopping ends training before ``epochs``,
    the bar stops there and says so, with the best epoch.

    Example:
        >>> progress = EpochProgress(epochs=3)
        >>> progress.on_train_begin()
        >>> for epoch, loss in enumerate((0.9, 0.7)):
        ...     progress.on_epoch_end(epoch, {"loss": loss, "val_loss": loss})
        >>> progress.on_train_end()  # stderr: training: stopped early at epoch 2/3 (...)
        >>> progress.best
        (0.7, 2)
    """

    def __init__(self, epochs):
        super().__init__()
        self.epochs = int(epochs)
        self.bar = None
        self.best = (np.inf, None)  # (val_loss, its epoch)

    def on_train_begin(self, logs=None):
        from tqdm import tqdm

        self.bar = tqdm(total=self.epochs, desc="training", unit="epoch", file=sys.stderr)
        self.best = (np.inf, None)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        figures = {name: f"{logs[name]:.4f}" for name in ("loss", "val_loss") if name in logs}
        if logs.get("val_loss", np.inf) < self.best[0]:
            self.best = (float(logs["val_loss"]), epoch + 1)
        self.bar.set_postfix(figures, refresh=False)
        self.bar.update(epoch + 1 - self.bar.n)  # a resumed run starts past epoch 0

    def on_train_end(self, logs=None):
        self.bar.close()
        if self.bar.n < self.epochs and self.best[1] is not None:
            self.bar.write(f"training: stopped early at epoch {self.bar.n}/{self.epochs} "
                           f"(best val_loss {self.best[0]:.4f} at epoch {self.best[1]})",
                           file=sys.stderr)


def train(build, strategy, training, steps, validation, epochs, patience, learning_rate,
          verbose="auto", checkpoint_dir=None, jit_compile=False, steps_per_execution="auto",
          copies=1):
    """Build and train an autoencoder under ``strategy``; return it and its history.

    Args:
        build: function returning a new (untrained) autoencoder ``keras.Model``.
        strategy: a ``tf.distribute.Strategy`` (see :func:`resolve`).
        training: a repeating ``tf.data.Dataset`` of float32 global batches
            ``(rows, *sample_shape)``, read as ``steps`` batches per epoch.
        validation: a finite dataset of such batches.
        epochs, patience: at most ``epochs``; stop after ``patience`` epochs
            without a lower validation loss and keep the best weights.
        learning_rate: Adam's learning rate.
        verbose: 0: silent; ``"auto"`` or 1: one progress bar over the epochs
            (:class:`EpochProgress`); 2: one line per epoch.
        checkpoint_dir: resume from / back up to this folder after each epoch.
        jit_compile, steps_per_execution: see :func:`compile_for_training`.
        copies: the model reconstructs its input this many times side by side (along
            the last axis; e.g. :func:`neuronedit_tf.models.side_by_side`): the loss is
            the mean squared error against the input repeated ``copies`` times.

    Returns:
        ``(model, history)``: the trained model with ordinary (not distributed)
        variables, and ``{"loss": [...], "val_loss": [...]}``.
    """
    default = strategy is tf.distribute.get_strategy()
    with strategy.scope():
        model = build()
        optimizer = keras.optimizers.Adam(learning_rate)
        # The optimiser's slots must exist before the first distributed step.
        optimizer.build(model.trainable_variables)
    if needs_custom_loop(strategy):
        history = custom_loop(model, optimizer, strategy, training, steps, validation, epochs,
                              patience, verbose, checkpoint_dir, copies=copies)
    else:
        with strategy.scope():
            compile_for_training(model, optimizer, steps, jit_compile, steps_per_execution)
        stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                                 restore_best_weights=True)
        callbacks = [stopping]
        if checkpoint_dir is not None:
            # The early stopping's state is written first, under the epoch's own names, then
            # the weights and optimiser, then the epoch is committed by one atomic rename
            # (EpochBackup): a kill at any moment resumes from the last committed epoch.
            stopping = ResumableEarlyStopping(checkpoint_dir, monitor="val_loss",
                                              patience=patience, restore_best_weights=True)
            callbacks = [stopping, EpochBackup(checkpoint_dir)]
            # A resumed run continues the shuffle where the interrupted one was: the batches
            # of the epochs already done are skipped, so epoch k sees the same rows in the
            # same order as in an uninterrupted run.
            training = training.skip(completed_epochs(checkpoint_dir) * int(steps))
        if _one_bar(verbose):
            callbacks.append(EpochProgress(epochs))
            verbose = 0  # instead of Keras's bar per epoch
        pairs = training.map(_plain(lambda x: (x, _repeat(x, copies))))
        checks = validation.map(_plain(lambda x: (x, _repeat(x, copies))))
        result = model.fit(pairs, validation_data=checks,
                           epochs=int(epochs), steps_per_epoch=int(steps),
                           callbacks=callbacks, verbose=verbose,
                           shuffle=False)  # the pipeline shuffles
        history = {k: [float(v) for v in vs] for k, vs in result.history.items()}
        if isinstance(stopping, ResumableEarlyStopping):
            history = stopping.history
    if not default:
        # Plain variables for everything after training (edit, transform, save, export).
        plain = build()
        plain.set_weights([np.asarray(w) for w in model.get_weights()])
        model = plain
    return model, history


def _one_bar(verbose):
    """True when ``verbose`` asks for a progress bar (Keras's ``"auto"`` and 1)."""
    return verbose in ("auto", 1)


def _repeat(x, copies):
    """``x`` repeated ``copies`` times along its last axis (the side-by-side targets)."""
    if copies == 1:
        return x
    return tf.tile(x, [1] * (len(x.shape) - 1) + [int(copies)])


def _per_example_error(model, x, training, copies=1):
    reconstruction = model(x, training=training)
    axes = list(range(1, len(x.shape)))
    return tf.reduce_mean(tf.square(tf.cast(reconstruction, tf.float32) - _repeat(x, copies)),
                          axis=axes)


def custom_loop(model, optimizer, strategy, training, steps, validation, epochs, patience,
                verbose="auto", checkpoint_dir=None, copies=1):
    """Keras-``fit``-equivalent training that works under every strategy.

    Each step minimises the mean squared error over the global batch (Keras's
    ``loss="mse"``), also for a smaller last batch; early stopping restores the
    best weights. Losses are all-reduced, so every worker takes the same
    decisions. With ``checkpoint_dir`` the weights (last and best), the epoch
    and the history are saved after each epoch (by the chief) and training
    resumes from there (the optimiser's moments restart).
    """
    train_batches = iter(strategy.experimental_distribute_dataset(training))
    validation_batches = strategy.experimental_distribute_dataset(validation)
    variables = model.trainable_variables

    def reduce(values):
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in values]

    @tf.function
    def train_step(x):
        def replica(x):
            with tf.GradientTape() as tape:
                errors = _per_example_error(model, x, True, copies)
                total = tf.reduce_sum(errors)
                count = tf.cast(tf.shape(errors)[0], tf.float32)
                everyone = tf.distribute.get_replica_context().all_reduce(
                    tf.distribute.ReduceOp.SUM, count)
                loss = total / tf.maximum(everyone, 1.0)
            gradients = tape.gradient(loss, variables)
            # Keras's optimiser sums the gradients over replicas: the global mean.
            optimizer.apply_gradients(zip(gradients, variables))
            return total, count
        return reduce(strategy.run(replica, args=(x,)))

    @tf.function
    def validation_step(x):
        def replica(x):
            errors = _per_example_error(model, x, False, copies)
            return tf.reduce_sum(errors), tf.cast(tf.shape(errors)[0], tf.float32)
        return reduce(strategy.run(replica, args=(x,)))

    def run(step, batches):
        total = count = 0.0
        for x in batches:
            batch_total, batch_count = step(x)
            total += float(batch_total)
            count += float(batch_count)
        return total / max(count, 1.0)

    chief = is_chief(strategy)
    history = {"loss": [], "val_loss": []}
    best, best_weights, waited, start = np.inf, None, 0, 0
    state_file = None
    if checkpoint_dir is not None:
        folder = os.fspath(checkpoint_dir) if chief else tempfile.mkdtemp()
        os.makedirs(folder, exist_ok=True)
        # Each epoch's weights go to files named by the epoch; state.json, replaced
        # atomically, commits the epoch and names its files (a kill at any moment resumes
        # from the last committed epoch, never newer weights with an older state).
        state_file = os.path.join(folder, "state.json")
        best_name = None
        if os.path.exists(state_file):
            with open(state_file) as handle:
                state = json.load(handle)
            best_name = state["best_weights"]
            _load_weights(model, os.path.join(folder, best_name))
            best_weights = model.get_weights()
            _load_weights(model, os.path.join(folder, state["weights"]))
            history, best, waited, start = (state["history"], state["best"], state["waited"],
                                            state["epoch"])
    progress = EpochProgress(epochs) if chief and _one_bar(verbose) else None
    if progress:
        progress.on_train_begin()
    for epoch in range(start, int(epochs)):
        loss = run(train_step, (next(train_batches) for _ in range(int(steps))))
        val_loss = run(validation_step, validation_batches)
        history["loss"].append(loss)
        history["val_loss"].append(val_loss)
        if progress:
            progress.on_epoch_end(epoch, {"loss": loss, "val_loss": val_loss})
        elif chief and verbose:
            print(f"epoch {epoch + 1}/{epochs}: loss {loss:.5f}, val_loss {val_loss:.5f}")
        if val_loss < best:
            best, best_weights, waited = val_loss, model.get_weights(), 0
        else:
            waited += 1
        if state_file is not None:
            last_name = f"last.{epoch + 1}.weights.h5"
            model.save_weights(os.path.join(folder, last_name), overwrite=True)
            if waited == 0:
                best_name = f"best.{epoch + 1}.weights.h5"
                model.save_weights(os.path.join(folder, best_name), overwrite=True)
            state = {"history": history, "best": best, "waited": waited, "epoch": epoch + 1,
                     "weights": last_name, "best_weights": best_name}
            with open(state_file + ".tmp", "w") as handle:
                json.dump(state, handle)
            os.replace(state_file + ".tmp", state_file)
            for name in os.listdir(folder):
                if name.endswith(".weights.h5") and name not in (last_name, best_name):
                    os.remove(os.path.join(folder, name))
        if waited >= patience:
            break
    if progress:
        progress.on_train_end()
    if best_weights is not None:
        model.set_weights(best_weights)
    return history
