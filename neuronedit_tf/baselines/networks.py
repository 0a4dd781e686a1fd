"""What the trained baselines share: settings, the paper's networks, and seeded minibatches.

The paper (section 3): dense layers 500-250-50-250-500 for tables; for images
stride-2 4x4 convolutions with 64-128-256-128-64 filters; LeakyReLU 0.2;
minibatches of 100; Adam with learning rate 0.001. Generators reuse the
autoencoders of :mod:`neuronedit_tf.models`; discriminators are their encoders
followed by one logit.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from neuronedit_tf import models
from neuronedit_tf.baselines.base import Baseline, optional
from neuronedit_tf.estimator import TRAINING, Renamed
from neuronedit_tf.errors import NeuronEditError

LEAK = 0.2


class NetworkBaseline(Baseline):
    """A baseline with a trained network; ``self.model_`` is one raw -> raw Keras graph.

    Args:
        model: ``"dense"`` (tables) or ``"conv"`` (images ``(n, H, W[, C])``).
        hidden: encoder widths of dense networks (paper: 500, 250, 50).
        filters: filters of conv networks (paper: 64, 128, 256).
        epochs: passes over the source set.
        batch_size: minibatch size (paper: 100).
        learning_rate: Adam's learning rate (paper: 1e-3).
        verbose: print one line per epoch.
        deterministic: make TensorFlow's ops deterministic (slower).
        transform, cofactor, seed: see :class:`~neuronedit_tf.baselines.base.Baseline`.
    """

    supports_images = True
    min_rows = 2

    def __init__(self, model="dense", hidden=(500, 250, 50), filters=(64, 128, 256),
                 epochs=TRAINING["epochs"], batch_size=TRAINING["batch_size"],
                 learning_rate=TRAINING["learning_rate"], verbose=False,
                 deterministic=TRAINING["deterministic"], transform="none", cofactor=5.0, seed=0):
        super().__init__(transform=transform, cofactor=cofactor, seed=seed)
        if model not in ("dense", "conv"):
            raise NeuronEditError(f"model must be 'dense' or 'conv'; got {model!r}.")
        if not (int(epochs) >= 1 and int(batch_size) >= 1 and learning_rate > 0):
            raise NeuronEditError(
                "epochs and batch_size must be positive integers and learning_rate positive."
            )
        tuple(int(h) for h in hidden), tuple(int(f) for f in filters)  # numbers, or fail here
        self.model = model
        self.hidden = hidden
        self.filters = filters
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.verbose = verbose
        self.deterministic = deterministic

    architecture = Renamed("model")

    def get_config(self):
        config = super().get_config()
        config.update(model=self.model, hidden=[int(h) for h in self.hidden],
                      filters=[int(f) for f in self.filters], epochs=int(self.epochs),
                      batch_size=int(self.batch_size), learning_rate=float(self.learning_rate),
                      verbose=bool(self.verbose), deterministic=bool(self.deterministic))
        return config

    def _detect_images(self, source):
        shape = np.shape(source) if hasattr(source, "shape") else None
        given_images = shape is not None and len(shape) in (3, 4) and not hasattr(source, "columns")
        if self.model == "conv" and not given_images:
            raise NeuronEditError(
                f"model='conv' needs images (n, H, W[, C]); got {shape}. Use model='dense' "
                "for tables."
            )
        if self.model == "dense" and given_images:
            raise NeuronEditError(
                f"model='dense' takes tables; got images of shape {shape}. Use model='conv'."
            )
        return self.model == "conv"

    def _fit_values(self, source, target, extra=None):
        if self.deterministic:
            tf.config.experimental.enable_op_determinism()
        self._fit_network(source, target, extra)

    def _fit_network(self, source, target, extra):
        raise NotImplementedError

    # ----------------------------------------------------------- networks
    def autoencoder(self, seed_offset=0):
        """The paper's autoencoder for this data (a generator maps a point to a point)."""
        seed = self.seed + 1000 * seed_offset
        if self.model == "conv":
            return models.conv_autoencoder(self.sample_shape_, self.filters, LEAK, seed=seed)
        return models.dense_autoencoder(self.sample_shape_[0], self.hidden, LEAK, seed=seed)

    def discriminator(self, seed_offset=0, name="discriminator"):
        """The autoencoder's encoder (dense 500-250-50 or conv 64-128-256) and one logit."""
        seed = self.seed + 1000 * seed_offset
        init = keras.initializers.GlorotUniform
        inputs = keras.Input(self.sample_shape_, name="standardised")
        x = inputs
        if self.model == "conv":
            for i, units in enumerate(self.filters):
                x = keras.layers.Conv2D(units, 4, strides=2, padding="same",
                                        kernel_initializer=init(seed + i))(x)
                x = keras.layers.LeakyReLU(LEAK)(x)
            x = keras.layers.Flatten()(x)
        else:
            for i, units in enumerate(self.hidden):
                x = keras.layers.Dense(units, kernel_initializer=init(seed + i))(x)
                x = keras.layers.LeakyReLU(LEAK)(x)
        logit = keras.layers.Dense(1, kernel_initializer=init(seed + 99), name="logit")(x)
        return keras.Model(inputs, logit, name=name)

    #: Adam's first-moment decay; GANs use 0.5 (DCGAN, CycleGAN), the rest Keras' 0.9.
    beta_1 = 0.9

    def optimizer(self, variables):
        """Adam for ``variables``, its slots created now so the training step traces once."""
        optimizer = keras.optimizers.Adam(self.learning_rate, beta_1=self.beta_1)
        optimizer.build(variables)
        return optimizer

    # ------------------------------------------------------------ training
    def batches(self, rng, *arrays):
        """One epoch of minibatches: each step draws ``batch_size`` rows from every array.

        The epoch walks a fresh permutation of the first array; the others are
        sampled by their own permutations (cycled if shorter), so S and T (and
        X) of different sizes are paired row for row, unpaired in content.
        """
        n_steps = int(np.ceil(len(arrays[0]) / self.batch_size))
        orders = []
        for array in arrays:
            needed = n_steps * self.batch_size
            repeats = int(np.ceil(needed / len(array)))
            orders.append(np.concatenate([rng.permutation(len(array)) for _ in range(repeats)]))
        for step in range(n_steps):
            window = slice(step * self.batch_size, (step + 1) * self.batch_size)
            if step == n_steps - 1 and len(arrays[0]) % self.batch_size:
                window = slice(step * self.batch_size, len(arrays[0]))
            yield tuple(tf.constant(a[o[window]]) for a, o in zip(arrays, orders))

    def record(self, history, epoch, **values):
        for key, value in values.items():
            history.setdefault(key, []).append(float(value))
        if self.verbose:
            shown = ", ".join(f"{k} {float(v):.4f}" for k, v in values.items())
            print(f"{self.name} epoch {epoch + 1}/{self.epochs}: {shown}")


def frechet_distance(a, b):
    """Fréchet distance between two sets of rows (their Gaussian fits), from TF-GAN.

    ``tfgan.eval.frechet_classifier_distance_from_activations`` on the rows
    themselves (flattened): the FID formula with the data as "activations".
    """
    tfgan = optional("neuronedit_tf.baselines.tfgan_compat", "gan").tfgan

    a = tf.reshape(tf.cast(a, tf.float64), [tf.shape(a)[0], -1])
    b = tf.reshape(tf.cast(b, tf.float64), [tf.shape(b)[0], -1])
    return float(tfgan.eval.frechet_classifier_distance_from_activations(a, b))
