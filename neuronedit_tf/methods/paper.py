"""``"paper"``: the paper's neuron editing (§2), ``X' = D(NeuronEdit(E(X)))``.

The percentile maps are adapted from ``E(S)`` to ``E(T)`` at the edited layer, on the
paper's 101 knots (0..100); the only method for images.
"""

from __future__ import annotations

import keras

from neuronedit_tf.methods.base import EditMethod


def decoded_edit(sample_shape, pieces, edit):
    """``(features, standardised, latent, decoded)``: the input, ``pre(x)``, ``E(pre(x))``
    and ``D(edit(E(pre(x))))``, the start every method's graph shares."""
    features = keras.Input(sample_shape, name="features")
    standardised = pieces.pre(features)
    latent = pieces.encoder(standardised)
    return features, standardised, latent, pieces.decoder(edit(latent))


class Paper(EditMethod):
    """``post(D(edit(E(pre(x)))))``: the served graph is encode -> edit -> decode."""

    name = "paper"
    handles_images = True
    serves_chain = True

    def assemble(self, sample_shape, pieces, edit, parts, name="neuron_editor"):
        features, _, _, decoded = decoded_edit(sample_shape, pieces, edit)
        return keras.Model(features, pieces.post(decoded), name=name)
