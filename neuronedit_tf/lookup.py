"""The NeuronEdit map frozen into a lookup table: one gather per activation, for serving.

``NeuronEdit`` evaluates paper eq. 1 on its variables with a binary search over
the knots (``ceil(log2 Q)`` dependent gathers per activation). Once a model is
exported the knots are constants, so the search can be replaced by arithmetic:
per neuron, the clamped activation falls into one of ``bins`` equal-width bins,
and the bin's row of a precomputed table describes the map on that bin.

The bins are refined until no bin holds more than one knot (``width <= 2``
segments overlap it); then a row is ``(value, knot, slope_below, slope_above)``
and the edited value is

    value + slope_below * min(a - knot, 0) + slope_above * max(a - knot, 0)

(for a bin inside one segment ``j``: ``t_j + (a - s_j) * m_j``, eq. 1 as
``NeuronEdit`` computes it, equal source knots collapsed), up to float32
rounding. Knots too clustered for that within ``MAX_TABLE_BYTES`` keep the
general rows ``(base, starts, lengths, slopes)`` of ``width`` segments and the
clipped-ramp sum ``base + sum_c slope_c * min(relu(a - start_c), length_c)``.
Outside the knots the layer's ``extrapolation`` is added as in ``NeuronEdit``.

Cost per activation (two-slope rows): one GATHER of a 4-float row and about 20
elementwise ops, all TFLite builtins. The bin index is ``cast(clip((a - origin)
* scale, 0, bins - 1))`` with a NaN mapped to bin 0 by one compare-and-select
(casting NaN to an integer is undefined and would index anywhere); a clip in
int32 after the cast, as before, cost TFLite more than the rest of the edit
(its int32 MINIMUM/MAXIMUM with a broadcast scalar take a slow generic path).
The gathered rows are transposed so that every later op runs on whole
``(rows, neurons)`` planes, the layout XNNPACK runs fast (a small innermost
axis costs one kernel call per element). What is left is mostly the GATHER
itself (per index, ~1.3 ms for 4096 x 50 in TensorFlow and in TFLite on this
machine) and, in TensorFlow, ~0.1-0.2 ms per elementwise op.

The bins span ``[s_1, s_{Q-2}]`` (or ``[s_0, s_{Q-1}]``, whichever needs fewer
segments per bin; the 0th and 100th percentiles are a sample's extremes and
can stretch a grid). A map whose knots are so clustered that a bin would still
overlap more than ``MAX_WIDTH`` segments is left to ``NeuronEdit``'s binary
search (see ``lookup_edit``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import keras

from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.layers import EXTRAPOLATIONS, NeuronEdit

#: Bin counts tried, smallest first.
BIN_CHOICES = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
#: Stop refining once every bin overlaps at most this many segments (at most one
#: knot inside a bin: the two-slope form, see ``table_columns``).
TARGET_WIDTH = 2
#: Beyond this many segments per bin the lookup is not used (binary search instead).
MAX_WIDTH = 8
#: Largest table (float32 bytes) the refinement may build.
MAX_TABLE_BYTES = 16 * 2**20
#: Bins are widened by this share of a bin on each side when listing their segments,
#: far more than the float32 error of computing an activation's bin (a few ulps of
#: the position: < 4e-3 bins at 16384 bins).
MARGIN = 0.05
_LARGEST = float(np.finfo(np.float32).max)


def _segments(knots):
    """Indices j of the positive-width segments [s_j, s_{j+1}] of one neuron's knots."""
    return np.nonzero(knots[1:] > knots[:-1])[0]


def _grid(source_q, inner):
    """Per-neuron grid origin and span: [s_1, s_{Q-2}] if ``inner`` else [s_0, s_{Q-1}]."""
    s = np.asarray(source_q, np.float32)
    lo, hi = (s[1], s[-2]) if inner and len(s) >= 4 else (s[0], s[-1])
    degenerate = ~(hi > lo)
    lo = np.where(degenerate, s[0], lo)
    hi = np.where(degenerate, s[-1], hi)
    span = hi.astype(np.float64) - lo.astype(np.float64)
    return lo, np.where(span > 0, span, 1.0)


