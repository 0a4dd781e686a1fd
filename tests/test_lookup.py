"""LookupEdit: the frozen lookup-table form of NeuronEdit computes the same map (eq. 1)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neuronedit_tf import NeuronEdit, NeuronEditError
from neuronedit_tf.lookup import MAX_WIDTH, LookupEdit, lookup_edit, plan
from test_layer import QUANTILES, adapted, reference_map, rounded

finite = st.floats(-50, 50, allow_nan=False, width=32)
activations = hnp.arrays(np.float32, st.tuples(st.integers(30, 120), st.integers(1, 4)), elements=finite)


def close_to_reference(got, expected):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(expected).max()))


@pytest.mark.float_sensitive
@settings(max_examples=30, deadline=None)
@given(activations, st.sampled_from(["shift", "clip", "linear"]), st.integers(0, 1),
       st.sampled_from([QUANTILES, tuple(range(101))]))
def test_matches_float64_reference_within_1e4_relative(source, extrapolation, decimals, quantiles):
    rng = np.random.default_rng(0)
    source = rounded(source, decimals)
    target = rounded(source * rng.uniform(0.5, 2.0) + rng.normal(size=source.shape[1]), decimals)
    layer = adapted(source, target, extrapolation, quantiles)
    frozen = LookupEdit.from_layer(layer)
    probe = np.concatenate([
        source, layer.source_q.numpy(), rng.uniform(-80, 80, size=(200, source.shape[1])),
    ]).astype(np.float32)
    expected = reference_map(probe, layer.source_q.numpy(), layer.target_q.numpy(), extrapolation)
    close_to_reference(frozen(probe).numpy(), expected)


def test_a_large_tie_beside_a_narrow_segment_keeps_the_end_slope_exact():
    # Hypothesis found it: 99 of 100 source values tied at -5, the next knot 0.01 away. The tie's
    # mean target was a float32 sum of 99 equal values; its rounding, divided by the 0.01 wide
    # segment, moved the linear extrapolation's slope by 3e-4 (relative) 75 units out.
    source = np.full((100, 2), -5.0, np.float32)
    source[0, 0] = -4.0
    rng = np.random.default_rng(0)
    target = rounded(source * rng.uniform(0.5, 2.0) + rng.normal(size=2), 1)
    layer = adapted(source, target, "linear", tuple(range(101)))
    probe = np.concatenate([source, rng.uniform(-80, 80, size=(200, 2))]).astype(np.float32)
    expected = reference_map(probe, layer.source_q.numpy(), layer.target_q.numpy(), "linear")
    close_to_reference(layer(probe).numpy(), expected)
    close_to_reference(LookupEdit.from_layer(layer)(probe).numpy(), expected)


@pytest.mark.parametrize("extrapolation", ["shift", "clip", "linear"])
def test_clustered_knots_and_extreme_outliers(extrapolation):
    # The 0th/100th percentiles far out, a dense cluster and exact ties in the middle.
    rng = np.random.default_rng(3)
    source = np.concatenate([
        rng.normal(0, 1e-3, size=(400, 3)), np.zeros((300, 3)), rng.normal(0, 1, size=(300, 3)),
        [[1e4, -1e4, 5e3]],
    ]).astype(np.float32)
    target = (np.sign(source) * np.abs(source) ** 1.3 + 2.0).astype(np.float32)
    layer = adapted(source, target, extrapolation, tuple(range(101)))
    frozen = lookup_edit(layer)
    probe = np.concatenate([source, rng.uniform(-2e4, 2e4, size=(500, 3)),
                            layer.source_q.numpy()]).astype(np.float32)
    expected = reference_map(probe, layer.source_q.numpy(), layer.target_q.numpy(), extrapolation)
    close_to_reference(frozen(probe).numpy(), expected)


@pytest.mark.float_sensitive
def test_constant_neuron_and_conv_maps():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(60, 2, 2, 3)).astype(np.float32)
    maps[..., 1] = 0.5  # a dead channel: every knot tied
    layer = NeuronEdit(quantiles=QUANTILES)
    layer.adapt(maps, maps * 2.0 + 1.0)
    frozen = LookupEdit.from_layer(layer)
    out = frozen(maps)
    assert tuple(out.shape) == maps.shape and out.dtype == "float32"
    np.testing.assert_allclose(out.numpy(), layer(maps).numpy(), rtol=1e-5, atol=1e-5)


def test_nan_in_gives_nan_out_and_huge_inputs_stay_finite():
    source = np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32)
    frozen = LookupEdit.from_layer(adapted(source, source * 2))
    out = frozen(np.array([[np.nan, 1e30], [-3e38, 0.0]], np.float32)).numpy()
    assert np.isnan(out[0, 0]) and np.all(np.isfinite(out.ravel()[1:]))


def test_plan_refines_bins_until_few_segments_per_bin():
    source = np.random.default_rng(0).normal(size=(5000, 4)).astype(np.float32)
    layer = adapted(source, source, quantiles=tuple(range(101)))
    inner, bins, width = plan(layer.source_q.numpy())
    assert width <= 3 and bins <= 4096


def test_too_clustered_maps_keep_the_binary_search():
    # Knots growing geometrically: no uniform grid of bounded size separates them.
    knots = np.geomspace(1e-30, 1e30, 101).astype(np.float32)[:, None]
    layer = NeuronEdit()
    layer.adapt(np.repeat(knots, 2, 0), np.repeat(knots, 2, 0))
    assert plan(layer.source_q.numpy())[2] > MAX_WIDTH
    assert lookup_edit(layer) is layer


def test_serialises_through_keras_file(tmp_path):
    source = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
    frozen = LookupEdit.from_layer(adapted(source, source + 1))
    inputs = keras.Input((3,))
    model = keras.Model(inputs, frozen(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(loaded(source[:20]).numpy(), model(source[:20]).numpy())


def test_unadapted_or_wrong_layer_is_refused():
    with pytest.raises(NeuronEditError, match="not adapted"):
        LookupEdit.from_layer(NeuronEdit())
    with pytest.raises(NeuronEditError, match="NeuronEdit layer"):
        LookupEdit.from_layer(keras.layers.Dense(3))


def knot_probes(layer, frozen, rng):
    """Adversarial activations: every knot and its float32 neighbours, the lookup
    grid's bin edges (where the bin index changes), values between the knots and
    far outside them, and the two float32 extremes (the last two rows)."""
    s = layer.source_q.numpy()
    edges = (frozen.origin.numpy() + np.arange(0, frozen.bins + 1, max(1, frozen.bins // 512))[:, None]
             / frozen.scale.numpy()).astype(np.float32)
    return np.concatenate([
        s, np.nextafter(s, np.float32(np.inf)), np.nextafter(s, np.float32(-np.inf)),
        edges, np.nextafter(edges, np.float32(-np.inf)),
        rng.uniform(s[0], s[-1], size=(2000, s.shape[1])),
        s[:1] - rng.uniform(0, 100, size=(50, s.shape[1])), s[-1:] + rng.uniform(0, 100, size=(50, s.shape[1])),
        np.full((1, s.shape[1]), 3e38), np.full((1, s.shape[1]), -3e38),
    ]).astype(np.float32)


def assert_same_map(got, expected, rtol=2e-6):
    """Within rtol of the output's scale (the largest |value| short of the two extreme
    rows), and the extreme rows finite and within rtol of themselves."""
    scale = max(1.0, float(np.abs(expected[:-2]).max()))
    np.testing.assert_allclose(got[:-2], expected[:-2], rtol=rtol, atol=rtol * scale)
    assert np.all(np.isfinite(got[-2:]) == np.isfinite(expected[-2:]))
    finite = np.isfinite(expected[-2:])
    np.testing.assert_allclose(got[-2:][finite], expected[-2:][finite], rtol=rtol)


@pytest.mark.float_sensitive
@pytest.mark.parametrize("extrapolation", ["shift", "clip", "linear"])
@pytest.mark.parametrize("bins", [None, 64])
def test_both_table_forms_match_the_layer_on_knots_bin_edges_and_outside(extrapolation, bins):
    # bins=None: the two-slope rows (at most one knot per bin); 64 bins: the ramp rows.
    rng = np.random.default_rng(1)
    source = np.concatenate([rng.normal(0, 1, size=(3000, 3)), rng.gamma(2.0, 1, size=(3000, 3)),
                             np.zeros((500, 3))]).astype(np.float32)
    target = (source * [1.5, 0.5, 1.0] + np.sin(source)).astype(np.float32)
    layer = adapted(source, target, extrapolation, tuple(range(101)))
    frozen = LookupEdit.from_layer(layer, bins=bins)
    assert (frozen.width <= 2) == (bins is None), frozen.width
    probe = knot_probes(layer, frozen, rng)
    got = frozen(probe).numpy()
    assert_same_map(got, layer(probe).numpy())
    close_to_reference(got[:-2], reference_map(probe[:-2], layer.source_q.numpy(),
                                               layer.target_q.numpy(), extrapolation))


def test_tflite_builtin_conversion_matches_keras_and_survives_nan(tmp_path):
    from neuronedit_tf.export import write_tflite

    rng = np.random.default_rng(2)
    source = rng.normal(size=(4000, 6)).astype(np.float32)
    layer = adapted(source, source * 2.0 + np.tanh(source), quantiles=tuple(range(101)))
    frozen = LookupEdit.from_layer(layer)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, frozen(inputs))
    model.export(tmp_path / "saved", verbose=False)
    write_tflite(tmp_path / "saved", tmp_path / "edit.tflite")  # builtin ops only, else raises
    probe = np.concatenate([rng.normal(size=(300, 6)), knot_probes(layer, frozen, rng)]).astype(np.float32)
    probe[5, 2] = np.nan
    interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "edit.tflite"))
    runner = interpreter.get_signature_runner("serving_default")
    name = interpreter.get_signature_list()["serving_default"]["inputs"][0]
    (got,) = runner(**{name: probe}).values()
    expected = model(probe).numpy()
    assert np.isnan(got[5, 2]) and np.isnan(expected[5, 2])
    probe[5, 2], expected[5, 2], got[5, 2] = 0.0, 0.0, 0.0
    assert_same_map(got, expected)


@pytest.mark.float_sensitive
def test_ramp_rows_still_compute_the_map_and_old_configs_read_as_ramp():
    # A LookupEdit saved before the two-slope rows has no "rows" in its config: its
    # table holds ramp rows, whatever its width.
    source = np.random.default_rng(4).normal(size=(3000, 3)).astype(np.float32)
    layer = adapted(source, source * 2.0 + np.cos(source), quantiles=tuple(range(101)))
    two_slope = LookupEdit.from_layer(layer)
    ramp = LookupEdit.from_layer(layer, rows="ramp")
    assert (two_slope.rows, ramp.rows, ramp.width) == ("two_slope", "ramp", two_slope.width)
    probe = knot_probes(layer, two_slope, np.random.default_rng(5))
    assert_same_map(ramp(probe).numpy(), two_slope(probe).numpy())
    config = ramp.get_config()
    del config["rows"]
    old = LookupEdit.from_config(config)
    old.build()
    old.set_weights(ramp.get_weights())
    np.testing.assert_array_equal(old(probe).numpy(), ramp(probe).numpy())
    with pytest.raises(NeuronEditError, match="two_slope"):
        LookupEdit(3, 64, 3, rows="two_slope")
