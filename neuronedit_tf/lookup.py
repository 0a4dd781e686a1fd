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

A study's maps (``StudyLookupEdit``) stack every batch's tables; each row gathers from its
own batch's. Where one grid cannot serve every batch within ``STUDY_TABLE_BYTES`` (the
default method's per-feature calibration, 101 knots per feature, with knots a few float32
ulps apart where many anchor cells sit at zero), the tables are nested: equal coarse bins,
each split into fine bins only where its knots need it (``nested_tables``), and a flat run of
knots (one constant value) counts as one segment. 100 batches of the CyTOF demo's 37 markers
then take ~12 MB instead of the hundreds of MB a one-level grid would need.
"""

from __future__ import annotations

import math

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


def _segments(knots, flat=None):
    """Indices j of the positive-width segments [s_j, s_{j+1}] of one neuron's knots.

    ``flat`` (``(t_eff, slope)`` of the map, as ``build_table`` takes them): a segment that
    continues a flat run (its slope and the previous listed segment's both exactly 0, the
    same value) is not listed, so the run counts as one segment. The map is the same
    constant on the whole run, so a bin that overlaps the run is one segment wider, not one
    per knot: a marker's many cells at zero give such runs of knots a few float32 ulps
    apart, which no grid separates."""
    segments = np.nonzero(knots[1:] > knots[:-1])[0]
    if flat is None or len(segments) < 2:
        return segments
    t_eff, slope = flat
    t, m = t_eff[segments], slope[segments]
    repeats = (m[1:] == 0) & (m[:-1] == 0) & (t[1:] == t[:-1])
    return segments[np.concatenate([[True], ~repeats])]


def _grid(source_q, inner):
    """Per-neuron grid origin and span: [s_1, s_{Q-2}] if ``inner`` else [s_0, s_{Q-1}]."""
    s = np.asarray(source_q, np.float32)
    lo, hi = (s[1], s[-2]) if inner and len(s) >= 4 else (s[0], s[-1])
    degenerate = ~(hi > lo)
    lo = np.where(degenerate, s[0], lo)
    hi = np.where(degenerate, s[-1], hi)
    span = hi.astype(np.float64) - lo.astype(np.float64)
    return lo, np.where(span > 0, span, 1.0)


def _bin_segments(source_q, origin, span, bins, flat=None):
    """For every neuron and bin, the first and last overlapping segment (positions
    in that neuron's list of positive-width segments; ``flat``: ``(t_eff, slope)``, each
    ``(Q, n)``, to list a flat run as one segment, see :func:`_segments`)."""
    s = np.asarray(source_q, np.float64)
    n = s.shape[1]
    step = span / bins
    first = np.zeros((n, bins), np.int64)
    last = np.zeros((n, bins), np.int64)
    edges = np.arange(bins, dtype=np.float64)
    for k in range(n):
        segments = _segments(s[:, k], None if flat is None else (flat[0][:, k], flat[1][:, k]))
        if len(segments) == 0:
            continue
        low = origin[k] + (edges - MARGIN) * step[k]
        high = origin[k] + (edges + 1 + MARGIN) * step[k]
        low[0], high[-1] = -np.inf, np.inf  # activations are clamped into these end bins
        first[k], last[k] = _overlap(s[segments, k], low, high)
    return first, last


def _overlap(starts, low, high):
    """For bins ``[low, high]`` (arrays), the first and last segment overlapping each
    (positions in the list of positive-width segments starting at ``starts``)."""
    top = len(starts) - 1
    first = np.clip(np.searchsorted(starts, low, side="right") - 1, 0, top)
    last = np.clip(np.searchsorted(starts, high, side="left") - 1, 0, top)
    return first, np.maximum(last, first)


#: Table row layouts: ``"ramp"`` ``(base, starts[width], lengths[width], slopes[width])``,
#: any width; ``"two_slope"`` ``(value, knot, slope_below, slope_above)``, width <= 2;
#: ``"three_slope"`` ``(value, knot, length, slope_below, slope_middle, slope_above)``, width
#: <= 3 (two knots in the bin; a study's nested tables use it, see :func:`nested_tables`).
#: (A layer saved before ``rows`` existed has ramp rows.)
ROWS = ("ramp", "two_slope", "three_slope")
#: The widest bin each row layout can describe (None: any).
ROW_WIDTHS = {"ramp": None, "two_slope": 2, "three_slope": 3}


def check_rows(rows, width):
    """Refuse a row layout that cannot describe bins of ``width`` segments."""
    limit = ROW_WIDTHS.get(rows, 0)
    if rows not in ROWS or (limit is not None and int(width) > limit):
        raise NeuronEditError(f"rows must be one of {ROWS} ('two_slope' needs width <= 2, "
                              f"'three_slope' width <= 3); got {rows!r} with width {width}.")


def row_layout(width):
    """The rows ``from_layer`` builds for this width: two-slope when at most one knot
    lies inside a bin (``width <= 2``), else ramp."""
    return "two_slope" if width <= 2 else "ramp"


def table_columns(width, rows=None):
    """Floats per table row (``rows`` default: ``row_layout(width)``)."""
    rows = rows or row_layout(width)
    return {"two_slope": 4, "three_slope": 6}.get(rows, 1 + 3 * width)


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


def build_table(source_q, tables, inner, bins, width, rows=None, merge=False):
    """The lookup table: ``(n * bins, table_columns(width))`` float32 rows, neuron-major.

    ``width <= 2`` (at most one knot inside each bin): rows ``(value, knot,
    slope_below, slope_above)``, the map on the bin being
    ``value + slope_below * min(a - knot, 0) + slope_above * max(a - knot, 0)``
    (for a bin inside one segment ``j``: ``(t_j, s_j, m_j, m_j)``, eq. 1 as
    ``NeuronEdit`` computes it). Wider: rows ``(base, starts[width],
    lengths[width], slopes[width])`` of the clipped-ramp sum.

    ``tables`` is ``NeuronEdit.tables()`` as numpy: knots, collapsed target
    values and segment slopes, each ``(Q or Q-1, n)``. ``rows``: see ``ROWS``
    (default ``row_layout(width)``). ``merge``: a flat run of segments is listed as one
    (:func:`_segments`; the plan must have been made so too).
    """
    rows = rows or row_layout(width)
    check_rows(rows, width)
    s, t_eff, slope = (np.asarray(x, np.float32) for x in tables[:3])
    n = s.shape[1]
    origin, span = _grid(s, inner)
    first, last = _bin_segments(s, origin, span, bins, (t_eff, slope) if merge else None)
    table = np.zeros((n, bins, table_columns(width, rows)), np.float32)
    for k in range(n):
        table[k] = _rows_of(s[:, k], t_eff[:, k], slope[:, k], first[k], last[k], width, rows,
                            merge)
    return table.reshape(n * bins, table_columns(width, rows))


def _rows_of(s, t_eff, slope, first, last, width, rows, merge=False):
    """One neuron's table rows (``s``, ``t_eff``, ``slope``: its columns of the tables) for
    bins whose overlapping segments run from ``first`` to ``last`` (positions in its list of
    positive-width segments, as :func:`_overlap` gives them; ``merge``: a flat run listed as
    one segment, see :func:`_segments`)."""
    table = np.zeros((len(first), table_columns(width, rows)), np.float32)
    segments = _segments(s, (t_eff, slope) if merge else None)
    if len(segments) == 0:  # every knot tied: a constant map
        table[:, 0], table[:, 1] = t_eff[0], s[0]
        return table
    if rows == "two_slope":
        below, above = segments[first], segments[last]
        table[:, 0] = t_eff[above]
        table[:, 1] = s[above]
        table[:, 2] = slope[below]
        table[:, 3] = slope[above]
        return table
    if rows == "three_slope":
        # Up to three segments: the knot after the first listed one, and the middle
        # segment's length (0 when fewer than three are listed).
        below = segments[first]
        middle = segments[np.minimum(first + 1, last)]
        above = segments[last]
        three = last - first == 2
        ends = np.append(s[segments[1:]], s[-1])
        table[:, 0] = t_eff[middle]
        table[:, 1] = s[middle]
        table[:, 2] = np.where(three, ends[np.minimum(first + 1, last)] - s[middle], 0.0)
        table[:, 3] = slope[below]
        table[:, 4] = np.where(three, slope[middle], 0.0)
        table[:, 5] = slope[above]
        return table
    slots = np.arange(width)
    count = last - first + 1
    used = slots[None, :] < count[:, None]  # (bins, width)
    listed = np.minimum(first[:, None] + slots[None, :], len(segments) - 1)
    chosen = segments[listed]
    # Each listed segment ends where the next starts (the last at the last knot).
    ends = np.append(s[segments[1:]], s[-1])[listed]
    table[:, 0] = t_eff[segments[first]]
    table[:, 1 : 1 + width] = np.where(used, s[chosen], 0.0)
    table[:, 1 + width : 1 + 2 * width] = np.where(used, ends - s[chosen], 0.0)
    table[:, 1 + 2 * width :] = np.where(used, slope[chosen], 0.0)
    return table


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
    elif rows == "three_slope":
        # Two knots in the bin: the middle segment's rise is clipped to its length.
        value, knot, length, below, middle, above = planes
        offset = inside - knot
        value += (below * tf.minimum(offset, 0.0) + middle * tf.clip_by_value(offset, 0.0, length)
                  + above * tf.maximum(offset - length, 0.0))
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
        check_rows(rows, width)
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


#: Bin counts a study's one-level tables try, smallest first: a map of few knots (the
#: residual methods' two-knot latent edit) needs one bin, and with 100 batches the tables'
#: size is what the served graph pays for (cache misses), not the bins' arithmetic.
STUDY_BIN_CHOICES = (1, 2, 4, 8, 16, 32) + BIN_CHOICES


def study_plan(source_q, budget=None, flat=None):
    """The grid for every batch's knots ``source_q`` ``(batches, Q, n)``, one bin count for
    all: ``(inner, bins, width)`` with ``inner`` one flag per batch (its grid's span, see
    ``plan``), or None when no table within ``budget`` bytes overlaps at most ``MAX_WIDTH``
    segments per bin. Refines as ``plan`` does, until every batch's bins overlap at most
    ``TARGET_WIDTH`` segments. ``budget`` defaults to ``STUDY_TABLE_BYTES``; ``flat``: per
    batch ``(t_eff, slope)``, to count a flat run as one segment (:func:`_segments`).

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
    for bins in STUDY_BIN_CHOICES:
        if n_batches * n * bins * table_columns(TARGET_WIDTH) * 4 > budget:
            break
        chosen = []
        for b, s in enumerate(source_q):
            widths = []
            for inner in (True, False):
                origin, span = _grid(s, inner)
                first, last = _bin_segments(s, origin, span, bins,
                                            None if flat is None else flat[b])
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


