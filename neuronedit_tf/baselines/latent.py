"""Edits in a latent space other than neuron editing's: Constant Shift and PCA editing.

* Constant Shift (latent vector arithmetic, as scGen does; paper section 3):
  the autoencoder NeuronEditor trains, with the mean latent difference
  ``mean E(T) - mean E(S)`` added to X's latent codes instead of the percentile map.
* PCA editing (paper Figure 2b): the NeuronEdit percentile map applied to
  principal components (scikit-learn's PCA) instead of to neurons.
"""

from __future__ import annotations

import keras
import numpy as np

from neuronedit_tf import models
from neuronedit_tf.baselines.base import Baseline, optional
from neuronedit_tf.baselines.networks import NetworkBaseline
from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.estimator import TRAINING
from neuronedit_tf.layers import DEFAULT_QUANTILES, NeuronEdit


class ConstantShift(NetworkBaseline):
    """Latent vector arithmetic: ``D(E(X) + mean E(T) - mean E(S))``.

    Trains exactly the autoencoder a :class:`~neuronedit_tf.NeuronEditor` with
    the same settings trains (on S, T and X, early stopping on a held-out
    split), then adds one constant vector, the mean difference of T's and S's
    codes at ``layer``, to X's codes and decodes. For conv models the shift has
    the latent map's full shape.

    Args:
        layer: the latent layer (default: the bottleneck).
        validation_split, patience: NeuronEditor's early stopping.
        model, hidden, filters, epochs, batch_size, learning_rate, verbose,
        deterministic, transform, cofactor, seed: see
            :class:`~neuronedit_tf.baselines.networks.NetworkBaseline`.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> s = rng.normal(size=(300, 4)); x = rng.normal(size=(300, 4)) + 1
        >>> fitted = ConstantShift(hidden=(16, 8), epochs=2).fit(s, s + 1, extra=x)
        >>> fitted.transform(x).shape
        (300, 4)
    """

    name = "constant_shift"
    description = "mean latent difference T - S added to X's codes (latent vector arithmetic)"

    def __init__(self, layer=models.BOTTLENECK, validation_split=TRAINING["validation_split"],
                 patience=TRAINING["patience"], **kwargs):
        super().__init__(**kwargs)
        self.layer = layer
        self.validation_split = float(validation_split)
        self.patience = int(patience)

    def get_config(self):
        config = super().get_config()
        config.update(layer=self.layer, validation_split=self.validation_split,
                      patience=self.patience)
        return config

    def _fit_network(self, source, target, extra):
        from neuronedit_tf.editor import NeuronEditor

        custom = None
        if self.model == "conv":
            custom = self.autoencoder()
        editor = NeuronEditor(
            model=custom if custom is not None else "dense", layer=self.layer,
            transform=self.transform_name, cofactor=self.cofactor, hidden=self.hidden,
            seed=self.seed, learning_rate=self.learning_rate,
        )
        editor.fit(source, target, extra=extra, epochs=self.epochs, batch_size=self.batch_size,
                   validation_split=self.validation_split, patience=self.patience,
                   verbose=2 if self.verbose else 0, deterministic=self.deterministic)
        self.history_ = editor.history_
        pre, encoder = editor.part("preprocessing"), editor.part("encoder")
        decoder, post = editor.part("decoder"), editor.part("postprocessing")
        codes = [models.run(encoder, models.run(pre, v)) for v in (source, target)]
        shift = (codes[1].astype(np.float64).mean(0) - codes[0].astype(np.float64).mean(0))
        features = keras.Input(self.sample_shape_, name="features")
        moved = keras.layers.Rescaling(1.0, offset=shift.astype(np.float32).tolist(),
                                       name="latent_shift")(encoder(pre(features)))
        self.model_ = keras.Model(features, post(decoder(moved)), name="constant_shift")


class PCAEdit(Baseline):
    """Neuron editing's percentile map on principal components instead of neurons.

    Standardises S, T and X together (per feature; arcsinh first if asked),
    fits scikit-learn's ``PCA(n_components)`` on all three (as the autoencoder
    is trained on all three), adapts :class:`~neuronedit_tf.layers.NeuronEdit`
    on S's and T's component scores, and maps X's scores, then back through the
    components. With fewer components than features the part of X outside
    them is lost, as an autoencoder's reconstruction loses detail. The fitted
    graph (fixed PCA weights, the NeuronEdit layer) is raw -> raw.

    Args:
        n_components: principal components kept (default 50, at most the number
            of features and of rows).
        quantiles, extrapolation: the map's, see :class:`~neuronedit_tf.layers.NeuronEdit`.
        transform, cofactor, seed: see :class:`~neuronedit_tf.baselines.base.Baseline`.

    Example:
        >>> import numpy as np
        >>> s = np.random.default_rng(0).normal(size=(400, 3))
        >>> PCAEdit().fit(s, s + 1).transform(s).shape
        (400, 3)
    """

    name = "pca_edit"
    description = "NeuronEdit percentile map on principal components (sklearn PCA)"
    supports_images = True

    def __init__(self, n_components=50, quantiles=DEFAULT_QUANTILES, extrapolation="shift",
                 transform="none", cofactor=5.0, seed=0):
        super().__init__(transform=transform, cofactor=cofactor, seed=seed)
        if int(n_components) < 1:
            raise NeuronEditError(f"n_components must be at least 1; got {n_components}.")
        NeuronEdit(quantiles=quantiles, extrapolation=extrapolation)
        self.n_components = int(n_components)
        self.quantiles = quantiles
        self.extrapolation = extrapolation

    @property
    def min_rows(self):
        return len(self.quantiles)

    def get_config(self):
        config = super().get_config()
        config.update(n_components=self.n_components, quantiles=[float(q) for q in self.quantiles],
                      extrapolation=self.extrapolation)
        return config

    def _fit_values(self, source, target, extra=None):
        PCA = optional("sklearn.decomposition", "baselines").PCA
        given = [v for v in (source, target, extra) if v is not None]
        pre, post = self._processing(np.concatenate(given))
        flat = int(np.prod(self.sample_shape_))
        standardised = [models.run(pre, v).reshape(len(v), flat) for v in given]
        everything = np.concatenate(standardised)
        n_components = min(self.n_components, flat, len(everything))
        pca = PCA(n_components, random_state=self.seed).fit(everything)
        components = pca.components_.astype(np.float32)  # (k, flat)
        offset = pca.mean_.astype(np.float32)
        edit = NeuronEdit([float(q) for q in self.quantiles], self.extrapolation,
                          name="neuron_edit")
        edit.adapt(*((v - offset) @ components.T for v in standardised[:2]))

        features = keras.Input(self.sample_shape_, name="features")
        x = keras.layers.Reshape((flat,))(pre(features))
        project = keras.layers.Dense(n_components, trainable=False, name="pca_scores")
        x = project(x)
        project.set_weights([components.T, -offset @ components.T])
        x = edit(x)
        back = keras.layers.Dense(flat, trainable=False, name="pca_inverse")
        x = back(x)
        back.set_weights([components, offset])
        x = keras.layers.Reshape(self.sample_shape_)(x)
        self.model_ = keras.Model(features, post(x), name="pca_edit")
