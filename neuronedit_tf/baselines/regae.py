"""The regularised autoencoder (RegAE): the transformation done in training, not at inference.

Amodio et al. 2018 (SAUCIE's batch correction): the paper's autoencoder
trained on S, T and X with its reconstruction error plus a maximum mean
discrepancy (MMD) penalty between S's and T's codes at the bottleneck, so the
latent layer cannot tell the two apart. X is then passed through the whole
autoencoder. As the paper finds (section 3.2), the decoder learns to undo the
latent alignment, so the output stays close to the input.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from neuronedit_tf import models
from neuronedit_tf.baselines.networks import NetworkBaseline

#: Kernel widths of the MMD, as multiples of the code dimension (``exp(-|a-b|^2 / (w * dim))``).
MMD_WIDTHS = (0.1, 1.0, 10.0)


def mmd(a, b, widths=MMD_WIDTHS):
    """Squared maximum mean discrepancy between rows of ``a`` and ``b`` (biased estimate).

    A sum of Gaussian kernels ``exp(-|x - y|^2 / (w * dim))`` over ``widths``;
    leading axes beyond the first are flattened (conv feature maps).

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(200, 5)).astype("float32")
        >>> float(mmd(x, x)) == 0.0 and float(mmd(x, x + 3.0)) > 0.1
        True
    """
    a = tf.reshape(tf.convert_to_tensor(a, tf.float32), [tf.shape(a)[0], -1])
    b = tf.reshape(tf.convert_to_tensor(b, tf.float32), [tf.shape(b)[0], -1])
    dim = tf.cast(tf.shape(a)[1], tf.float32)

    def kernel(x, y):
        squared = (tf.reduce_sum(x * x, 1)[:, None] - 2.0 * tf.matmul(x, y, transpose_b=True)
                   + tf.reduce_sum(y * y, 1)[None, :])
        squared = tf.maximum(squared, 0.0)
        return tf.add_n([tf.exp(-squared / (w * dim)) for w in widths])

    return (tf.reduce_mean(kernel(a, a)) + tf.reduce_mean(kernel(b, b))
            - 2.0 * tf.reduce_mean(kernel(a, b)))


class RegAE(NetworkBaseline):
    """The paper's autoencoder trained with an MMD penalty between S and T at the bottleneck.

    Loss per step: mean squared reconstruction error on a minibatch of S, T
    and X (standardised together) + ``mmd_weight`` x MMD between a minibatch
    of S's codes and one of T's. ``transform(X)`` is the trained autoencoder's
    output for X. History: ``reconstruction``, ``mmd`` (per-epoch means).

    Args:
        mmd_weight: weight of the MMD penalty.
        model, hidden, filters, epochs, batch_size, learning_rate, verbose,
        deterministic, transform, cofactor, seed: see
            :class:`~neuronedit_tf.baselines.networks.NetworkBaseline`.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> s = rng.normal(size=(300, 4)); x = rng.normal(size=(300, 4)) + 1
        >>> RegAE(hidden=(16, 8), epochs=2).fit(s, s + 1, extra=x).transform(x).shape
        (300, 4)
    """

    name = "regae"
    description = "autoencoder trained with an MMD penalty between S and T latent codes"

    def __init__(self, mmd_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.mmd_weight = float(mmd_weight)

    def get_config(self):
        config = super().get_config()
        config.update(mmd_weight=self.mmd_weight)
        return config

    def _fit_network(self, source, target, extra):
        given = [v for v in (source, target, extra) if v is not None]
        pre, post = self._processing(np.concatenate(given))
        s, t = models.run(pre, source), models.run(pre, target)
        everything = np.concatenate([models.run(pre, v) for v in given])
        autoencoder = self.autoencoder()
        both = keras.Model(autoencoder.input,
                           [autoencoder.get_layer(models.BOTTLENECK).output, autoencoder.output])
        optimizer = self.optimizer(both.trainable_variables)
        weight = tf.constant(self.mmd_weight, tf.float32)

        @tf.function
        def step(batch, source_batch, target_batch):
            with tf.GradientTape() as tape:
                _, reconstruction = both(batch, training=True)
                source_codes, _ = both(source_batch, training=True)
                target_codes, _ = both(target_batch, training=True)
                error = tf.reduce_mean(tf.square(reconstruction - batch))
                penalty = mmd(source_codes, target_codes)
                loss = error + weight * penalty
            variables = both.trainable_variables
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return error, penalty

        rng = np.random.default_rng(self.seed)
        history = {}
        for epoch in range(self.epochs):
            losses = np.array([[float(v) for v in step(*batch)]
                               for batch in self.batches(rng, everything, s, t)])
            self.record(history, epoch, reconstruction=losses[:, 0].mean(),
                        mmd=losses[:, 1].mean())
        self.history_ = history
        features = keras.Input(self.sample_shape_, name="features")
        self.model_ = keras.Model(features, post(autoencoder(pre(features))), name="regae")