def _bin_segments(source_q, origin, span, bins):
    """For every neuron and bin, the first and last overlapping segment (positions
    in that neuron's list of positive-width segments)."""
    s = np.asarray(source_q, np.float64)
    n = s.shape[1]
    step = span / bins
    first = np.zeros((n, bins), np.int64)
    last = np.zeros((n, bins), np.int64)
    edges = np.arange(bins, dtype=np.float64)
    for k in range(n):
        segments = _segments(s[:, k])
        if len(segments) == 0:
            continue
        starts = s[segments, k]
        low = origin[k] + (edges - MARGIN) * step[k]
        high = origin[k] + (edges + 1 + MARGIN) * step[k]
        low[0], high[-1] = -np.inf, np.inf  # activations are clamped into these end bins
        first[k] = np.clip(np.searchsorted(starts, low, side="right") - 1, 0, len(segments) - 1)
        last[k] = np.clip(np.searchsorted(starts, high, side="left") - 1, 0, len(segments) - 1)
        last[k] = np.maximum(last[k], first[k])
    return first, last


#: Table row layouts: ``"ramp"`` ``(base, starts[width], lengths[width], slopes[width])``,
#: any width; ``"two_slope"`` ``(value, knot, slope_below, slope_above)``, width <= 2.
#: (A layer saved before ``rows`` existed has ramp rows.)
ROWS = ("ramp", "two_slope")


def row_layout(width):
    """The rows ``from_layer`` builds for this width: two-slope when at most one knot
    lies inside a bin (``width <= 2``), else ramp."""
    return "two_slope" if width <= 2 else "ramp"


def table_columns(width, rows=None):
    """Floats per table row (``rows`` default: ``row_layout(width)``)."""
    return 4 if (rows or row_layout(width)) == "two_slope" else 1 + 3 * width


def plan(source_q, bins=None):
    """Choose the grid for these knots: ``(inner, bins, width)``.

    ``width`` is the most segments any bin overlaps. Refines the bins until
    ``width <= TARGET_WIDTH`` or the table would exceed ``MAX_TABLE_BYTES``;
    with ``bins`` given, uses that many (and the better of the two spans).
    """
    s = np.asarray(source_q, np.float32)
    n = s.shape[1]
    best = None
    for bins in BIN_CHOICES if bins is None else (int(bins),):
        for inner in (True, False):
            origin, span = _grid(s, inner)
            first, last = _bin_segments(s, origin, span, bins)
            width = int((last - first).max()) + 1
            if n * bins * table_columns(width) * 4 > MAX_TABLE_BYTES:
                continue
            if best is None or width < best[2]:
                best = (inner, bins, width)
        if best is not None and best[2] <= TARGET_WIDTH:
            break
    if best is None:
        raise NeuronEditError(
            f"A lookup table for {n} neurons does not fit in {MAX_TABLE_BYTES} bytes; "
            "use NeuronEdit's binary search (lookup_edit returns it for such maps)."
        )
    return best


def build_table(source_q, tables, inner, bins, width, rows=None):
    """The lookup table: ``(n * bins, table_columns(width))`` float32 rows, neuron-major.

    ``width <= 2`` (at most one knot inside each bin): rows ``(value, knot,
    slope_below, slope_above)``, the map on the bin being
    ``value + slope_below * min(a - knot, 0) + slope_above * max(a - knot, 0)``
    (for a bin inside one segment ``j``: ``(t_j, s_j, m_j, m_j)``, eq. 1 as
    ``NeuronEdit`` computes it). Wider: rows ``(base, starts[width],
    lengths[width], slopes[width])`` of the clipped-ramp sum.

    ``tables`` is ``NeuronEdit.tables()`` as numpy: knots, collapsed target
    values and segment slopes, each ``(Q or Q-1, n)``. ``rows``: see ``ROWS``
    (default ``row_layout(width)``).
    """
    rows = rows or row_layout(width)
    if rows not in ROWS or (rows == "two_slope" and width > 2):
        raise NeuronEditError(f"rows must be one of {ROWS} ('two_slope' needs width <= 2); "
                              f"got {rows!r} with width {width}.")
    s, t_eff, slope = (np.asarray(x, np.float32) for x in tables[:3])
    n = s.shape[1]
    origin, span = _grid(s, inner)
    first, last = _bin_segments(s, origin, span, bins)
    table = np.zeros((n, bins, table_columns(width, rows)), np.float32)
    slots = np.arange(width)
    for k in range(n):
        segments = _segments(s[:, k])
        if len(segments) == 0:  # every knot tied: a constant map
            table[k, :, 0], table[k, :, 1] = t_eff[0, k], s[0, k]
            continue
        if rows == "two_slope":
            below, above = segments[first[k]], segments[last[k]]
            table[k, :, 0] = t_eff[above, k]
            table[k, :, 1] = s[above, k]
            table[k, :, 2] = slope[below, k]
            table[k, :, 3] = slope[above, k]
            continue
        count = last[k] - first[k] + 1
        used = slots[None, :] < count[:, None]  # (bins, width)
        chosen = segments[np.minimum(first[k][:, None] + slots[None, :], len(segments) - 1)]
        table[k, :, 0] = t_eff[segments[first[k]], k]
        table[k, :, 1 : 1 + width] = np.where(used, s[chosen, k], 0.0)
        table[k, :, 1 + width : 1 + 2 * width] = np.where(used, s[chosen + 1, k] - s[chosen, k], 0.0)
        table[k, :, 1 + 2 * width :] = np.where(used, slope[chosen, k], 0.0)
    return table.reshape(n * bins, table_columns(width, rows))


