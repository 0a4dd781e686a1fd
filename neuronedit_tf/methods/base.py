"""What every edit method is: an object that turns the fitted pieces into one Keras graph.

A method (one module in this package, one line in its registry) owns its default knots,
whether it takes images, which layers of its own it adapts at fit, and how it assembles its
graph, raw values in and raw values out, from the autoencoder's pieces, the neuron edit and
those layers. ``NeuronEditor.fit`` calls :meth:`EditMethod.fit_graph`; the export calls
:meth:`EditMethod.assemble` with its own (frozen) versions of the same layers.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np

from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.layers import DEFAULT_QUANTILES
from neuronedit_tf.models import run


class Pieces(NamedTuple):
    """The fitted autoencoder's parts, raw -> standardised -> latent -> standardised -> raw."""

    pre: object
    encoder: object
    decoder: object
    post: object


class EditMethod:
    """One edit formulation; subclasses set the attributes and override :meth:`adapt` and
    :meth:`graph` (or :meth:`assemble`, which then cannot be used in a study).

    Studies (:meth:`neuronedit_tf.NeuronEditor.fit_study`): every batch has its own neuron
    edit (its anchor's codes to the reference's), and a method that supports studies says
    which of its own layers are per-batch percentile maps on the standardised features
    (:meth:`study_maps`, their source values: :meth:`study_sources`; their target is always
    the reference's standardised anchor), which are shared by every batch
    (:meth:`study_shared`) and how its graph runs there (:meth:`study_graph`). The base
    class supports no study (``study_maps`` returns None).

    Attributes:
        name: the name ``NeuronEditor(method=...)`` and saved editors use.
        default_quantiles: the neuron edit's knots (percentiles) when none are given.
        handles_images: whether the graph applies to images ``(H, W, C)`` (else tables only).
        parts: names of the method's own layers in the fitted graph (e.g. ``"calibration"``),
            which the export takes from the fitted editor (a ``NeuronEdit`` frozen to a lookup).
        output_map: the part that is the graph's last percentile map (its slopes scale the
            export's parity check), or None when the decoder comes last.
        serves_chain: whether the served graph is exactly encode -> edit -> decode (the
            export's three endpoints chained).
        uses_autoencoder: whether the graph runs through the autoencoder (False for the
            data-space maps: ``fit`` then trains none, and the export serves
            ``serving_default`` alone).
    """

    name = None
    default_quantiles = DEFAULT_QUANTILES
    handles_images = False
    parts = ()
    output_map = None
    serves_chain = False
    uses_autoencoder = True

    def adapt(self, pieces, edit, source, target, extrapolation="shift", seed=0, codes=None):
        """The method's own layers, adapted: ``{part name: layer}`` (default: none).

        Args:
            pieces: the fitted :class:`Pieces`.
            edit: the :class:`~neuronedit_tf.layers.NeuronEdit` adapted from ``E(S)`` to ``E(T)``.
            source, target: standardised S and T (``pre`` applied), float32 ``(n, d)``.
            extrapolation: the editor's extrapolation (see ``NeuronEdit``).
            seed: seeds any subsample the method draws.
            codes: ``E(source)`` when the caller has it (the fit computed it for the edit's
                tables), so the encoder does not run over S again; None: computed here.
        """
        return {}

    def graph(self, features, pieces, edit, parts):
        """The edited raw output (a Keras tensor) of the raw input tensor ``features``.

        Args:
            features: a Keras input tensor ``(None, *sample_shape)``.
            pieces: :class:`Pieces`.
            edit: the neuron edit: a layer (``NeuronEdit``, the export's ``LookupEdit``) or any
                callable on a tensor (a study binds each row's batch to it).
            parts: ``{name: layer or callable}`` for every name in :attr:`parts`.
        """
        raise NotImplementedError(f"method {self.name!r} builds its graph in assemble() only.")

    def assemble(self, sample_shape, pieces, edit, parts, name="neuron_editor"):
        """The raw -> edited raw ``keras.Model`` from fitted pieces (nothing is adapted):
        :meth:`graph` on an input named ``features``.

        Args:
            sample_shape: one input row's shape, e.g. ``(d,)``.
            pieces: :class:`Pieces`.
            edit: the neuron edit layer (a ``NeuronEdit``, or the export's ``LookupEdit``).
            parts: ``{name: layer}`` for every name in :attr:`parts`.
            name: the model's name.
        """
        features = keras.Input(tuple(sample_shape), name="features")
        return keras.Model(features, self.graph(features, pieces, edit, parts), name=name)

    # ------------------------------------------------------------------ studies
    def study_maps(self):
        """``{part: knots}``: the method's layers that a study fits per batch, each a
        percentile map on the standardised features from :meth:`study_sources` to the
        reference's standardised anchor. None: the method cannot be fitted as a study."""
        return None

    def study_sources(self, pieces, edit, standardised):
        """For one batch: ``{part: values}``, the values whose percentiles are the source knots
        of each of :meth:`study_maps`.

        Args:
            pieces: the fitted :class:`Pieces`.
            edit: the batch's neuron edit (a ``NeuronEdit`` from its anchor's codes to the
                reference's).
            standardised: the batch's anchor, standardised (``pre`` applied), ``(n, d)``.
        """
        return {}

    def study_shared(self, pieces, codes, seed=0):
        """``{part: layer}``: the method's layers shared by every batch of a study, adapted on
        ``codes``, the anchors' codes in the reference frame (a seeded share of every
        anchor's codes, its batch's neuron edit applied; the reference batch's edit is the
        identity)."""
        return {}

    def study_graph(self, features, pieces, edit, parts):
        """:meth:`graph` as a study runs it (``edit`` and the per-batch parts are bound to
        each row's batch). Default: :meth:`graph`."""
        return self.graph(features, pieces, edit, parts)

    def fit_graph(self, sample_shape, pieces, edit, source, target, extrapolation="shift",
                  seed=0, codes=None):
        """Check the input kind, adapt the method's layers and assemble its graph
        (``keras.Model`` named ``neuron_editor``); ``codes``: as :meth:`adapt`."""
        if len(sample_shape) != 1 and not self.handles_images:
            raise NeuronEditError(
                f"method={self.name!r} calibrates each feature of tabular data; for images use "
                "method='paper'."
            )
        parts = self.adapt(pieces, edit, source, target, extrapolation, seed, codes)
        return self.assemble(sample_shape, pieces, edit, parts)

    @staticmethod
    def codes(pieces, source, codes=None):
        """``E(source)`` as float32 numpy: ``codes`` when given (see :meth:`adapt`), else the
        encoder run over ``source``."""
        if codes is not None:
            return np.asarray(codes, np.float32)
        return run(pieces.encoder, np.asarray(source, np.float32))

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"
