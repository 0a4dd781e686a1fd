"""The ensemble's slice: one member's code in the codes of autoencoders side by side
(:func:`neuronedit_tf.models.ensemble`)."""

from __future__ import annotations

import keras

from neuronedit_tf.errors import NeuronEditError


@keras.saving.register_keras_serializable(package="neuronedit")
class MemberSlice(keras.layers.Layer):
    """Columns ``[start, stop)`` of the last axis: one member's code in an ensemble's codes.

    (``StridedSlice``: a TFLite builtin.) See :func:`neuronedit_tf.models.ensemble`.

    Example:
        >>> import numpy as np
        >>> MemberSlice(1, 3)(np.arange(4, dtype="float32")[None]).numpy().tolist()
        [[1.0, 2.0]]
    """

    def __init__(self, start, stop, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = int(start), int(stop)
        if not 0 <= self.start < self.stop:
            raise NeuronEditError(f"MemberSlice needs 0 <= start < stop; got {start}, {stop}.")

    def call(self, inputs):
        return inputs[..., self.start : self.stop]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.stop - self.start,)

    def get_config(self):
        config = super().get_config()
        config.update(start=self.start, stop=self.stop)
        return config
