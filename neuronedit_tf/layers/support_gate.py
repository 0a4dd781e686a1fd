"""The SupportGate layer: blend two versions of each row by its distance to reference codes.

The ``"gated"`` method's gate (:mod:`neuronedit_tf.methods.gated`): the per-feature
calibration learned on the spike-ins applies to cells whose codes lie within the
spike-ins' support; cells far outside keep the decoded edit alone.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.layers.reference import StoredReference

#: Reference codes a :class:`SupportGate` keeps (a seeded subsample of the spike-ins' codes).
DEFAULT_GATE_REFERENCE = 1000


@keras.saving.register_keras_serializable(package="neuronedit")
class SupportGate(StoredReference):
    """Blend two versions of each row by how far the row lies from reference codes.

    ``call([codes, inside, outside])`` returns ``outside + w * (inside - outside)``
    per row, with ``w = clip((high - r) / (high - low), 0, 1)`` and ``r`` the
    distance from the row's code to its ``k``-th nearest reference code, divided
    by the median of the reference codes' own (leave-one-out) ``k``-th nearest
    distances. So ``w = 1`` for rows as close to the reference as the reference's
    typical member (``r <= low``), ``w = 0`` far outside it (``r >= high``).

    Used by the ``"gated"`` method (:mod:`neuronedit_tf.methods`): the
    per-feature calibration learned on the spike-ins is applied only to cells
    whose autoencoder codes lie within the spike-ins' support; cells of other
    populations keep the decoded edit alone.

    The distances are matrix products with the stored reference plus a bias
    (``FULLY_CONNECTED``), and the k-th nearest is selected with two small
    ``TopKV2`` rounds over column groups (exactly the one-TopK value; see
    ``_kth_largest``): TFLite builtins, ``(reference, n_neurons)`` float32 weights.
    On the demo's 1000 reference codes (50 wide, k = 5, 4096 rows) this took the
    gate from ~16 to ~11 ms in TFLite (one thread) and from ~27 to ~16 ms of CPU
    in TensorFlow: TopK over all 1000 distances was most of it.

    Args:
        k: the neighbour whose distance is used.
        low, high: the ratio band over which ``w`` falls from 1 to 0.
        max_reference: reference codes kept by ``adapt`` (seeded subsample).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> reference = rng.normal(size=(500, 2)).astype("float32")
        >>> gate = SupportGate(k=5, low=1.5, high=3.0)
        >>> gate.adapt(reference)
        >>> codes = np.array([[0.0, 0.0], [50.0, 50.0]], "float32")
        >>> inside, outside = np.ones((2, 3), "float32"), np.zeros((2, 3), "float32")
        >>> gate([codes, inside, outside]).numpy()[:, 0].tolist()
        [1.0, 0.0]
    """

    def __init__(self, k=10, low=1.5, high=3.0, max_reference=DEFAULT_GATE_REFERENCE, **kwargs):
        super().__init__(max_reference, **kwargs)
        if int(k) < 1:
            raise NeuronEditError(f"SupportGate needs k >= 1; got {k}.")
        if not 0 < float(low) < float(high):
            raise NeuronEditError(f"SupportGate needs 0 < low < high; got low={low}, high={high}.")
        self.k = int(k)
        self.low = float(low)
        self.high = float(high)

    def build_reference(self, n_reference, n_neurons):
        super().build_reference(n_reference, n_neurons)
        self.scale = self.add_weight(name="scale", shape=(), initializer="ones",
                                     trainable=False)
        # Inputs [codes, inside, outside]: the codes as wide as the reference codes.
        self.input_spec = [keras.InputSpec(min_ndim=2, axes={-1: int(n_neurons)}),
                           keras.InputSpec(min_ndim=2), keras.InputSpec(min_ndim=2)]

    def adapt(self, reference, seed=0):
        """Keep (a seeded subsample of) ``reference`` codes ``(rows, n_neurons)`` and
        the median of their leave-one-out ``k``-th nearest distances."""
        reference = np.asarray(reference, np.float32)
        if reference.ndim != 2 or len(reference) <= self.k:
            raise NeuronEditError(
                f"SupportGate.adapt needs more than k={self.k} rows of codes (rows, neurons); "
                f"got shape {reference.shape}."
            )
        from scipy.spatial import cKDTree

        kept = self.keep(reference, seed)
        distance = cKDTree(kept).query(kept, self.k + 1)[0][:, -1]
        # The distances in ``weight`` are computed as |c|^2 - 2 c.r + |r|^2 in float32, so
        # below ~1e-3 of the codes' magnitude they are rounding noise: the scale's floor.
        # (Codes all equal, e.g. constant data, then give a gate around that one point.)
        floor = 1e-3 * (1.0 + float(np.abs(kept).max()))
        self.scale.assign(max(float(np.median(distance)), floor))

    def weight(self, codes):
        """``w`` per row, shape ``(rows, 1)``.

        The squared distance ``|c|^2 - 2 c.r + |r|^2`` is computed as
        ``|c|^2 - score`` with ``score = c.(2r) - |r|^2`` (a matrix product plus a
        bias: one FULLY_CONNECTED in TFLite); the k nearest references have the k
        largest scores, so ``|c|^2`` is added after the selection, to ``(rows, 1)``.
        The k-th largest score is selected in two rounds (``_kth_largest``).
        """
        codes = tf.cast(codes, tf.float32)
        reference = tf.convert_to_tensor(self.reference)
        bias = -tf.reduce_sum(reference * reference, axis=1)
        kth = _kth_largest(codes, 2.0 * reference, bias, self.k)
        nearest = tf.reduce_sum(codes * codes, axis=1, keepdims=True) - kth
        ratio = tf.sqrt(tf.maximum(nearest, 0.0)) / self.scale
        return tf.clip_by_value((self.high - ratio) / (self.high - self.low), 0.0, 1.0)

    def call(self, inputs):
        codes, inside, outside = inputs
        return outside + self.weight(codes) * (inside - outside)

    def compute_output_shape(self, input_shape):
        return input_shape[1]

    def get_config(self):
        config = super().get_config()
        config.update(k=self.k, low=self.low, high=self.high)
        return config


def gate_groups(n_reference, k):
    """Groups for ``_kth_largest``: ``g`` groups of ``ceil(n_reference / g)`` columns,
    ``g ~ sqrt(n_reference / k) / 2`` (top-k over ``n/g + g*k`` values instead of
    ``n``; half the count that minimises that sum, as every group costs one more
    product and gather: on 1000 references, k = 5, TFLite ran fastest with 4-8
    groups); 1 when grouping would not shrink the selection."""
    groups = max(1, int(round(math.sqrt(n_reference / max(k, 1)) / 2)))
    size = -(-n_reference // groups)
    if groups < 2 or size < k or size + groups * k >= n_reference:
        return 1
    return groups


def _kth_largest(codes, weights, bias, k):
    """The k-th largest of ``codes @ weights.T + bias`` per row, shape ``(rows, 1)``.

    Equal to ``top_k(scores, k).values[:, -1:]``, with TopK (one scalar heap
    step per value on CPU, the gate's costliest op) run on far fewer values: the
    columns are split into ``g`` groups of ``m`` (``gate_groups``) computed as
    ``g`` products ``(rows, m)``; their elementwise maximum gives every group
    position's best, TopK picks the ``k`` best positions, and a second TopK
    runs over the ``g * k`` scores at those positions. The k largest scores lie
    among them: a score outside the chosen positions is at most each of the
    chosen positions' ``k`` maxima, so at least ``k`` candidates are >= it.
    """
    n_reference = int(weights.shape[0])
    groups = gate_groups(n_reference, k)
    if groups == 1:
        scores = tf.matmul(codes, weights, transpose_b=True) + bias
        return tf.math.top_k(scores, k=k).values[:, -1:]
    size = -(-n_reference // groups)
    padding = groups * size - n_reference
    if padding:  # padded columns score -inf: never selected ahead of a real one
        weights = tf.concat([weights, tf.zeros([padding, weights.shape[1]], weights.dtype)], 0)
        bias = tf.concat([bias, tf.fill([padding], float("-inf"))], 0)
    scores = [tf.matmul(codes, weights[g * size : (g + 1) * size], transpose_b=True)
              + bias[g * size : (g + 1) * size] for g in range(groups)]
    best = scores[0]
    for part in scores[1:]:
        best = tf.maximum(best, part)
    positions = tf.math.top_k(best, k=k).indices
    candidates = tf.concat([tf.gather(part, positions, batch_dims=1) for part in scores], 1)
    return tf.math.top_k(candidates, k=k).values[:, -1:]
