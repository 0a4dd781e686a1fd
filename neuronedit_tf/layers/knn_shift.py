"""The ``"knn_shift"`` method's layers: stored reference codes, and the mean shift of each
row's nearest references.

:class:`ReferenceCodes` holds a seeded subsample of the spike-ins' codes ``E(S)`` and
outputs them whatever its input, so the method's graph can send them through its own
:class:`~neuronedit_tf.layers.NeuronEdit` (the per-reference shift ``NeuronEdit(r) - r`` is
then part of the graph, saved, loaded and exported with it); :class:`KnnShift` moves each
row's code by the mean of those shifts over its ``k`` nearest references (the authors' own
variant, KrishnaswamyLab/NeuronTransform).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.layers.reference import StoredReference

#: Reference codes a :class:`ReferenceCodes` keeps (a seeded subsample of the spike-ins').
DEFAULT_KNN_REFERENCE = 2000


@keras.saving.register_keras_serializable(package="neuronedit")
class ReferenceCodes(StoredReference):
    """Stored codes ``(n_reference, n_neurons)``, output whatever the input.

    Called on a graph's codes (for its place in the graph; their values are not read),
    it returns the stored reference codes, a non-trainable weight, so later layers of the
    same graph can transform them (e.g. a ``NeuronEdit``).

    Args:
        max_reference: codes kept by ``adapt`` (seeded subsample beyond it).

    Example:
        >>> import numpy as np
        >>> reference = ReferenceCodes()
        >>> reference.adapt(np.arange(6, dtype="float32").reshape(3, 2))
        >>> reference(np.zeros((5, 2), "float32")).numpy().tolist()
        [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    """

    def __init__(self, max_reference=DEFAULT_KNN_REFERENCE, **kwargs):
        super().__init__(max_reference, **kwargs)

    def build_reference(self, n_reference, n_neurons):
        super().build_reference(n_reference, n_neurons)
        self.input_spec = keras.InputSpec(min_ndim=2, axes={-1: int(n_neurons)})

    def adapt(self, codes, seed=0):
        """Keep ``codes`` ``(rows, n_neurons)``, or ``max_reference`` of them drawn with ``seed``
        (in their original order)."""
        codes = np.asarray(codes, np.float32)
        if codes.ndim != 2 or len(codes) < 1 or not np.all(np.isfinite(codes)):
            raise NeuronEditError(
                f"ReferenceCodes.adapt needs finite codes of shape (rows, neurons); got shape "
                f"{codes.shape}.")
        self.keep(codes, seed)

    def call(self, inputs):
        return tf.convert_to_tensor(self.reference)

    def compute_output_shape(self, input_shape):
        return tuple(self.reference.shape)


@keras.saving.register_keras_serializable(package="neuronedit")
class KnnShift(keras.layers.Layer):
    """Move each code by the mean shift of its ``k`` nearest reference codes.

    ``call([codes, reference, moved])`` (``reference`` of a static shape, e.g. a
    :class:`ReferenceCodes` output) returns ``codes + mean_{r in N_k(c)} (moved_r - r)``
    per row ``c`` of ``codes`` ``(rows, n)``, where ``reference`` ``(m, n)`` are codes whose
    moved versions ``moved`` ``(m, n)`` are known and ``N_k(c)`` the ``k`` references nearest
    to ``c`` (Euclidean). References tied with the ``k``-th nearest (equal distance, to
    float32 rounding) are all included, so the result never depends on their order.
    ``k=None`` (or ``k >= m``) uses every reference: every row moves by the one mean shift,
    with no distances computed.

    The squared distances are ``|c|^2 - score`` with ``score = c.(2r) - |r|^2`` (one matrix
    product), the ``k``-th largest score per row is ``TopKV2``'s, and the mean is a second
    product of the 0/1 neighbour matrix with the shifts: TFLite builtins only.

    Args:
        k: neighbours per row, or None for all references.

    Example:
        >>> import numpy as np
        >>> reference = np.array([[0.0], [1.0], [10.0]], "float32")
        >>> moved = reference + np.array([[1.0], [3.0], [-5.0]], "float32")
        >>> codes = np.array([[0.2], [9.0]], "float32")
        >>> KnnShift(k=2)([codes, reference, moved]).numpy()[:, 0].tolist()
        [2.200000047683716, 8.0]
    """

    def __init__(self, k=50, **kwargs):
        super().__init__(**kwargs)
        if k is not None and int(k) < 1:
            raise NeuronEditError(f"KnnShift needs k >= 1 (or None: every reference); got {k}.")
        self.k = None if k is None else int(k)

    def uses_all(self, n_reference):
        """Whether every one of ``n_reference`` references is a neighbour of every row."""
        return self.k is None or self.k >= n_reference

    def neighbours(self, codes, reference):
        """``(rows, m)`` float32: 1 where the reference is among the row's ``k`` nearest
        (ties with the ``k``-th included), else 0."""
        codes = tf.cast(codes, tf.float32)
        reference = tf.cast(reference, tf.float32)
        bias = -tf.reduce_sum(reference * reference, axis=1)
        scores = tf.matmul(codes, 2.0 * reference, transpose_b=True) + bias
        n_reference = int(reference.shape[0])
        k = n_reference if self.uses_all(n_reference) else self.k
        kth = tf.math.top_k(scores, k=k).values[:, -1:]
        return tf.cast(scores >= kth, tf.float32)

    def call(self, inputs):
        codes, reference, moved = inputs
        shifts = tf.cast(moved, tf.float32) - tf.cast(reference, tf.float32)
        if self.uses_all(int(reference.shape[0])):
            return tf.cast(codes, tf.float32) + tf.reduce_mean(shifts, axis=0)
        near = self.neighbours(codes, reference)
        mean = tf.matmul(near, shifts) / tf.reduce_sum(near, axis=1, keepdims=True)
        return tf.cast(codes, tf.float32) + mean

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(k=self.k)
        return config