#: Nested tables (see :func:`nested_tables`): the coarse bins per neuron tried, and the most
#: fine bins one coarse bin is split into (the bin-index error stays < 1e-3 fine bins).
COARSE_CHOICES = (8, 16, 32, 64, 128, 256)
MAX_FINE_BINS = 16384


def _fine_overlap(starts, low, high, origin, step, count):
    """Split one coarse bin (grid start ``origin``, float32; width ``step``; the extent its
    segments are listed for ``[low, high]``) into ``count`` equal fine bins. Returns
    ``(scale, first, last)``: the fine grid's float32 scale (bins per unit) and each fine
    bin's first and last overlapping segment (:func:`_overlap`)."""
    scale = np.float32(count / step)
    edges = np.arange(count, dtype=np.float64)
    # The edges as the graph computes a fine bin, (a - origin) * scale, with these floats.
    lo = np.float64(origin) + (edges - MARGIN) / np.float64(scale)
    hi = np.float64(origin) + (edges + 1 + MARGIN) / np.float64(scale)
    lo[0], hi[-1] = low, high  # a row the coarse level sends here lands in an end bin
    first, last = _overlap(starts, lo, hi)
    return scale, first, last


def nested_rows(width):
    """The fine rows of nested tables: ``"two_slope"``, ``"three_slope"`` for width 3 (a few
    cells' clusters: a sloped segment, a flat one a few ulps long, a sloped one), else
    ``"ramp"``."""
    return "three_slope" if width == 3 else row_layout(width)