def _table_value(table, position, rows, width, a, inside, extrapolation, low, high):
    """The edited value of each clipped input ``inside`` from its bin's row of ``table``
    (``position``: the flat bin index), then the extrapolation beyond the first and last
    knots (``a``: the unclipped input; ``low``/``high``: the end slopes of ``"linear"``),
    clipped to float32's finite range. Shared by :class:`LookupEdit` and the study's
    stacked tables."""
    planes = tf.unstack(tf.transpose(tf.bitcast(tf.gather(table, position), tf.float32),
                                     [2, 0, 1]), axis=0)
    if rows == "two_slope":
        # At most one knot in the bin: one slope on each side of it.
        value, knot, below, above = planes
        offset = inside - knot
        value += below * tf.minimum(offset, 0.0) + above * tf.maximum(offset, 0.0)
    else:
        value = planes[0]
        for c in range(width):
            start, length, slope = planes[1 + c], planes[1 + width + c], planes[1 + 2 * width + c]
            value += tf.clip_by_value(inside - start, 0.0, length) * slope
    # Outside [s_0, s_last]: a - inside is a - s_0 (< 0) below, a - s_last (> 0) above.
    if extrapolation == "shift":
        value += a - inside
    elif extrapolation == "linear":
        outside = a - inside
        value += low * tf.minimum(outside, 0.0) + high * tf.maximum(outside, 0.0)
    return tf.clip_by_value(value, -_LARGEST, _LARGEST)


