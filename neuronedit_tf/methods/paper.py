"""``"paper"``: the paper's neuron editing (§2), ``X' = D(NeuronEdit(E(X)))``.

The percentile maps are adapted from ``E(S)`` to ``E(T)`` at the edited layer, on the
paper's 101 knots (0..100); the only method for images.
"""

from __future__ import annotations

import keras

from neuronedit_tf.methods.base import EditMethod


def edit_path(features, pieces, edit):
    """``(standardised, latent, edited, decoded)`` on the input tensor ``features``:
    ``pre(x)``, ``E(pre(x))``, ``edit(E(pre(x)))`` and ``D(edit(E(pre(x))))``, the start
    every method's graph shares."""
    standardised = pieces.pre(features)
    latent = pieces.encoder(standardised)
    edited = edit(latent)
    return standardised, latent, edited, pieces.decoder(edited)


def decoded_edit(sample_shape, pieces, edit):
    """``(features, standardised, latent, decoded)``: a new input named ``features``,
    ``pre(x)``, ``E(pre(x))`` and ``D(edit(E(pre(x))))`` (see :func:`edit_path`)."""
    features = keras.Input(tuple(sample_shape), name="features")
    standardised, latent, _, decoded = edit_path(features, pieces, edit)
    return features, standardised, latent, decoded


class Paper(EditMethod):
    """``post(D(edit(E(pre(x)))))``: the served graph is encode -> edit -> decode. In a study,
    each batch's edit maps its anchor's codes onto the reference's."""

    name = "paper"
    handles_images = True
    serves_chain = True

    def graph(self, features, pieces, edit, parts):
        return pieces.post(edit_path(features, pieces, edit)[3])

    def study_maps(self):
        return {}
