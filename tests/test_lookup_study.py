"""StudyLookupEdit: a study's per-batch maps frozen into one-level or nested lookup tables
compute the StudyEdit's map (its binary search) within float32 rounding, including knots that
cluster a few ulps apart (a study's calibration, where many anchor cells sit at zero)."""

import keras
import numpy as np
import pytest

from neuronedit_tf.layers import StudyEdit
from neuronedit_tf import lookup
from neuronedit_tf.lookup import (STUDY_TABLE_BYTES, StudyLookupEdit, _segments, study_lookup_edit,
                                  study_plan)

from test_lookup import assert_same_map

QUANTILES = tuple(float(q) for q in range(101))


def clustered_knots(rng, batches, neurons):
    """Per batch and neuron: 101 percentiles of cells of which ~45% sit at one value (a
    marker's zeros) spread by a few float32 ulps, plus, in some neurons, a sloped knot
    right beside the cluster (a sloped segment, a flat one a few ulps long, a sloped one)."""
    source, target = [], []
    for b in range(batches):
        cells = rng.gamma(2.0, 1.0, size=(4000, neurons)).astype(np.float32)
        zero = np.float32(-0.2873356640 + 0.01 * b)
        tied = rng.random((4000, neurons)) < 0.45
        ulps = rng.integers(0, 3, size=(4000, neurons)) * 9
        cells = np.where(tied, zero + ulps * np.spacing(np.abs(zero)), cells + zero + 0.001)
        knots = np.percentile(cells, QUANTILES, axis=0, method="linear").astype(np.float32)
        # The reference's zeros are tied exactly: the map is flat across the cluster.
        reference = np.percentile(np.where(tied, zero, cells * 1.3), QUANTILES, axis=0)
        source.append(np.sort(knots, axis=0))
        target.append(np.sort(reference.astype(np.float32), axis=0))
    return np.stack(source), np.stack(target)


def probes(source_q, rng, batches):
    """Every knot and its float32 neighbours, values inside and around the clusters, far
    outside, and the two float32 extremes (last two rows); each row's batch index."""
    s = source_q.reshape(-1, source_q.shape[-1])
    values = np.concatenate([
        s, np.nextafter(s, np.float32(np.inf)), np.nextafter(s, np.float32(-np.inf)),
        s + rng.integers(-20, 20, s.shape) * np.spacing(np.abs(s)),
        rng.uniform(s.min(), s.max(), size=(3000, s.shape[1])),
        rng.uniform(-50, 50, size=(200, s.shape[1])),
        np.full((1, s.shape[1]), 3e38), np.full((1, s.shape[1]), -3e38),
    ]).astype(np.float32)
    batch = np.concatenate([np.repeat(np.arange(batches), len(source_q[0]))] * 4 +
                           [rng.integers(0, batches, len(values) - 4 * s.shape[0])])
    return values, batch.astype(np.int32)


@pytest.fixture(scope="module")
def clustered():
    rng = np.random.default_rng(0)
    source, target = clustered_knots(rng, batches=12, neurons=4)
    return source, target


def test_a_flat_run_of_knots_a_few_ulps_apart_counts_as_one_segment():
    knots = np.float32([0.0, 1.0, 1.0000001, 1.0000002, 2.0])
    t_eff = np.float32([0.0, 3.0, 3.0, 3.0, 5.0])
    slope = np.float32([3.0, 0.0, 0.0, 2.0])
    assert _segments(knots).tolist() == [0, 1, 2, 3]
    assert _segments(knots, (t_eff, slope)).tolist() == [0, 1, 3]
    # A sloped segment that continues a flat run starts a new one.
    assert _segments(knots, (t_eff, np.float32([3.0, 0.0, 1.0, 2.0]))).tolist() == [0, 1, 2, 3]


@pytest.mark.float_sensitive
@pytest.mark.parametrize("extrapolation", ["shift", "clip", "linear"])
def test_nested_tables_match_the_binary_search(clustered, extrapolation):
    # Tolerance: the lookup evaluates eq. 1 in another order than the search (float32).
    source, target = clustered
    edit = StudyEdit.from_knots(source, target, QUANTILES, extrapolation)
    frozen = StudyLookupEdit.from_layer(edit, nested=True)
    assert frozen.fine > 0 and frozen.width <= lookup.MAX_WIDTH
    values, batch = probes(source, np.random.default_rng(1), len(source))
    assert_same_map(frozen([values, batch]).numpy(), edit([values, batch]).numpy())


@pytest.mark.float_sensitive
def test_three_slope_rows_describe_two_knots_in_a_bin():
    # A sloped segment, a flat one 9 ulps long, a sloped one: no grid separates the two
    # knots, so the nested tables need three-slope rows.
    rng = np.random.default_rng(2)
    base = np.sort(rng.normal(size=(101, 2)), axis=0).astype(np.float32)
    knot = base[50, 0]
    base[51, 0] = knot + 9 * np.spacing(np.abs(knot))
    target = (base * 2.0).astype(np.float32)
    target[51, 0] = target[50, 0]  # flat between the two close knots
    edit = StudyEdit.from_knots(base[None], target[None], QUANTILES)
    frozen = StudyLookupEdit.from_layer(edit, nested=True)
    assert frozen.rows == "three_slope" and frozen.width == 3
    values, batch = probes(base[None], rng, 1)
    assert_same_map(frozen([values, batch]).numpy(), edit([values, batch]).numpy())


def test_many_batches_of_clustered_knots_serve_through_nested_tables_not_the_search(
        clustered, monkeypatch):
    source, target = clustered
    edit = StudyEdit.from_knots(source, target, QUANTILES)
    # Within a budget the nested tables just fit, no one-level table does (its bins would
    # overlap more than MAX_WIDTH segments): the nested tables are used, not the search.
    budget = StudyLookupEdit.from_layer(edit, nested=True).table_bytes
    assert study_plan(source, budget=budget) is None
    monkeypatch.setattr(lookup, "STUDY_TABLE_BYTES", budget)
    frozen = study_lookup_edit(edit)
    assert isinstance(frozen, StudyLookupEdit) and frozen.fine > 0
    assert frozen.table_bytes <= budget
    values, batch = probes(source, np.random.default_rng(3), len(source))
    assert_same_map(frozen([values, batch]).numpy(), edit([values, batch]).numpy())


def test_small_one_level_tables_are_kept():
    rng = np.random.default_rng(4)
    knots = np.sort(rng.normal(size=(3, 2, 5)), axis=1).astype(np.float32)  # a 2-knot edit
    frozen = study_lookup_edit(StudyEdit.from_knots(knots, knots + 1.0, (25.0, 75.0)))
    assert isinstance(frozen, StudyLookupEdit) and frozen.fine == 0 and frozen.bins == 1
    assert frozen.table_bytes <= STUDY_TABLE_BYTES


def test_every_table_is_int32_bits_and_the_layer_round_trips_a_keras_file(clustered, tmp_path):
    # int32 bit patterns: TFLite's dynamic-range quantisation leaves them exact.
    source, target = clustered
    edit = StudyEdit.from_knots(source, target, QUANTILES)
    frozen = StudyLookupEdit.from_layer(edit, nested=True)
    assert {w.dtype for w in frozen.weights} == {"int32"}
    values = keras.Input((source.shape[-1],))
    batch = keras.Input((), dtype="int32")
    model = keras.Model([values, batch], frozen([values, batch]))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x, b = probes(source, np.random.default_rng(5), len(source))
    assert np.array_equal(loaded([x, b]).numpy(), model([x, b]).numpy())  # same computation
