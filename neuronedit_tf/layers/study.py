"""The layers of a study (many batches, one graph): per-batch percentile maps, and the
reference batch's rows passed through unchanged.

A study (:class:`neuronedit_tf.study.Study`) edits each row with its own batch's maps. Its
graph takes the rows and each row's batch index; :class:`StudyEdit` holds every batch's
:class:`~neuronedit_tf.layers.NeuronEdit` tables stacked along a leading batch axis and
gathers, per row, from its batch's slice (one flat gather per lookup, at an offset set by
the batch), so a study of 100 batches costs per row what one batch does.
:class:`KeepBatches` returns the input itself for the rows of the batches it keeps (the
reference batch: an identity edit, exactly).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.layers.neuron_edit import DEFAULT_QUANTILES, NeuronEdit

_LARGEST = float(np.finfo(np.float32).max)
#: The per-batch tables a :class:`StudyEdit` holds, as ``NeuronEdit.tables()`` gives them
#: (after ``source_q`` and ``target_q``, the knots it was built from).
DERIVED = ("values", "widths", "rises", "low", "high")


def batch_tables(source_q, target_q, quantiles, extrapolation="shift"):
    """One batch's map as :class:`StudyEdit` stores it: ``{"values", "widths", "rises",
    "low", "high"}``, computed by a :class:`NeuronEdit` with these knots (the same tables
    its ``call`` uses), as float32 arrays."""
    edit = NeuronEdit(quantiles, extrapolation)
    edit.set_knots(source_q, target_q)
    _, values, widths, rises, low, high = edit.tables()
    return {name: np.asarray(table, np.float32) for name, table in
            zip(DERIVED, (values, widths, rises, low, high))}


@keras.saving.register_keras_serializable(package="neuronedit")
class StudyEdit(keras.layers.Layer):
    """Per-batch percentile maps: batch ``b``'s rows go through the ``NeuronEdit`` map from
    ``source_q[b]`` to ``target_q[b]`` (paper eq. 1, ties collapsed, ``extrapolation`` beyond
    the end knots), computed as ``NeuronEdit`` computes it.

    ``call([values, batch])``: ``values`` ``(rows, n_neurons)``, ``batch`` ``(rows,)`` int32
    batch indices in ``[0, n_batches)`` (an index outside fails the gather).

    Build it with :meth:`from_knots` (the tables of every batch) and grow it with
    :meth:`with_batch` (a new batch appended; the other batches' tables are copied, not
    recomputed, so their outputs stay bit for bit the same).

    Args:
        n_batches: batches (the leading axis of every table).
        quantiles: the maps' knots (percentiles), as ``NeuronEdit``'s.
        extrapolation: ``"shift"``, ``"clip"`` or ``"linear"``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a = rng.normal(size=(500, 2)).astype("float32")
        >>> knots = [np.percentile(x, range(0, 101, 10), axis=0) for x in (a, a + 1, a * 2)]
        >>> edit = StudyEdit.from_knots(np.stack(knots[:2]), np.stack([knots[2]] * 2),
        ...                             quantiles=range(0, 101, 10))
        >>> rows = np.float32([[0.5, 0.5], [1.5, 1.5]])
        >>> np.round(edit([rows, np.int32([0, 1])]).numpy(), 4).tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """

    def __init__(self, n_batches, quantiles=DEFAULT_QUANTILES, extrapolation="shift", **kwargs):
        super().__init__(**kwargs)
        self.quantiles = tuple(float(q) for q in quantiles)
        NeuronEdit(self.quantiles, extrapolation)  # validates both
        self.n_batches = int(n_batches)
        if self.n_batches < 1:
            raise NeuronEditError(f"A StudyEdit needs at least one batch; got {n_batches}.")
        self.extrapolation = extrapolation

    def build(self, input_shape):
        values_shape = input_shape[0]
        n_neurons = values_shape[-1]
        if n_neurons is None:
            raise NeuronEditError("StudyEdit needs a known number of neurons (last axis).")
        self.n_neurons = int(n_neurons)
        q, b, n = len(self.quantiles), self.n_batches, self.n_neurons
        shapes = {"source_q": (b, q, n), "target_q": (b, q, n), "values": (b, q, n),
                  "widths": (b, q - 1, n), "rises": (b, q - 1, n), "low": (b, n), "high": (b, n)}
        for name, shape in shapes.items():
            setattr(self, name, self.add_weight(name=name, shape=shape, initializer="zeros",
                                                trainable=False))
        self.input_spec = [keras.InputSpec(ndim=2, axes={-1: n}), keras.InputSpec(ndim=1)]
        self.built = True

    @classmethod
    def from_knots(cls, source_q, target_q, quantiles=DEFAULT_QUANTILES, extrapolation="shift",
                   name=None, derived=None):
        """A layer holding every batch's map: ``source_q``, ``target_q`` ``(batches, Q, n)``.

        ``derived``: the tables of :func:`batch_tables` stacked per batch, when known (they
        are computed otherwise)."""
        source_q, target_q = (np.asarray(q, np.float32) for q in (source_q, target_q))
        if source_q.ndim != 3 or source_q.shape != target_q.shape:
            raise NeuronEditError(f"from_knots needs two tables (batches, quantiles, neurons) of "
                                  f"one shape; got {source_q.shape} and {target_q.shape}.")
        layer = cls(len(source_q), quantiles, extrapolation, name=name)
        if derived is None:
            rows = [batch_tables(s, t, layer.quantiles, extrapolation)
                    for s, t in zip(source_q, target_q)]
            derived = {key: np.stack([row[key] for row in rows]) for key in DERIVED}
        layer.build([(None, source_q.shape[-1]), (None,)])
        layer.source_q.assign(source_q)
        layer.target_q.assign(target_q)
        for key in DERIVED:
            getattr(layer, key).assign(derived[key])
        return layer

    def tables(self):
        """``{"source_q", "target_q", "values", "widths", "rises", "low", "high"}`` as numpy."""
        return {key: np.asarray(getattr(self, key)) for key in ("source_q", "target_q") + DERIVED}

    def with_batch(self, source_q, target_q, replace=None):
        """A new layer (same name and settings) with one more batch appended, or with batch
        ``replace`` (an index) given new knots; every other batch's tables are copied."""
        tables = self.tables()
        row = {"source_q": np.asarray(source_q, np.float32),
               "target_q": np.asarray(target_q, np.float32),
               **batch_tables(source_q, target_q, self.quantiles, self.extrapolation)}
        for key in tables:
            if replace is None:
                tables[key] = np.concatenate([tables[key], row[key][None]])
            else:
                tables[key][replace] = row[key]
        return StudyEdit.from_knots(tables["source_q"], tables["target_q"], self.quantiles,
                                    self.extrapolation, name=self.name,
                                    derived={key: tables[key] for key in DERIVED})

    def call(self, inputs):
        values, batch = inputs
        values = tf.convert_to_tensor(values)
        dtype = values.dtype
        a = tf.cast(values, tf.float32)
        q, n = len(self.quantiles), self.n_neurons
        batch = tf.reshape(tf.cast(batch, tf.int32), [-1, 1])
        column = tf.range(n, dtype=tf.int32)[None, :]
        knot = batch * (q * n) + column  # (rows, n): the row's first knot in the flat tables
        segment = batch * ((q - 1) * n) + column
        s_flat = tf.reshape(self.source_q, [-1])
        first, last = tf.gather(s_flat, knot), tf.gather(s_flat, knot + (q - 1) * n)
        inside = tf.minimum(tf.maximum(a, first), last)
        # Largest j in [0, Q-2] with s_j <= inside: NeuronEdit's branch-free binary search.
        index = tf.zeros_like(inside, dtype=tf.int32)
        step = 2 ** int(math.floor(math.log2(max(q - 2, 1))))
        while step >= 1:
            candidate = tf.minimum(index + step, q - 2)
            index = tf.where(tf.gather(s_flat, knot + candidate * n) <= inside, candidate, index)
            step //= 2
        at_knot, at_segment = knot + index * n, segment + index * n
        gap = tf.gather(tf.reshape(self.widths, [-1]), at_segment)
        fraction = tf.where(
            gap > 0, (inside - tf.gather(s_flat, at_knot)) / tf.where(gap > 0, gap, 1.0), 0.0
        )
        value = tf.gather(tf.reshape(self.values, [-1]), at_knot)
        value += fraction * tf.gather(tf.reshape(self.rises, [-1]), at_segment)
        ends = batch * n + column
        low = tf.gather(tf.reshape(self.low, [-1]), ends)
        high = tf.gather(tf.reshape(self.high, [-1]), ends)
        value += low * tf.minimum(a - first, 0.0) + high * tf.maximum(a - last, 0.0)
        value = tf.clip_by_value(value, -_LARGEST, _LARGEST)
        return tf.cast(value, dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(n_batches=self.n_batches, quantiles=list(self.quantiles),
                      extrapolation=self.extrapolation)
        return config


@keras.saving.register_keras_serializable(package="neuronedit")
class KeepBatches(keras.layers.Layer):
    """``call([original, edited, batch])``: ``original`` for the rows of the kept batches,
    ``edited`` for the others (a select, so a kept row is its input bit for bit).

    Args:
        kept: one flag per batch (True: its rows pass unchanged), e.g. the reference batch's.

    Example:
        >>> keep = KeepBatches([True, False])
        >>> keep([np.zeros((2, 1), "float32"), np.ones((2, 1), "float32"),
        ...       np.int32([0, 1])]).numpy()[:, 0].tolist()
        [0.0, 1.0]
    """

    def __init__(self, kept, **kwargs):
        super().__init__(**kwargs)
        self.kept = [bool(k) for k in kept]
        if not self.kept:
            raise NeuronEditError("KeepBatches needs one flag per batch; got none.")

    def build(self, input_shape=None):
        self.flags = self.add_weight(name="flags", shape=(len(self.kept),),
                                     initializer="zeros", trainable=False)
        self.flags.assign(np.float32(self.kept))
        self.built = True

    def call(self, inputs):
        original, edited, batch = inputs
        kept = tf.gather(self.flags, tf.reshape(tf.cast(batch, tf.int32), [-1])) > 0.5
        return tf.where(kept[:, None], tf.cast(original, edited.dtype), edited)

    def compute_output_shape(self, input_shape):
        return input_shape[1]

    def get_config(self):
        config = super().get_config()
        config.update(kept=self.kept)
        return config
