"""Neuron editing itself in the registry, so benchmarks iterate over every method alike."""

from __future__ import annotations

import json

from neuronedit_tf import models
from neuronedit_tf.baselines.networks import NetworkBaseline
from neuronedit_tf.estimator import TRAINING, Renamed
from neuronedit_tf.layers import DEFAULT_QUANTILES, NeuronEdit


class NeuronEditMethod(NetworkBaseline):
    """:class:`~neuronedit_tf.NeuronEditor` behind the baseline interface.

    ``fit`` trains a NeuronEditor on S, T and X with these settings (its fit
    options are constructor arguments here, as for every baseline) and
    ``transform`` is the editor's. The fitted editor is ``self.editor_``;
    ``self.model_`` is its raw -> raw graph, saved as ``model.keras``.

    Args:
        method: NeuronEditor's method (None: its default; ``"paper"``: the paper's graph).
        layer, quantiles, extrapolation: NeuronEditor's.
        validation_split, patience: its early stopping.
        model, hidden, filters, epochs, batch_size, learning_rate, verbose,
        deterministic, transform, cofactor, seed: see
            :class:`~neuronedit_tf.baselines.networks.NetworkBaseline`.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> s = rng.normal(size=(300, 4)); x = rng.normal(size=(300, 4)) + 1
        >>> fitted = NeuronEditMethod(hidden=(16, 8), epochs=2).fit(s, s + 1, extra=x)
        >>> fitted.transform(x).shape
        (300, 4)
    """

    name = "neuron_edit"
    description = "neuron editing: percentile map S -> T on an autoencoder's neurons (the paper)"

    def __init__(self, layer=models.BOTTLENECK, quantiles=DEFAULT_QUANTILES,
                 extrapolation="shift", validation_split=TRAINING["validation_split"],
                 patience=TRAINING["patience"], method=None, **kwargs):
        super().__init__(**kwargs)
        if method is not None:
            from neuronedit_tf.methods import check_method

            check_method(method)
        self.method = method
        self.layer = layer
        NeuronEdit(quantiles=quantiles, extrapolation=extrapolation)  # validates both
        self.quantiles = quantiles
        self.extrapolation = extrapolation
        self.validation_split = float(validation_split)
        self.patience = int(patience)

    editor_ = None  # the fitted NeuronEditor
    editor = Renamed("editor_")

    def get_config(self):
        config = super().get_config()
        config.update(layer=self.layer, quantiles=[float(q) for q in self.quantiles],
                      extrapolation=self.extrapolation, validation_split=self.validation_split,
                      patience=self.patience, method=self.method)
        return config

    @property
    def min_rows(self):
        return len(self.quantiles)

    def _editor(self):
        from neuronedit_tf.editor import NeuronEditor

        model = self.autoencoder() if self.model == "conv" else "dense"
        return NeuronEditor(model=model, method=self.method, layer=self.layer, quantiles=self.quantiles,
                            extrapolation=self.extrapolation, transform=self.transform_name,
                            cofactor=self.cofactor, hidden=self.hidden, seed=self.seed,
                            learning_rate=self.learning_rate)

    def _fit_network(self, source, target, extra):
        self.editor_ = self._editor().fit(
            source, target, extra=extra, epochs=self.epochs, batch_size=self.batch_size,
            validation_split=self.validation_split, patience=self.patience,
            verbose=2 if self.verbose else 0, deterministic=self.deterministic,
        )
        self.history_ = self.editor_.history_
        self.model_ = self.editor_.model_

    def _after_load(self):
        self.editor_ = self._editor()
        config = self.editor_.get_config()  # the resolved method and knots it was fitted with
        self.editor_.method_ = config["method"]
        self.editor_.quantiles_ = tuple(config["quantiles"])
        self.editor_.model_, self.editor_.columns_ = self.model_, self.columns_
        self.editor_.history_ = self.history_

    @classmethod
    def from_editor_folder(cls, path):
        """Wrap a folder written by ``NeuronEditor.save``."""
        from neuronedit_tf.editor import CONFIG_FILE, NeuronEditor

        editor = NeuronEditor.load(path)
        config = json.loads((path / CONFIG_FILE).read_text())["config"]
        wrapped = cls(method=config.get("method", "paper"), layer=config["layer"], quantiles=config["quantiles"],
                      extrapolation=config["extrapolation"], transform=config["transform"],
                      cofactor=config["cofactor"], hidden=config["hidden"],
                      seed=config["seed"], learning_rate=config["learning_rate"],
                      model="conv" if len(editor.model_.input.shape) == 4 else "dense")
        wrapped.editor_, wrapped.model_ = editor, editor.model_
        wrapped.columns_, wrapped.history_ = editor.columns_, editor.history_
        wrapped.sample_shape_ = tuple(editor.model_.input.shape[1:])
        wrapped._image_input = len(editor.model_.input.shape) == 4
        return wrapped
