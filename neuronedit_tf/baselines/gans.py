"""The generative baselines of the paper (section 3): GAN, CycleGAN, ResnetGAN, trained S -> T.

A generator maps a source point to a target point; a discriminator tells real
target points from generated ones. They see only S and T (a GAN has no real
target for X, which is the paper's point), and ``transform(X)`` is the
generator applied to X. Networks have the paper's sizes (dense 500-250-50-250-500,
conv 64-128-256-128-64 with stride-2 4x4 kernels, LeakyReLU 0.2; Adam 1e-3,
minibatches of 100; Adam's beta_1 = 0.5 as usual for GANs, since the paper
does not give it); see :mod:`~neuronedit_tf.baselines.networks`.

The adversarial losses are TF-GAN's (``tfgan.losses.wargs.*``, through
:mod:`~neuronedit_tf.baselines.tfgan_compat`), called eagerly inside a
``tf.function`` training step with ``tf.GradientTape``; TF-GAN's own
``gan_model``/``gan_train`` are graph-mode only and are not used. Every epoch
records the mean generator and discriminator losses, and how far G(S) is from
T on standardised values: the Fréchet distance (``tfgan.eval``) and the
squared distance of the means (entry 0: before training).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from neuronedit_tf import models
from neuronedit_tf.baselines.base import optional
from neuronedit_tf.baselines.networks import NetworkBaseline, frechet_distance
from neuronedit_tf.errors import NeuronEditError

#: loss name -> (generator loss, discriminator loss) names in ``tfgan.losses.wargs``.
LOSSES = {
    "modified": ("modified_generator_loss", "modified_discriminator_loss"),
    "minimax": ("minimax_generator_loss", "minimax_discriminator_loss"),
    "least_squares": ("least_squares_generator_loss", "least_squares_discriminator_loss"),
}


def adversarial_losses(loss):
    """TF-GAN's ``(generator_loss(fake_logits), discriminator_loss(real_logits, fake_logits))``."""
    tfgan = optional("neuronedit_tf.baselines.tfgan_compat", "gan").tfgan

    generator_name, discriminator_name = LOSSES[loss]
    wargs = tfgan.losses.wargs
    generator = getattr(wargs, generator_name)
    discriminator = getattr(wargs, discriminator_name)
    return (lambda fake: generator(fake, loss_collection=None),
            lambda real, fake: discriminator(real, fake, loss_collection=None))


class GAN(NetworkBaseline):
    """A GAN whose generator maps each source point to a target point.

    Generator: the paper's autoencoder architecture (input: a standardised
    source point; output: a standardised target point). Discriminator: its
    encoder and one logit. One discriminator step then one generator step per
    minibatch. S and T are standardised together; X is not used in fitting.

    Args:
        loss: TF-GAN loss pair: ``"modified"`` (non-saturating, default),
            ``"minimax"`` or ``"least_squares"``.
        model, hidden, filters, epochs, batch_size, learning_rate, verbose,
        deterministic, transform, cofactor, seed: see
            :class:`~neuronedit_tf.baselines.networks.NetworkBaseline`.

    Example:
        >>> import numpy as np
        >>> s = np.random.default_rng(0).normal(size=(300, 4))
        >>> GAN(hidden=(16, 8), epochs=2).fit(s, s + 1).transform(s).shape   # doctest: +SKIP
        (300, 4)
    """

    name = "gan"
    description = "GAN whose generator maps source points to target points (TF-GAN losses)"
    residual = False
    default_loss = "modified"
    beta_1 = 0.5

    def __init__(self, loss=None, **kwargs):
        super().__init__(**kwargs)
        if (self.default_loss if loss is None else loss) not in LOSSES:
            raise NeuronEditError(f"loss must be one of {tuple(LOSSES)}; got {loss!r}.")
        self.loss = loss

    def _resolved_loss(self):
        return self.default_loss if self.loss is None else self.loss

    def get_config(self):
        config = super().get_config()
        config.update(loss=self._resolved_loss())
        return config

    def generator(self, seed_offset=0, name="generator"):
        """The paper's autoencoder as a point-to-point map; ``x + f(x)`` if ``residual``."""
        network = self.autoencoder(seed_offset)
        if not self.residual:
            return network
        inputs = keras.Input(self.sample_shape_, name="standardised")
        return keras.Model(inputs, keras.layers.Add(name="residual")([inputs, network(inputs)]),
                           name=name)

    def _fit_network(self, source, target, extra):
        pre, post = self._processing(np.concatenate([source, target]))
        s, t = models.run(pre, source), models.run(pre, target)
        generator = self.generator(0)
        self.history_ = self._train(s, t, generator)
        features = keras.Input(self.sample_shape_, name="features")
        self.model_ = keras.Model(features, post(generator(pre(features))), name=self.name)

    def _train(self, s, t, generator):
        discriminator = self.discriminator(1)
        generator_loss, discriminator_loss = adversarial_losses(self._resolved_loss())
        g_optimizer = self.optimizer(generator.trainable_variables)
        d_optimizer = self.optimizer(discriminator.trainable_variables)

        @tf.function
        def step(source_batch, target_batch):
            with tf.GradientTape() as tape:
                fake = generator(source_batch, training=True)
                d_loss = discriminator_loss(discriminator(target_batch, training=True),
                                            discriminator(fake, training=True))
            variables = discriminator.trainable_variables
            d_optimizer.apply_gradients(zip(tape.gradient(d_loss, variables), variables))
            with tf.GradientTape() as tape:
                g_loss = generator_loss(
                    discriminator(generator(source_batch, training=True), training=True))
            variables = generator.trainable_variables
            g_optimizer.apply_gradients(zip(tape.gradient(g_loss, variables), variables))
            return g_loss, d_loss

        return self._loop(step, s, t, generator)

    def _loop(self, step, s, t, generator):
        rng = np.random.default_rng(self.seed)
        history = {}
        self.record(history, -1, **self._distances(generator, s, t))
        for epoch in range(self.epochs):
            losses = np.array([[float(v) for v in step(*batch)]
                               for batch in self.batches(rng, s, t)])
            values = dict(zip(self._loss_names, losses.mean(axis=0)))
            self.record(history, epoch, **values, **self._distances(generator, s, t))
        # The distances' first entry is before training; the losses' first is epoch 1.
        return history

    @staticmethod
    def _distances(generator, s, t):
        """How far G(S) is from T (standardised): Fréchet distance and squared mean distance."""
        generated = models.run(generator, s)
        mean_gap = generated.reshape(len(s), -1).mean(0) - t.reshape(len(t), -1).mean(0)
        return {"frechet_distance": frechet_distance(generated, t),
                "mean_distance": float(np.sum(mean_gap.astype(np.float64) ** 2))}

    _loss_names = ("generator_loss", "discriminator_loss")