def nested_tables(source_q, tables, coarse):
    """Two-level tables for every batch's knots ``source_q`` ``(batches, Q, n)``: per
    neuron ``coarse`` equal bins over ``[s_1, s_{Q-2}]`` (as ``plan``'s inner grid), and
    each coarse bin that overlaps more than ``TARGET_WIDTH`` segments split again into equal
    fine bins, as few as its knots need (a power of two up to ``MAX_FINE_BINS``). Clustered
    knots then cost fine bins where they cluster only, not a finer grid everywhere and for
    every batch.

    Knots closer than any fine grid separates (a few float32 ulps apart, as a study's
    calibration has where many anchor cells sit at zero) leave some fine bins with more than
    ``TARGET_WIDTH`` segments; ``width`` is then the most any needs, and every fine bin is
    split only until it overlaps at most ``width`` segments (ramp rows of that width).

    ``tables``: per batch ``(s, t_eff, slope)`` as ``build_table`` takes them.

    Returns:
        ``(origin, scale, index, rows, width)``: per cell (batch-major, then neuron) the
        coarse grid's float32 ``origin`` and ``scale``; ``index`` ``(cells * coarse, 4)``
        int32: each coarse bin's fine grid as float32 bits (origin, scale, last fine bin)
        and its first row in ``rows`` (int32); ``rows``: the fine bins' table rows
        (:func:`nested_rows`), float32; ``width``: the most segments a fine bin overlaps.
        None when some bin would need more than ``MAX_WIDTH`` segments.
    """
    source_q = np.asarray(source_q, np.float32)
    cells = []  # (batch, neuron, segment starts, coarse origin, step, first, last)
    origins, scales = [], []
    for b, s in enumerate(source_q):
        origin, span = _grid(s, True)
        _, t_eff, slope = tables[b]
        first, last = _bin_segments(s, origin, span, coarse, (t_eff, slope))
        origins.append(origin)
        scales.append((coarse / span).astype(np.float32))
        for k in range(s.shape[1]):
            starts = s[_segments(s[:, k], (t_eff[:, k], slope[:, k])), k]
            cells.append((b, k, starts, origin[k], span[k] / coarse, first[k], last[k]))

    def split(cell, j, count):
        _, _, starts, origin, step, _, _ = cell
        low = -np.inf if j == 0 else np.float64(origin) + (j - MARGIN) * step
        high = np.inf if j == coarse - 1 else np.float64(origin) + (j + 1 + MARGIN) * step
        start = np.float32(np.float64(origin) + j * step)
        return (start,) + _fine_overlap(starts, low, high, start, step, count)

    wide = [(c, j) for c, cell in enumerate(cells) if len(cell[2])
            for j in np.nonzero(cell[6] - cell[5] + 1 > TARGET_WIDTH)[0]]

    def needed(c, j, width):
        """Fine bins (a power of two) enough for at most ``width`` segments per fine bin:
        a fine bin, margins included, shorter than any ``width`` consecutive knots inside
        the coarse bin span (then it holds at most ``width - 1`` of them)."""
        _, _, starts, origin, step, _, _ = cells[c]
        low = np.float64(origin) + (j - MARGIN) * step
        high = np.float64(origin) + (j + 1 + MARGIN) * step
        inside = starts[(starts > (-np.inf if j == 0 else low))
                        & (starts < (np.inf if j == coarse - 1 else high))].astype(np.float64)
        if len(inside) < width:
            return 1
        spread = (inside[width - 1:] - inside[: len(inside) - width + 1]).min()
        if spread <= 0:
            return None
        count = 2 ** max(1, math.ceil(math.log2((1 + 2 * MARGIN) * step / spread)))
        return count if count <= MAX_FINE_BINS else None

    # The narrowest rows every wide coarse bin can have, then the fewest fine bins for them.
    width = TARGET_WIDTH
    for c, j in wide:
        while needed(c, j, width) is None:
            width += 1
            if width > MAX_WIDTH:
                return None
    fine = {}
    for c, j in wide:
        if int(cells[c][6][j] - cells[c][5][j]) + 1 <= width:
            continue
        count = needed(c, j, width)
        while True:  # the estimate ignores the end bins' margins: check the actual rows
            start, scale, first, last = split(cells[c], j, count)
            actual = int((last - first).max()) + 1
            if actual <= width:
                break
            if count >= MAX_FINE_BINS:  # as fine as allowed: wider rows for every bin
                if actual > MAX_WIDTH:
                    return None
                width = actual
                break
            count *= 2
        fine[c, j] = (start, scale, count, first, last)
    index, rows, total = [], [], 0
    for c, (b, k, starts, origin, step, first, last) in enumerate(cells):
        entries = np.zeros((coarse, 4), np.int32)
        entries[:, 0] = (np.float64(origin) + np.arange(coarse) * step).astype(
            np.float32).view(np.int32)
        bins_first, bins_last = list(first[:, None]), list(last[:, None])
        for j in range(coarse):
            if (c, j) in fine:
                start, scale, count, bins_first[j], bins_last[j] = fine[c, j]
                entries[j, :3] = np.float32([start, scale, count - 1]).view(np.int32)
        counts = np.array([len(f) for f in bins_first])
        entries[:, 3] = total + np.concatenate([[0], np.cumsum(counts)[:-1]])
        total += int(counts.sum())
        index.append(entries)
        _, t_eff, slope = tables[b]
        rows.append(_rows_of(source_q[b][:, k], t_eff[:, k], slope[:, k],
                             np.concatenate(bins_first), np.concatenate(bins_last), width,
                             nested_rows(width), merge=True))
    return (np.concatenate(origins), np.concatenate(scales), np.concatenate(index),
            np.concatenate(rows), width)