@keras.saving.register_keras_serializable(package="neuronedit")
class LookupEdit(keras.layers.Layer):
    """A fitted NeuronEdit map as a constant lookup table (see the module docstring).

    Build it with ``LookupEdit.from_layer(edit)`` (or ``lookup_edit(edit)``);
    it computes the same function as ``edit`` (within float32 rounding) and
    holds its table as non-trainable weights, which a SavedModel stores and the
    TFLite converter folds into constants (the table as int32 bit patterns, so
    that dynamic-range quantisation leaves it exact).

    Args:
        n_neurons: the edited layer's width.
        bins: bins per neuron.
        width: segments listed per bin.
        extrapolation: the source layer's mode (``"shift"``, ``"clip"`` or
            ``"linear"``; the end slopes of ``"linear"`` are in ``low``/``high``).
        rows: the table's row layout, ``"ramp"`` or ``"two_slope"`` (see ``ROWS``;
            ``from_layer`` picks ``row_layout(width)``).

    Input shape: ``(batch, ..., n_neurons)`` float32. Output shape: the same.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> source = rng.normal(size=(2000, 3)).astype("float32")
        >>> edit = NeuronEdit()
        >>> edit.adapt(source, 2.0 * source + 1.0)
        >>> frozen = LookupEdit.from_layer(edit)
        >>> bool(np.allclose(frozen(source[:5]).numpy(), edit(source[:5]).numpy(), atol=1e-5))
        True
    """

    def __init__(self, n_neurons, bins, width, extrapolation="shift", rows="ramp", **kwargs):
        super().__init__(**kwargs)
        if extrapolation not in EXTRAPOLATIONS:
            raise NeuronEditError(
                f"extrapolation must be one of {EXTRAPOLATIONS}; got {extrapolation!r}."
            )
        if rows not in ROWS or (rows == "two_slope" and int(width) > 2):
            raise NeuronEditError(f"rows must be one of {ROWS} ('two_slope' needs width <= 2); "
                                  f"got {rows!r} with width {width}.")
        self.n_neurons, self.bins, self.width = int(n_neurons), int(bins), int(width)
        self.rows = rows
        self.extrapolation = extrapolation

    def build(self, input_shape=None):
        per_neuron = (self.n_neurons,)

        def weight(name, shape):
            return self.add_weight(name=name, shape=shape, initializer="zeros", trainable=False)

        self.first, self.last = weight("first", per_neuron), weight("last", per_neuron)
        self.origin, self.scale = weight("origin", per_neuron), weight("scale", per_neuron)
        self.low, self.high = weight("low", per_neuron), weight("high", per_neuron)
        # The table holds float32 bit patterns as int32: TFLite's dynamic-range
        # quantisation turns large float constants into int8, which would move the knots.
        self.table = self.add_weight(
            name="table", shape=(self.n_neurons * self.bins, table_columns(self.width, self.rows)),
            initializer="zeros", trainable=False, dtype="int32",
        )
        self.built = True

    @classmethod
    def from_layer(cls, edit, name=None, bins=None, rows=None):
        """Freeze an adapted ``NeuronEdit`` into a ``LookupEdit`` (``bins``: see ``plan``;
        ``rows``: see ``ROWS``, default ``row_layout(width)``)."""
        if not isinstance(edit, NeuronEdit):
            raise NeuronEditError(f"from_layer needs a NeuronEdit layer; got {type(edit).__name__}.")
        if not edit.is_adapted:
            raise NeuronEditError("The NeuronEdit layer is not adapted; call adapt() first. "
                                  "Received: is_adapted=False")
        source_q = edit.source_q.numpy()
        s, t_eff, width, rise, low, high = (np.asarray(x) for x in edit.tables())
        positive = width > 0
        largest = np.finfo(np.float32).max
        with np.errstate(over="ignore"):
            slope = np.clip(np.where(positive, rise / np.where(positive, width, 1.0), 0.0),
                            -largest, largest).astype(np.float32)
        tables = (s, t_eff, slope)
        inner, bins, width = plan(source_q, bins)
        layer = cls(source_q.shape[1], bins, width, edit.extrapolation, rows or row_layout(width),
                    name=name or f"{edit.name}_lookup")
        layer.build()
        origin, span = _grid(source_q, inner)
        layer.first.assign(s[0])
        layer.last.assign(s[-1])
        layer.origin.assign(origin)
        layer.scale.assign((bins / span).astype(np.float32))
        layer.low.assign(low)
        layer.high.assign(high)
        layer.table.assign(build_table(source_q, tables, inner, bins, width, layer.rows)
                           .view(np.int32))
        return layer

    def call(self, inputs):
        n, bins, width = self.n_neurons, self.bins, self.width
        a = tf.reshape(tf.cast(inputs, tf.float32), [-1, n])
        inside = tf.clip_by_value(a, self.first, self.last)
        # The bin; cast truncates, which is floor here (position >= 0). A NaN position
        # becomes bin 0 (casting NaN to an integer is undefined and would index anywhere).
        position = tf.clip_by_value((inside - self.origin) * self.scale, 0.0, bins - 1.0)
        position = tf.where(tf.equal(position, position), position, 0.0)
        position = tf.cast(position, tf.int32) + tf.range(n, dtype=tf.int32) * bins
        value = _table_value(self.table, position, self.rows, width, a, inside,
                             self.extrapolation, self.low, self.high)
        return tf.cast(tf.reshape(value, _shape(inputs)), inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(n_neurons=self.n_neurons, bins=self.bins, width=self.width, rows=self.rows,
                      extrapolation=self.extrapolation)
        return config


def _shape(inputs):
    """The static shape when only the batch is unknown: a dynamic reshape would keep
    TFLite from planning its tensors once."""
    inner = list(inputs.shape[1:])
    return [-1] + inner if None not in inner else tf.shape(inputs)


def lookup_edit(edit):
    """``LookupEdit.from_layer(edit)``, or ``edit`` itself when its knots are too
    clustered for a small table (a bin would overlap more than ``MAX_WIDTH`` segments)."""
    try:
        _, _, width = plan(edit.source_q.numpy())
    except NeuronEditError:
        return edit
    return edit if width > MAX_WIDTH else LookupEdit.from_layer(edit)


#: The largest lookup tables of one of a study's maps, all batches together (float32 bytes);
#: a study whose maps need more keeps :class:`~neuronedit_tf.layers.StudyEdit`'s binary search.
STUDY_TABLE_BYTES = 64 * 2**20


def study_plan(source_q, budget=None):
    """The grid for every batch's knots ``source_q`` ``(batches, Q, n)``, one bin count for
    all: ``(inner, bins, width)`` with ``inner`` one flag per batch (its grid's span, see
    ``plan``), or None when no table within ``budget`` bytes overlaps at most ``MAX_WIDTH``
    segments per bin. Refines as ``plan`` does, until every batch's bins overlap at most
    ``TARGET_WIDTH`` segments. ``budget`` defaults to ``STUDY_TABLE_BYTES``.

    Example:
        >>> knots = np.sort(np.random.default_rng(0).normal(size=(3, 11, 2)), axis=1)
        >>> inner, bins, width = study_plan(knots)
        >>> len(inner), width <= TARGET_WIDTH
        (3, True)
    """
    source_q = np.asarray(source_q, np.float32)
    n_batches, _, n = source_q.shape
    budget = STUDY_TABLE_BYTES if budget is None else budget
    best = None
    for bins in BIN_CHOICES:
        if n_batches * n * bins * table_columns(TARGET_WIDTH) * 4 > budget:
            break
        chosen = []
        for s in source_q:
            widths = []
            for inner in (True, False):
                origin, span = _grid(s, inner)
                first, last = _bin_segments(s, origin, span, bins)
                widths.append((int((last - first).max()) + 1, not inner))
            width, outer = min(widths)  # the narrower grid; the inner one on a tie
            chosen.append((width, not outer))
        width = max(w for w, _ in chosen)
        if n_batches * n * bins * table_columns(width) * 4 > budget:
            continue
        if best is None or width < best[2]:
            best = ([inner for _, inner in chosen], bins, width)
        if best[2] <= TARGET_WIDTH:
            break
    return None if best is None or best[2] > MAX_WIDTH else best


@keras.saving.register_keras_serializable(package="neuronedit")
class StudyLookupEdit(keras.layers.Layer):
    """A study's per-batch maps (:class:`~neuronedit_tf.layers.StudyEdit`) frozen into
    lookup tables: :class:`LookupEdit` with every batch's table stacked, one bin count for
    all. ``call([values, batch])``: each row's batch index picks its rows of the table (one
    offset per row), and its per-neuron grid and end knots by one more gather, so a study of
    100 batches costs per row what one batch does.

    Build it with ``StudyLookupEdit.from_layer(study_edit)`` (or ``study_lookup_edit``).

    Example:
        >>> from neuronedit_tf.layers import StudyEdit
        >>> rng = np.random.default_rng(0)
        >>> knots = np.sort(rng.normal(size=(2, 101, 3)), axis=1).astype("float32")
        >>> edit = StudyEdit.from_knots(knots, knots[::-1] * 2 + 1)
        >>> frozen = StudyLookupEdit.from_layer(edit)
        >>> rows, batch = rng.normal(size=(6, 3)).astype("float32"), np.int32([0, 1] * 3)
        >>> bool(np.allclose(frozen([rows, batch]), edit([rows, batch]), atol=1e-5))
        True
    """

    def __init__(self, n_batches, n_neurons, bins, width, extrapolation="shift", rows="ramp",
                 **kwargs):
        super().__init__(**kwargs)
        if extrapolation not in EXTRAPOLATIONS:
            raise NeuronEditError(
                f"extrapolation must be one of {EXTRAPOLATIONS}; got {extrapolation!r}.")
        if rows not in ROWS or (rows == "two_slope" and int(width) > 2):
            raise NeuronEditError(f"rows must be one of {ROWS} ('two_slope' needs width <= 2); "
                                  f"got {rows!r} with width {width}.")
        self.n_batches, self.n_neurons = int(n_batches), int(n_neurons)
        self.bins, self.width, self.rows = int(bins), int(width), rows
        self.extrapolation = extrapolation

    #: The per-neuron values of each batch, gathered together per row.
    PARAMS = ("first", "last", "origin", "scale", "low", "high")

    def build(self, input_shape=None):
        cells = self.n_batches * self.n_neurons
        self.params = self.add_weight(name="params", shape=(cells, len(self.PARAMS)),
                                      initializer="zeros", trainable=False)
        self.table = self.add_weight(
            name="table", shape=(cells * self.bins, table_columns(self.width, self.rows)),
            initializer="zeros", trainable=False, dtype="int32")
        self.built = True

    @classmethod
    def from_layer(cls, edit, name=None, plan=None):
        """Freeze a ``StudyEdit`` (``plan``: :func:`study_plan`'s, default computed).

        Raises:
            NeuronEditError: no table within ``STUDY_TABLE_BYTES`` fits its knots.
        """
        tables = edit.tables()
        source_q = tables["source_q"]
        plan = plan or study_plan(source_q)
        if plan is None:
            raise NeuronEditError(
                f"No lookup table within {STUDY_TABLE_BYTES} bytes fits these knots; keep the "
                "StudyEdit's binary search (study_lookup_edit returns it).")
        inner, bins, width = plan
        layer = cls(len(source_q), source_q.shape[-1], bins, width, edit.extrapolation,
                    row_layout(width), name=name or f"{edit.name}_lookup")
        layer.build()
        largest = np.finfo(np.float32).max
        params, rows = [], []
        for b, s in enumerate(source_q):
            widths, rises = tables["widths"][b], tables["rises"][b]
            positive = widths > 0
            with np.errstate(over="ignore"):
                slope = np.clip(np.where(positive, rises / np.where(positive, widths, 1.0), 0.0),
                                -largest, largest).astype(np.float32)
            origin, span = _grid(s, inner[b])
            params.append(np.stack([s[0], s[-1], origin, (bins / span).astype(np.float32),
                                    tables["low"][b], tables["high"][b]], axis=1))
            rows.append(build_table(s, (s, tables["values"][b], slope), inner[b], bins, width,
                                    layer.rows))
        layer.params.assign(np.concatenate(params).astype(np.float32))
        layer.table.assign(np.concatenate(rows).view(np.int32))
        return layer

    def call(self, inputs):
        values, batch = inputs
        n, bins, width = self.n_neurons, self.bins, self.width
        a = tf.reshape(tf.cast(values, tf.float32), [-1, n])
        batch = tf.reshape(tf.cast(batch, tf.int32), [-1, 1])
        neuron = batch * n + tf.range(n, dtype=tf.int32)[None, :]  # (rows, n)
        params = tf.unstack(tf.transpose(tf.gather(self.params, neuron), [2, 0, 1]), axis=0)
        first, last, origin, scale, low, high = params
        inside = tf.minimum(tf.maximum(a, first), last)
        position = tf.clip_by_value((inside - origin) * scale, 0.0, bins - 1.0)
        position = tf.where(tf.equal(position, position), position, 0.0)  # NaN -> bin 0
        position = tf.cast(position, tf.int32) + neuron * bins
        value = _table_value(self.table, position, self.rows, width, a, inside,
                             self.extrapolation, low, high)
        return tf.cast(value, values.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(n_batches=self.n_batches, n_neurons=self.n_neurons, bins=self.bins,
                      width=self.width, rows=self.rows, extrapolation=self.extrapolation)
        return config


def study_lookup_edit(edit):
    """``StudyLookupEdit.from_layer(edit)`` for a ``StudyEdit``, or ``edit`` itself when its
    knots need more than ``STUDY_TABLE_BYTES`` or ``MAX_WIDTH`` (its binary search)."""
    plan = study_plan(edit.tables()["source_q"])
    return edit if plan is None else StudyLookupEdit.from_layer(edit, plan=plan)