class ResnetGAN(GAN):
    """:class:`GAN` whose generator is residual: ``G(x) = x + f(x)`` with ``f`` the
    paper's autoencoder architecture (Szegedy et al.'s residual connection; paper
    section 3: "generating residuals is not the same as editing")."""

    name = "resnetgan"
    description = "GAN with a residual generator x + f(x) (TF-GAN losses)"
    residual = True


class CycleGAN(GAN):
    """CycleGAN (Zhu et al. 2017): generators S -> T and T -> S, a discriminator for
    each side, and TF-GAN's cycle-consistency loss (L1) with weight ``cycle_weight``.

    ``transform(X)`` is the S -> T generator. Least-squares adversarial losses by
    default, as in the CycleGAN paper. History adds ``cycle_loss``.

    Args:
        cycle_weight: weight of the cycle-consistency loss (CycleGAN: 10).
        loss: ``"least_squares"`` (default), ``"modified"`` or ``"minimax"``.
        **kwargs: see :class:`GAN`.
    """

    name = "cyclegan"
    description = "CycleGAN: S->T and T->S generators with cycle consistency (TF-GAN losses)"
    default_loss = "least_squares"

    def __init__(self, cycle_weight=10.0, **kwargs):
        super().__init__(**kwargs)
        self.cycle_weight = float(cycle_weight)

    def get_config(self):
        config = super().get_config()
        config.update(cycle_weight=self.cycle_weight)
        return config

    _loss_names = ("generator_loss", "discriminator_loss", "cycle_loss")

    def _train(self, s, t, generator):
        tfgan = optional("neuronedit_tf.baselines.tfgan_compat", "gan").tfgan

        backward = self.generator(2, name="generator_backward")
        d_target, d_source = self.discriminator(1), self.discriminator(3, "discriminator_source")
        generator_loss, discriminator_loss = adversarial_losses(self._resolved_loss())
        cycle_consistency = tfgan.losses.wargs.cycle_consistency_loss
        weight = tf.constant(self.cycle_weight, tf.float32)
        generators = [generator, backward]
        discriminators = [d_target, d_source]
        g_optimizer = self.optimizer([v for g in generators for v in g.trainable_variables])
        d_optimizer = self.optimizer([v for d in discriminators for v in d.trainable_variables])

        @tf.function
        def step(source_batch, target_batch):
            with tf.GradientTape() as tape:
                fake_target = generator(source_batch, training=True)
                fake_source = backward(target_batch, training=True)
                d_loss = (discriminator_loss(d_target(target_batch, training=True),
                                             d_target(fake_target, training=True))
                          + discriminator_loss(d_source(source_batch, training=True),
                                               d_source(fake_source, training=True)))
            variables = [v for d in discriminators for v in d.trainable_variables]
            d_optimizer.apply_gradients(zip(tape.gradient(d_loss, variables), variables))
            with tf.GradientTape() as tape:
                fake_target = generator(source_batch, training=True)
                fake_source = backward(target_batch, training=True)
                adversarial = (generator_loss(d_target(fake_target, training=True))
                               + generator_loss(d_source(fake_source, training=True)))
                cycle = cycle_consistency(source_batch, backward(fake_target, training=True),
                                          target_batch, generator(fake_source, training=True))
                g_loss = adversarial + weight * cycle
            variables = [v for g in generators for v in g.trainable_variables]
            g_optimizer.apply_gradients(zip(tape.gradient(g_loss, variables), variables))
            return g_loss, d_loss, cycle

        return self._loop(step, s, t, generator)