@keras.saving.register_keras_serializable(package="neuronedit")
class StudyLookupEdit(keras.layers.Layer):
    """A study's per-batch maps (:class:`~neuronedit_tf.layers.StudyEdit`) frozen into
    lookup tables: :class:`LookupEdit` with every batch's table stacked, one bin count for
    all. ``call([values, batch])``: each row's batch index picks its rows of the table (one
    offset per row), and its per-neuron grid and end knots by one more gather, so a study of
    100 batches costs per row what one batch does.

    With ``fine`` > 0 the tables are nested (:func:`nested_tables`): the bin's row of
    ``table`` gives a fine grid (origin, scale, last bin) and where its rows start in
    ``fine_table``, whose row then holds the map, one more gather per activation for knots
    that cluster (one fine table for every batch, refined only where its knots need it).

    Build it with ``StudyLookupEdit.from_layer(study_edit)`` (or ``study_lookup_edit``,
    which picks the layout). Every table, the per-neuron parameters too, is held as float32
    bit patterns in int32 weights, so that TFLite's dynamic-range quantisation leaves it exact.

    Example:
        >>> from neuronedit_tf.layers import StudyEdit
        >>> rng = np.random.default_rng(0)
        >>> knots = np.sort(rng.normal(size=(2, 101, 3)), axis=1).astype("float32")
        >>> edit = StudyEdit.from_knots(knots, knots[::-1] * 2 + 1)
        >>> rows, batch = rng.normal(size=(6, 3)).astype("float32"), np.int32([0, 1] * 3)
        >>> for nested in (False, True):
        ...     frozen = StudyLookupEdit.from_layer(edit, nested=nested)
        ...     print(frozen.fine > 0, np.allclose(frozen([rows, batch]), edit([rows, batch]),
        ...                                        atol=1e-5))
        False True
        True True
    """

    def __init__(self, n_batches, n_neurons, bins, width, extrapolation="shift", rows="ramp",
                 fine=0, **kwargs):
        super().__init__(**kwargs)
        if extrapolation not in EXTRAPOLATIONS:
            raise NeuronEditError(
                f"extrapolation must be one of {EXTRAPOLATIONS}; got {extrapolation!r}.")
        check_rows(rows, width)
        self.n_batches, self.n_neurons = int(n_batches), int(n_neurons)
        self.bins, self.width, self.rows = int(bins), int(width), rows
        self.fine = int(fine)
        self.extrapolation = extrapolation

    #: The per-neuron values of each batch, gathered together per row.
    PARAMS = ("first", "last", "origin", "scale", "low", "high")

    def build(self, input_shape=None):
        cells = self.n_batches * self.n_neurons

        def table(name, shape):
            return self.add_weight(name=name, shape=shape, initializer="zeros", trainable=False,
                                   dtype="int32")

        self.params = table("params", (cells, len(self.PARAMS)))
        columns = table_columns(self.width, self.rows)
        if self.fine:
            self.table = table("table", (cells * self.bins, 4))
            self.fine_table = table("fine_table", (self.fine, columns))
        else:
            self.table = table("table", (cells * self.bins, columns))
        self.built = True

    @classmethod
    def from_layer(cls, edit, name=None, plan=None, nested=False, coarse=None):
        """Freeze a ``StudyEdit``: one level (``plan``: :func:`study_plan`'s, default
        computed) or, ``nested=True``, two (:func:`nested_tables` with ``coarse`` bins per
        neuron, default the smallest tables of ``COARSE_CHOICES``).

        Raises:
            NeuronEditError: no one-level table within ``STUDY_TABLE_BYTES`` fits its knots.
        """
        tables = edit.tables()
        source_q = tables["source_q"]
        per_batch = _per_batch(tables)
        ends = np.concatenate([np.stack([s[0], s[-1]], axis=1) for s in source_q])
        slopes = np.stack([np.concatenate(tables[k]) for k in ("low", "high")], axis=1)
        name = name or f"{edit.name}_lookup"
        if nested:
            best = None
            for bins in (COARSE_CHOICES if coarse is None else (int(coarse),)):
                tables_ = nested_tables(source_q, per_batch, bins)
                if tables_ is None:
                    continue
                size = tables_[2].nbytes + tables_[3].nbytes
                if best is None or size < best[0]:  # the smallest: fewest cache misses
                    best = (size, bins) + tables_
            if best is None:
                raise NeuronEditError(
                    f"The knots are too clustered for nested tables (a fine bin would overlap "
                    f"more than {MAX_WIDTH} segments); keep the StudyEdit's binary search "
                    "(study_lookup_edit picks).")
            _, bins, origin, scale, index, rows, width = best
            layer = cls(len(source_q), source_q.shape[-1], bins, width, edit.extrapolation,
                        nested_rows(width), fine=len(rows), name=name)
            layer.build()
            layer.table.assign(index)
            layer.fine_table.assign(rows.view(np.int32))
        else:
            plan = plan or study_plan(source_q, flat=[m[1:] for m in per_batch])
            if plan is None:
                raise NeuronEditError(
                    f"No lookup table within {STUDY_TABLE_BYTES} bytes fits these knots; use "
                    "nested tables or the StudyEdit's binary search (study_lookup_edit picks).")
            inner, bins, width = plan
            layer = cls(len(source_q), source_q.shape[-1], bins, width, edit.extrapolation,
                        row_layout(width), name=name)
            layer.build()
            origin, scale, rows = [], [], []
            for b, (s, values, slope) in enumerate(per_batch):
                grid_origin, span = _grid(s, inner[b])
                origin.append(grid_origin)
                scale.append((bins / span).astype(np.float32))
                rows.append(build_table(s, (s, values, slope), inner[b], bins, width,
                                        layer.rows, merge=True))
            origin, scale = np.concatenate(origin), np.concatenate(scale)
            layer.table.assign(np.concatenate(rows).view(np.int32))
        params = np.concatenate([ends, origin[:, None], scale[:, None], slopes], axis=1)
        layer.params.assign(params.astype(np.float32).view(np.int32))
        return layer

    @property
    def table_bytes(self):
        """Bytes of every table (what ``STUDY_TABLE_BYTES`` bounds)."""
        tables = [self.table] + ([self.fine_table] if self.fine else [])
        return int(sum(np.prod(t.shape) * 4 for t in tables))

    def call(self, inputs):
        values, batch = inputs
        n, bins, width = self.n_neurons, self.bins, self.width
        a = tf.reshape(tf.cast(values, tf.float32), [-1, n])
        batch = tf.reshape(tf.cast(batch, tf.int32), [-1, 1])
        neuron = batch * n + tf.range(n, dtype=tf.int32)[None, :]  # (rows, n)
        params = _planes(tf.bitcast(tf.gather(self.params, neuron), tf.float32))
        first, last, origin, scale, low, high = params
        inside = tf.minimum(tf.maximum(a, first), last)
        position = _bin(inside, origin, scale, bins - 1.0) + neuron * bins
        table = self.table
        if self.fine:
            # The coarse bin's fine grid, then the fine bin's row of the fine table.
            index = tf.gather(self.table, position)
            fine_origin, fine_scale, top = _planes(tf.bitcast(index[..., :3], tf.float32))
            position = _bin(inside, fine_origin, fine_scale, top) + index[..., 3]
            table = self.fine_table
        value = _table_value(table, position, self.rows, width, a, inside,
                             self.extrapolation, low, high)
        return tf.cast(value, values.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(n_batches=self.n_batches, n_neurons=self.n_neurons, bins=self.bins,
                      width=self.width, rows=self.rows, fine=self.fine,
                      extrapolation=self.extrapolation)
        return config


def _per_batch(tables):
    """A ``StudyEdit``'s tables per batch as ``build_table`` takes them: ``(s, t_eff, slope)``
    (each segment's slope; 0 for a tie)."""
    largest = np.finfo(np.float32).max
    per_batch = []
    for b, s in enumerate(tables["source_q"]):
        widths, rises = tables["widths"][b], tables["rises"][b]
        positive = widths > 0
        with np.errstate(over="ignore"):
            slope = np.clip(np.where(positive, rises / np.where(positive, widths, 1.0), 0.0),
                            -largest, largest).astype(np.float32)
        per_batch.append((s, tables["values"][b], slope))
    return per_batch


def _planes(rows):
    """``(rows, n, k)`` -> k planes ``(rows, n)`` (transposed first: every later op then runs
    on whole planes, the layout XNNPACK runs fast)."""
    return tf.unstack(tf.transpose(rows, [2, 0, 1]), axis=0)


def _bin(inside, origin, scale, top):
    """``floor(clip((inside - origin) * scale, 0, top))`` as int32, a NaN in bin 0 (casting
    NaN to an integer is undefined and would index anywhere); the cast truncates, which is
    floor here (the position is >= 0)."""
    position = tf.clip_by_value((inside - origin) * scale, 0.0, top)
    position = tf.where(tf.equal(position, position), position, 0.0)
    return tf.cast(position, tf.int32)


#: One-level tables up to this size (bytes) are kept even when nested ones would be smaller:
#: they fit a core's cache, and they save the nested tables' second gather.
CACHED_TABLE_BYTES = 2 * 2**20


def study_lookup_edit(edit):
    """A ``StudyEdit`` frozen for serving, whichever is cheaper per row: one-level tables
    (:func:`study_plan`, one gather per activation) when they fit in ``STUDY_TABLE_BYTES``
    and are no larger than nested tables (:func:`nested_tables`, one more gather) or than
    ``CACHED_TABLE_BYTES``; else the nested tables when they fit; else ``edit`` itself (its
    binary search).

    The size matters beyond the budget: every row gathers from its own batch's tables, so
    with many batches large tables cost cache misses (100 batches' one-level tables of the
    default method's calibration would need hundreds of MB; the nested ones take ~12 MB).
    Knots that cluster (the calibration is fitted on the residual edit of each anchor,
    whose many cells at zero give knots a few float32 ulps apart) need a grid far finer than
    their span, which only the nested tables afford.
    """
    tables = edit.tables()
    source_q = tables["source_q"]
    plan = study_plan(source_q, flat=[m[1:] for m in _per_batch(tables)])
    one_level = None
    if plan is not None:
        _, bins, width = plan
        one_level = source_q.shape[0] * source_q.shape[2] * bins * table_columns(width) * 4
    if one_level is not None and one_level <= CACHED_TABLE_BYTES:
        return StudyLookupEdit.from_layer(edit, plan=plan)
    try:
        nested = StudyLookupEdit.from_layer(edit, nested=True)
    except NeuronEditError:
        nested = None
    if nested is not None and nested.table_bytes <= STUDY_TABLE_BYTES and (
            one_level is None or nested.table_bytes < one_level):
        return nested
    return edit if plan is None else StudyLookupEdit.from_layer(edit, plan=plan)
