"""NeuronEdit: the properties of paper eq. 1 that DESIGN.md requires."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neuronedit_tf import NeuronEdit, NeuronEditError

QUANTILES = tuple(range(0, 101, 5))


def reference_map(a, source_q, target_q, extrapolation="shift"):
    """Eq. 1 in float64 numpy, written independently of the layer: np.interp on
    collapsed knots (unique source values, their target knots averaged)."""
    out = np.empty_like(a, dtype=np.float64)
    for k in range(a.shape[1]):
        s, t = source_q[:, k].astype(np.float64), target_q[:, k].astype(np.float64)
        knots, inverse = np.unique(s, return_inverse=True)
        values = np.bincount(inverse, weights=t) / np.bincount(inverse)
        column = np.interp(a[:, k], knots, values)
        below, above = a[:, k] < knots[0], a[:, k] > knots[-1]
        if extrapolation == "shift":
            low = high = 1.0
        elif extrapolation == "clip":
            low = high = 0.0
        elif len(knots) > 1:
            low = (values[1] - values[0]) / (knots[1] - knots[0])
            high = (values[-1] - values[-2]) / (knots[-1] - knots[-2])
        else:
            low = high = 1.0
        column[below] += low * (a[below, k] - knots[0])
        column[above] += high * (a[above, k] - knots[-1])
        out[:, k] = column
    return out


def adapted(source, target, extrapolation="shift", quantiles=QUANTILES):
    layer = NeuronEdit(quantiles=quantiles, extrapolation=extrapolation)
    layer.adapt(source, target)
    return layer


finite = st.floats(-50, 50, allow_nan=False, width=32)
activations = hnp.arrays(np.float32, st.tuples(st.integers(30, 80), st.integers(1, 4)), elements=finite)


def rounded(values, decimals):
    """Coarse values make ties (saturating/sparse neurons) common."""
    return np.round(values, decimals).astype(np.float32)


@pytest.mark.float_sensitive
@settings(max_examples=25, deadline=None)
@given(activations, st.sampled_from(["shift", "clip", "linear"]), st.integers(0, 1))
def test_matches_float64_reference_within_1e4_relative(source, extrapolation, decimals):
    rng = np.random.default_rng(0)
    source = rounded(source, decimals)
    target = rounded(source * rng.uniform(0.5, 2.0) + rng.normal(size=source.shape[1]), decimals)
    layer = adapted(source, target, extrapolation)
    probe = np.concatenate([source, rng.uniform(-80, 80, size=(50, source.shape[1]))]).astype(np.float32)
    got = layer(probe).numpy()
    expected = reference_map(probe, layer.source_q.numpy(), layer.target_q.numpy(), extrapolation)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@settings(max_examples=25, deadline=None)
@given(activations)
def test_source_quantiles_land_on_target_quantiles(source):
    target = 3.0 * source - 1.0
    layer = adapted(source, target)
    mapped = layer(layer.source_q.numpy()).numpy()
    # With ties collapsed, tied source knots land on the mean of their target knots.
    expected = reference_map(layer.source_q.numpy(), layer.source_q.numpy(), layer.target_q.numpy())
    np.testing.assert_allclose(mapped, expected, rtol=1e-5, atol=1e-4)
    distinct = np.diff(layer.source_q.numpy(), axis=0) > 0
    interior = np.zeros_like(mapped, dtype=bool)
    interior[1:-1] = distinct[:-1] & distinct[1:]
    np.testing.assert_allclose(mapped[interior], layer.target_q.numpy()[interior], rtol=1e-5, atol=1e-3)


@settings(max_examples=25, deadline=None)
@given(activations, st.sampled_from(["shift", "clip", "linear"]))
def test_source_equal_target_is_identity_inside_the_range(source, extrapolation):
    layer = adapted(source, source, extrapolation)
    np.testing.assert_allclose(layer(source).numpy(), source, rtol=1e-5, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(activations, st.sampled_from(["shift", "clip", "linear"]))
def test_monotone_continuous_and_finite(source, extrapolation):
    rng = np.random.default_rng(1)
    target = np.sort(rng.normal(size=source.shape), axis=0).astype(np.float32) * 4
    layer = adapted(source, target, extrapolation)
    grid = np.linspace(-1e3, 1e3, 20001, dtype=np.float32)[:, None].repeat(source.shape[1], 1)
    mapped = layer(grid).numpy().astype(np.float64)
    assert np.all(np.isfinite(mapped))
    assert np.all(np.diff(mapped, axis=0) >= -1e-4 * (1 + np.abs(mapped[1:])))
    # Continuity: on a 0.1-spaced grid no jump exceeds step x the steepest slope of the
    # collapsed map (+ float32 slack), so there is no jump at knots or range ends.
    steepest = 1.0
    for k in range(source.shape[1]):
        knots, inverse = np.unique(layer.source_q.numpy()[:, k], return_inverse=True)
        values = np.bincount(inverse, weights=layer.target_q.numpy()[:, k]) / np.bincount(inverse)
        if len(knots) > 1:
            steepest = max(steepest, float(np.max(np.diff(values) / np.diff(knots))))
    assert np.max(np.abs(np.diff(mapped, axis=0))) <= 0.1 * steepest * 1.01 + 1e-3


def test_finite_for_huge_inputs():
    source = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    layer = adapted(source, source * 2)
    huge = np.array([[1e30, -1e30, 3e38]], np.float32)
    for mode in ("shift", "clip", "linear"):
        assert np.all(np.isfinite(adapted(source, source * 2, mode)(huge).numpy())), mode
    assert layer(huge).numpy()[0, 0] > 1e29


def test_batch_size_and_row_order_independent():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(500, 5)).astype(np.float32)
    layer = adapted(source, np.exp(source))
    probe = rng.normal(size=(97, 5)).astype(np.float32) * 3
    whole = layer(probe).numpy()
    # Bit for bit on any CPU: the edit is elementwise (gathers, compares, +, -, *, /), with no
    # sum across rows whose order a batch size or a kernel could change.
    pieces = np.concatenate([layer(probe[i : i + 10]).numpy() for i in range(0, 97, 10)])
    np.testing.assert_array_equal(whole, pieces)
    order = rng.permutation(97)
    np.testing.assert_array_equal(layer(probe[order]).numpy(), whole[order])


def test_output_is_float32_and_keeps_shape_of_conv_maps():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(40, 2, 2, 3)).astype(np.float32)
    layer = NeuronEdit(quantiles=QUANTILES)
    layer.adapt(maps, maps + 1.0)
    out = layer(maps)
    assert out.dtype == "float32" and tuple(out.shape) == maps.shape
    np.testing.assert_allclose(out.numpy(), maps + 1.0, atol=1e-4)


def test_uses_linear_interpolation_percentiles():
    values = np.arange(10, dtype=np.float32)[:, None]
    layer = adapted(values, values, quantiles=(0, 25, 50, 100))
    np.testing.assert_allclose(layer.source_q.numpy()[:, 0], np.percentile(values[:, 0], [0, 25, 50, 100]))


def test_adapt_from_dataset_equals_adapt_from_array():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    source = rng.normal(size=(1000, 4)).astype(np.float32)
    target = source**2
    from_arrays = adapted(source, target)
    from_datasets = NeuronEdit(quantiles=QUANTILES)
    from_datasets.adapt(tf.data.Dataset.from_tensor_slices(source).batch(64),
                        tf.data.Dataset.from_tensor_slices(target).batch(64))
    np.testing.assert_allclose(from_datasets.source_q.numpy(), from_arrays.source_q.numpy())
    np.testing.assert_allclose(from_datasets.target_q.numpy(), from_arrays.target_q.numpy())


def test_reservoir_bounds_memory_and_stays_within_the_dkw_error():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    source = rng.normal(size=(50_000, 2)).astype(np.float32)
    layer = NeuronEdit(quantiles=(5, 50, 95), max_samples=5_000)
    layer.adapt(tf.data.Dataset.from_tensor_slices(source).batch(1000),
                tf.data.Dataset.from_tensor_slices(source).batch(1000))
    # Rank error bound at delta = 1e-6: sqrt(ln(2/delta) / (2 m)).
    bound = np.sqrt(np.log(2 / 1e-6) / (2 * 5_000))
    ranks = (source[:, None, :] <= layer.source_q.numpy()[None]).mean(0)
    assert np.all(np.abs(ranks - np.array([0.05, 0.5, 0.95])[:, None]) <= bound)


def test_serialises_through_keras_file(tmp_path):
    rng = np.random.default_rng(0)
    source = rng.normal(size=(300, 3)).astype(np.float32)
    layer = NeuronEdit(quantiles=QUANTILES, extrapolation="linear")
    layer.adapt(source, source * 2 + 1)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    probe = rng.normal(size=(20, 3)).astype(np.float32) * 5
    np.testing.assert_array_equal(loaded(probe).numpy(), model(probe).numpy())
    assert loaded.layers[-1].get_config()["extrapolation"] == "linear"


def test_loaded_layer_is_adapted_and_a_fresh_one_is_not(tmp_path):
    source = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
    layer = NeuronEdit(quantiles=QUANTILES)
    assert not layer.is_adapted
    layer.adapt(source, source + 1)
    inputs = keras.Input((3,))
    keras.Model(inputs, layer(inputs)).save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True).layers[-1]
    assert layer.is_adapted and loaded.is_adapted


def test_adapted_layer_called_on_another_width_is_a_value_error_naming_both_shapes():
    source = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
    layer = NeuronEdit(quantiles=QUANTILES)
    layer.adapt(source, source + 1)
    with pytest.raises(ValueError, match=r"expected axis -1 of input shape to have value 3.*"
                                         r"received input with shape \(2, 4\)"):
        layer(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="expected min_ndim=2"):
        layer(np.zeros(3, np.float32))


def test_gate_called_on_codes_of_another_width_is_a_value_error():
    from neuronedit_tf.layers import SupportGate

    gate = SupportGate(k=5)
    gate.adapt(np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32))
    rows = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"value 4.*received input with shape \(2, 5\)"):
        gate([np.zeros((2, 5), np.float32), rows, rows])


@pytest.mark.parametrize(
    "kwargs, message",
    [({"extrapolation": "cubic"}, "extrapolation"), ({"quantiles": (50,)}, "at least two"),
     ({"quantiles": (0, 50, 50, 100)}, "strictly increasing"), ({"quantiles": (0, 101)}, "[0, 100]")],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(NeuronEditError, match=message.replace("[", r"\[").replace("]", r"\]")):
        NeuronEdit(**kwargs)


def test_bad_activations_are_refused():
    layer = NeuronEdit()
    good = np.zeros((200, 2), np.float32)
    with pytest.raises(NeuronEditError, match="NaN or inf"):
        layer.adapt(np.full((200, 2), np.nan, np.float32), good)
    with pytest.raises(NeuronEditError, match="source has 2 neurons but target has 3"):
        layer.adapt(good, np.zeros((200, 3), np.float32))
    with pytest.raises(NeuronEditError, match="at least 2"):
        layer.adapt(good[:1], good)


def test_tiny_and_subnormal_scale_activations_stay_finite():
    # Found by hypothesis: constant activations at float32's smallest normal value.
    source = np.full((60, 1), -1.1754944e-38, np.float32)
    target = np.sort(np.random.default_rng(1).normal(size=(60, 1)), 0).astype(np.float32)
    for mode in ("shift", "clip", "linear"):
        layer = adapted(source, target, mode)
        grid = np.linspace(-10, 10, 2001, dtype=np.float32)[:, None]
        assert np.all(np.isfinite(layer(grid).numpy())), mode


GATE_SHAPES = [(1000, 50, 5), (1000, 8, 1), (203, 4, 10), (37, 3, 5), (12, 2, 5)]


def gate_problem(n_reference, n_neurons, k, draw):
    """Codes, weights and bias of ``_kth_largest`` as the gate builds them: ties (repeated
    references), codes on the references, far codes; padded groups for 203 and 37 references."""
    rng = np.random.default_rng(n_reference)
    reference = draw(rng, (n_reference, n_neurons))
    reference[n_reference // 2 : n_reference // 2 + 3 * k] = reference[0]
    codes = np.concatenate([draw(rng, (200, n_neurons)), reference[:20],
                            draw(rng, (20, n_neurons)) * 30]).astype(np.float32)
    return codes, 2.0 * reference, -(reference**2).sum(1)


def kth_largest(codes, weights, bias, k):
    import tensorflow as tf

    from neuronedit_tf.layers.support_gate import _kth_largest

    return _kth_largest(tf.constant(codes), tf.constant(weights), tf.constant(bias), k).numpy()


def one_top_k(codes, weights, bias, k):
    import tensorflow as tf

    scores = tf.matmul(codes, weights, transpose_b=True) + bias
    return tf.math.top_k(scores, k=k).values[:, -1:].numpy()


@pytest.mark.float_sensitive
@pytest.mark.parametrize("n_reference,n_neurons,k", GATE_SHAPES)
def test_gate_kth_largest_selects_exactly_the_one_top_k_value(n_reference, n_neurons, k):
    # Small integers make every score an exact float32 integer (|score| < 2^24), so the
    # group products and the one product agree bit for bit in any summation order, on any
    # CPU: what is left to differ is the selection itself, ties included.
    codes, weights, bias = gate_problem(
        n_reference, n_neurons, k, lambda rng, shape: rng.integers(-8, 9, shape).astype(np.float32))
    got = kth_largest(codes, weights, bias, k)
    np.testing.assert_array_equal(got, one_top_k(codes, weights, bias, k))


@pytest.mark.float_sensitive
@pytest.mark.parametrize("n_reference,n_neurons,k", GATE_SHAPES)
def test_gate_kth_largest_equals_one_top_k_within_the_products_rounding(n_reference, n_neurons, k):
    # The group products (rows, n/g) and the one product (rows, n) are blocked differently by
    # the matmul kernel, so their float32 scores differ in the last bits (AVX2 vs AVX-512,
    # threads). A score of n_neurons products plus a bias, summed in any order, is within
    # gamma * (sum |c_j w_j| + |b|) of the exact one, with the standard dot-product bound
    # gamma = m u / (1 - m u) <= m eps for m = n_neurons + 1 operations, u = eps / 2. The k-th
    # largest moves by at most the largest change of any score (it is 1-Lipschitz in the
    # max norm), so the two sides differ by at most twice that.
    codes, weights, bias = gate_problem(
        n_reference, n_neurons, k, lambda rng, shape: rng.normal(size=shape).astype(np.float32))
    got = kth_largest(codes, weights, bias, k)
    magnitude = np.abs(codes.astype(np.float64)) @ np.abs(weights.T) + np.abs(bias)
    gamma = (n_neurons + 1) * np.finfo(np.float32).eps
    bound = 2 * gamma * magnitude.max(axis=1, keepdims=True)
    assert np.all(np.abs(got - one_top_k(codes, weights, bias, k)) <= bound)


@pytest.mark.float_sensitive
def test_gate_weight_matches_a_float64_nearest_neighbour_count():
    from neuronedit_tf.layers import SupportGate

    rng = np.random.default_rng(0)
    reference = rng.normal(size=(3000, 10)).astype(np.float32)
    gate = SupportGate(k=5, low=1.5, high=3.0)
    gate.adapt(reference)
    codes = (rng.normal(size=(500, 10)) * rng.uniform(0.5, 4.0, size=(500, 1))).astype(np.float32)
    kept = gate.reference.numpy().astype(np.float64)
    distance = np.sqrt(((codes[:, None, :] - kept[None]) ** 2).sum(-1))
    ratio = np.sort(distance, axis=1)[:, gate.k - 1] / float(gate.scale.numpy())
    expected = np.clip((gate.high - ratio) / (gate.high - gate.low), 0.0, 1.0)
    assert 0.05 < np.mean((expected > 0) & (expected < 1))  # the band is exercised
    np.testing.assert_allclose(gate.weight(codes).numpy()[:, 0], expected, atol=1e-4)
