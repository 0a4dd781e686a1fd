"""NeuronEditor: the one pipeline. fit(S, T, extra=X) -> transform(X) -> save/load/export."""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from neuronedit_tf import models
from neuronedit_tf.data.atomic import atomic_folder
from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.estimator import Estimator
from neuronedit_tf.layers import DEFAULT_QUANTILES, NeuronEdit

CONFIG_FILE = "neuronedit.json"
MODEL_FILE = "model.keras"


class NeuronEditor(Estimator):
    """Transform data the way a source set became a target set (neuron editing).

    Trains an autoencoder on S, T and X together, maps the percentiles of S's
    activations at ``layer`` onto T's (``NeuronEdit``), and decodes edited
    activations. The whole path, raw values in and raw values out, is one Keras
    model (``self.model``), saved, loaded and exported as one graph.

    Args:
        model: ``"dense"`` (the paper's 500-250-50 autoencoder), ``"conv"``
            (stride-2 4x4 convolutions, for images), or a chain ``keras.Model``
            mapping standardised inputs to their reconstruction.
        layer: the inner layer whose activations are edited (default: the
            ``"bottleneck"``).
        quantiles: the percentiles that define the map (default 0..100).
        extrapolation: ``"shift"`` (default), ``"clip"`` or ``"linear"``;
            see :class:`~neuronedit_tf.layers.NeuronEdit`.
        transform: ``"none"`` or ``"arcsinh"`` (cytometry), applied in the graph
            before standardisation and inverted exactly after decoding.
        cofactor: the arcsinh cofactor (5 for CyTOF, 150 for flow cytometry).
        hidden: encoder widths of the dense model.
        seed: seeds weights, shuffling and the validation split.
        learning_rate: Adam's learning rate (paper: 1e-3).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> source = rng.normal(size=(600, 4)).astype("float32")
        >>> target = source + [1.0, 0.0, 0.0, 0.0]
        >>> extra = rng.normal(size=(600, 4)).astype("float32") + [0.0, 2.0, 0.0, 0.0]
        >>> editor = NeuronEditor(hidden=(32, 16, 8)).fit(source, target, extra=extra,
        ...                                               epochs=5, verbose=0)
        >>> editor.transform(extra).shape
        (600, 4)
    """

    def __init__(
        self,
        model="dense",
        layer=models.BOTTLENECK,
        quantiles=DEFAULT_QUANTILES,
        extrapolation="shift",
        transform="none",
        cofactor=5.0,
        hidden=(500, 250, 50),
        seed=0,
        learning_rate=1e-3,
    ):
        if not (isinstance(model, keras.Model) or model in ("dense", "conv")):
            raise NeuronEditError(
                f"model must be 'dense', 'conv' or a keras.Model; got {model!r}."
            )
        if transform not in models.TRANSFORMS:
            raise NeuronEditError(
                f"transform must be one of {models.TRANSFORMS}; got {transform!r}."
            )
        NeuronEdit(quantiles=quantiles, extrapolation=extrapolation)  # validates both
        self.architecture = model
        self.layer = layer
        self.quantiles = tuple(float(q) for q in quantiles)
        self.extrapolation = extrapolation
        self.transform_name = transform
        self.cofactor = float(cofactor)
        self.hidden = tuple(int(h) for h in hidden)
        self.seed = int(seed)
        self.learning_rate = float(learning_rate)
        self.columns = None
        self.model = None
        self.history = None

    # ------------------------------------------------------------------ inputs
    @property
    def images(self):
        if isinstance(self.architecture, keras.Model):
            return len(self.architecture.input.shape) == 4
        return self.architecture == "conv"

    # ---------------------------------------------------------------- training
    def fit(
        self,
        source,
        target,
        extra=None,
        epochs=200,
        batch_size=100,
        validation_split=0.1,
        patience=10,
        verbose="auto",
        checkpoint_dir=None,
        deterministic=False,
    ):
        """Train the autoencoder on S ∪ T ∪ X and adapt the edit from S to T.

        Args:
            source: S, the set before the transformation: ``(n_S, d)`` numpy
                array, DataFrame, FCSData or file path (images: ``(n, H, W[, C])``).
            target: T, the same cells/kind of samples after it (same columns;
                reordered named columns are matched by name).
            extra: X, data to be edited later; seen in training (the paper).
            epochs: the most epochs; early stopping usually ends sooner.
            batch_size: minibatch size (paper: 100).
            validation_split: share of rows held out for early stopping.
            patience: epochs without validation improvement before stopping.
            verbose: Keras verbosity (``"auto"`` shows a progress bar).
            checkpoint_dir: if given, training resumes from here after a crash
                (``keras.callbacks.BackupAndRestore``).
            deterministic: make TensorFlow's ops deterministic (slower).

        Returns:
            self.
        """
        tables, columns = self._fit_tables(source, target, extra)
        n_knots = len(self.quantiles)
        for table, name in zip(tables[:2], ("source", "target")):
            if len(table) < n_knots:
                raise NeuronEditError(
                    f"{name} has {len(table)} rows, fewer than the {n_knots} quantiles of the map; "
                    "give it more rows or fewer quantiles (e.g. quantiles=range(0, 101, 10))."
                )
        if not 0 < validation_split < 1:
            raise NeuronEditError(f"validation_split must be in (0, 1); got {validation_split}.")
        if not (int(epochs) >= 1 and int(batch_size) >= 1):
            raise NeuronEditError("epochs and batch_size must be positive integers.")

        keras.utils.set_random_seed(self.seed)
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        self.columns = columns
        sample_shape = tables[0].values.shape[1:]
        everything = np.concatenate([t.values for t in tables])
        transformed = models.transform_values(everything, self.transform_name, self.cofactor)
        if not np.all(np.isfinite(transformed)):
            raise NeuronEditError("The transform produced non-finite values; check the input.")
        mean, variance = models.standardisation_stats(transformed.reshape(-1, sample_shape[-1]))
        pre = models.preprocessing(sample_shape, mean, variance, self.transform_name, self.cofactor)
        post = models.postprocessing(sample_shape, mean, variance, self.transform_name, self.cofactor)

        autoencoder = self._build_autoencoder(sample_shape)
        standardised = models.run(pre, everything)
        order = np.random.default_rng(self.seed).permutation(len(standardised))
        n_validation = max(1, int(round(validation_split * len(order))))
        validation, training = standardised[order[:n_validation]], standardised[order[n_validation:]]
        autoencoder.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="mse")
        callbacks = [
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=patience, restore_best_weights=True
            )
        ]
        if checkpoint_dir is not None:
            callbacks.append(keras.callbacks.BackupAndRestore(os.fspath(checkpoint_dir)))
        history = autoencoder.fit(
            training, training, validation_data=(validation, validation), epochs=int(epochs),
            batch_size=int(batch_size), shuffle=True, callbacks=callbacks, verbose=verbose,
        )
        self.history = {k: [float(v) for v in vs] for k, vs in history.history.items()}

        encoder, decoder = models.split_at(autoencoder, self.layer)
        edit = NeuronEdit(self.quantiles, self.extrapolation, name="neuron_edit")
        edit.adapt(
            models.run(encoder, models.run(pre, tables[0].values)),
            models.run(encoder, models.run(pre, tables[1].values)),
        )
        features = keras.Input(sample_shape, name="features")
        edited = post(decoder(edit(encoder(pre(features)))))
        self.model = keras.Model(features, edited, name="neuron_editor")
        return self

    def _build_autoencoder(self, sample_shape):
        if isinstance(self.architecture, keras.Model):
            return self.architecture
        if self.architecture == "conv":
            return models.conv_autoencoder(sample_shape, seed=self.seed)
        return models.dense_autoencoder(sample_shape[0], self.hidden, seed=self.seed)

    # --------------------------------------------------------------- inference
    def _require_fitted(self):
        if self.model is None:
            raise NeuronEditError("This NeuronEditor is not fitted; call fit() or load() first.")

    def part(self, name):
        """A piece of the fitted graph: ``"preprocessing"``, ``"encoder"``,
        ``"neuron_edit"``, ``"decoder"`` or ``"postprocessing"``."""
        self._require_fitted()
        return self.model.get_layer(name)

    def _predict(self, data, name, graph):
        self._require_fitted()
        return self._apply(data, name, lambda values: models.run(graph, values),
                           sample_shape=tuple(self.model.input.shape[1:]))

    def transform(self, data):
        """Edit ``data`` (X, or any later data) without retraining.

        Returns the same kind as given (DataFrame keeps its index and column
        order as the model's; FCSData keeps every channel and keyword), rows in
        input order.
        """
        return self._predict(data, "data", self.model)

    def reconstruct(self, data):
        """The autoencoder's reconstruction of ``data`` with no edit (for diagnostics)."""
        self._require_fitted()
        features = self.model.input
        plain = keras.Model(
            features,
            self.part("postprocessing")(self.part("decoder")(
                self.part("encoder")(self.part("preprocessing")(features)))),
        )
        return self._predict(data, "data", plain)

    # ------------------------------------------------------------ persistence
    def get_config(self):
        architecture = self.architecture if isinstance(self.architecture, str) else "custom"
        return {
            "model": architecture,
            "layer": self.layer,
            "quantiles": list(self.quantiles),
            "extrapolation": self.extrapolation,
            "transform": self.transform_name,
            "cofactor": self.cofactor,
            "hidden": list(self.hidden),
            "seed": self.seed,
            "learning_rate": self.learning_rate,
        }

    def save(self, path, overwrite=False):
        """Save to a folder: ``model.keras`` (the whole graph) and ``neuronedit.json``.

        The folder is written under a temporary name and renamed, so a failure
        leaves nothing behind. An existing folder is refused unless ``overwrite``.
        """
        self._require_fitted()
        path = Path(path)
        with atomic_folder(path, overwrite) as scratch:
            self.model.save(scratch / MODEL_FILE)
            state = {
                "format": 1,
                "config": self.get_config(),
                "columns": self.columns,
                "history": self.history,
                "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
            }
            (scratch / CONFIG_FILE).write_text(json.dumps(state, indent=2))
        return path

    @classmethod
    def load(cls, path):
        """Load a saved editor. Uses Keras ``safe_mode`` (no code is executed)."""
        path = Path(path)
        config_file, model_file = path / CONFIG_FILE, path / MODEL_FILE
        if not (config_file.exists() and model_file.exists()):
            raise NeuronEditError(
                f"{path} is not a saved NeuronEditor (needs {CONFIG_FILE} and {MODEL_FILE})."
            )
        try:
            state = json.loads(config_file.read_text())
        except json.JSONDecodeError as error:
            raise NeuronEditError(f"{config_file} is not valid JSON: {error}.") from None
        config = dict(state["config"])
        if config["model"] == "custom":
            config["model"] = "dense"  # the trained graph is loaded below; the name is moot
        editor = cls(**config)
        custom = {"NeuronEdit": NeuronEdit, "Arcsinh": models.Arcsinh}
        editor.model = keras.saving.load_model(model_file, custom_objects=custom, safe_mode=True)
        editor.columns = state.get("columns")
        editor.history = state.get("history")
        return editor

    def export(self, path, format="saved_model", overwrite=False, verify=True):
        """Write the fitted graph raw -> edited raw for serving; see :mod:`neuronedit_tf.export`."""
        from neuronedit_tf.export import export_editor

        self._require_fitted()
        return export_editor(self, path, format=format, overwrite=overwrite, verify=verify)
