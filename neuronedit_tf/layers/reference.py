"""The base of the layers that hold reference codes (:class:`SupportGate`, :class:`ReferenceCodes`).

Their ``reference`` weight ``(n_reference, n_neurons)`` gets its shape from the codes given to
``adapt``, so the shape is part of the layer's config and a loaded layer builds the weight
before Keras loads its values into it.
"""

from __future__ import annotations

import keras
import numpy as np

from neuronedit_tf.errors import NeuronEditError


class StoredReference(keras.layers.Layer):
    """A layer holding ``reference`` codes ``(n_reference, n_neurons)``, at most
    ``max_reference`` of them (a seeded subsample beyond that).

    Subclasses call :meth:`keep` in their ``adapt`` and may extend
    :meth:`build_reference` with weights of their own.
    """

    def __init__(self, max_reference, **kwargs):
        super().__init__(**kwargs)
        if int(max_reference) < 1:
            raise NeuronEditError(
                f"{type(self).__name__} needs max_reference >= 1; got {max_reference}.")
        self.max_reference = int(max_reference)
        self.is_adapted = False

    def build_reference(self, n_reference, n_neurons):
        """Create the ``reference`` weight (zeros until adapted or loaded)."""
        self.reference = self.add_weight(name="reference", shape=(n_reference, n_neurons),
                                         initializer="zeros", trainable=False)

    def build(self, input_shape):
        if not hasattr(self, "reference"):
            raise NeuronEditError(f"{type(self).__name__} is not adapted; call adapt(codes) "
                                  "first.")
        self.built = True

    def keep(self, codes, seed=0):
        """Store ``codes`` ``(rows, n_neurons)`` as the reference, or ``max_reference`` of them
        drawn with ``seed`` (in their original order); returns what was stored."""
        codes = np.asarray(codes, np.float32)
        if len(codes) > self.max_reference:
            rows = np.random.default_rng(seed).choice(len(codes), self.max_reference,
                                                      replace=False)
            codes = codes[np.sort(rows)]
        if not hasattr(self, "reference"):
            self.build_reference(*codes.shape)
        elif tuple(self.reference.shape) != codes.shape:
            raise NeuronEditError(f"This layer holds {tuple(self.reference.shape)} reference "
                                  f"codes; adapt got {codes.shape}.")
        self.reference.assign(codes)
        self.built = True
        self.is_adapted = True
        return codes

    def load_own_variables(self, store):
        super().load_own_variables(store)
        self.is_adapted = True  # the saved reference codes are an adapted state

    def get_config(self):
        config = super().get_config()
        shape = tuple(self.reference.shape) if hasattr(self, "reference") else (None, None)
        config.update(max_reference=self.max_reference,
                      n_reference=None if shape[0] is None else int(shape[0]),
                      n_neurons=None if shape[1] is None else int(shape[1]))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        n_reference, n_neurons = config.pop("n_reference", None), config.pop("n_neurons", None)
        layer = cls(**config)
        if n_reference is not None:
            layer.build_reference(n_reference, n_neurons)
        return layer
