"""Data larger than memory: datasets and memory maps give what arrays give; exact fast percentiles."""

import numpy as np
import pytest
import tensorflow as tf

from neuronedit_tf import NeuronEditError, NeuronEditor, streaming
from neuronedit_tf.layers import NeuronEdit, percentiles

SETTINGS = dict(transform="arcsinh", hidden=(16, 8, 4), seed=1)
FIT = dict(epochs=2, verbose=0)


@pytest.fixture(scope="module")
def arrays(cytof):
    return {name: cytof[name].values for name in ("source", "target", "sample")}


@pytest.fixture(scope="module")
def array_editor(arrays):
    return NeuronEditor(**SETTINGS).fit(arrays["source"], arrays["target"],
                                        extra=arrays["sample"], **FIT)


@pytest.fixture(scope="module")
def memory_maps(arrays, tmp_path_factory):
    folder = tmp_path_factory.mktemp("npy")
    maps = {}
    for name, values in arrays.items():
        np.save(folder / f"{name}.npy", values)
        maps[name] = np.load(folder / f"{name}.npy", mmap_mode="r")
    return maps


def test_fit_from_datasets_of_rows_equals_fit_from_arrays(arrays, array_editor):
    rows = {k: tf.data.Dataset.from_tensor_slices(v) for k, v in arrays.items()}
    streamed = NeuronEditor(**SETTINGS).fit(rows["source"], rows["target"], extra=rows["sample"],
                                           **FIT)
    np.testing.assert_allclose(streamed.transform(arrays["sample"]),
                               array_editor.transform(arrays["sample"]), rtol=1e-5, atol=1e-4)
    for key in ("loss", "val_loss"):
        assert streamed.history_[key] == pytest.approx(array_editor.history_[key], rel=1e-6)


def test_fit_from_small_batches_approximates_fit_from_arrays(arrays, array_editor):
    # Other chunking changes only the float rounding of the statistics.
    batches = {k: tf.data.Dataset.from_tensor_slices(v).batch(77) for k, v in arrays.items()}
    streamed = NeuronEditor(**SETTINGS).fit(batches["source"], batches["target"],
                                           extra=batches["sample"], **FIT)
    expected = array_editor.transform(arrays["sample"])
    got = streamed.transform(arrays["sample"])
    assert np.abs(got - expected).max() < 1e-3 * np.abs(expected).max()


def test_fit_from_memory_maps_equals_fit_from_arrays(memory_maps, arrays, array_editor):
    mapped = NeuronEditor(**SETTINGS).fit(memory_maps["source"], memory_maps["target"],
                                         extra=memory_maps["sample"], **FIT)
    np.testing.assert_allclose(mapped.transform(arrays["sample"]),
                               array_editor.transform(arrays["sample"]), rtol=1e-5, atol=1e-4)


def test_memory_mapped_transform_equals_in_memory_transform(memory_maps, arrays, array_editor,
                                                            tmp_path):
    expected = array_editor.transform(arrays["sample"])
    small_chunks = streaming.Rows(memory_maps["sample"], "x", chunk_rows=300)
    np.testing.assert_array_equal(
        np.concatenate(list(small_chunks.chunks())), arrays["sample"])  # pages released, data kept
    np.testing.assert_array_equal(array_editor.transform(memory_maps["sample"]), expected)
    out = np.lib.format.open_memmap(tmp_path / "edited.npy", "w+", np.float32, expected.shape)
    assert array_editor.transform(memory_maps["sample"], out=out) is out
    del out
    np.testing.assert_array_equal(np.load(tmp_path / "edited.npy"), expected)


def test_transform_of_a_dataset_is_a_lazy_dataset_of_edited_batches(arrays, array_editor):
    batches = tf.data.Dataset.from_tensor_slices(arrays["sample"]).batch(128)
    edited = array_editor.transform(batches)
    assert isinstance(edited, tf.data.Dataset)
    np.testing.assert_allclose(np.concatenate(list(edited.as_numpy_iterator())),
                               array_editor.transform(arrays["sample"]), rtol=1e-5, atol=1e-4)


def test_streamed_nan_is_refused_with_its_row(arrays, array_editor):
    values = arrays["sample"].copy()
    values[700, 3] = np.nan
    with pytest.raises(NeuronEditError, match="row 700"):
        NeuronEditor(**SETTINGS).fit(tf.data.Dataset.from_tensor_slices(values).batch(64),
                                     arrays["target"], epochs=1, verbose=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN/inf"):
        list(array_editor.transform(tf.data.Dataset.from_tensor_slices(values).batch(64)))


def test_streams_of_the_wrong_kind_or_width_are_refused(arrays, array_editor):
    pairs = tf.data.Dataset.from_tensor_slices((arrays["source"], arrays["source"]))
    with pytest.raises(NeuronEditError, match=r"\(x, y\) pairs"):
        NeuronEditor().fit(pairs, arrays["target"])
    narrow = tf.data.Dataset.from_tensor_slices(arrays["sample"][:, :5]).batch(10)
    with pytest.raises(NeuronEditError, match="expects"):
        array_editor.transform(narrow)


def test_streaming_moments_equal_numpy():
    values = np.random.default_rng(0).normal(3.0, 2.0, size=(10_001, 4)).astype(np.float32)
    values[:, 2] = 5.0  # constant: variance 1 by convention
    mean, variance, counts = streaming.moments(
        [streaming.Rows(values, "v", chunk_rows=999)], lambda chunk: chunk)
    np.testing.assert_allclose(mean, values.astype(np.float64).mean(0), rtol=1e-6)
    expected = values.astype(np.float64).var(0)
    expected[2] = 1.0
    np.testing.assert_allclose(variance, expected, rtol=1e-5)
    assert counts == [10_001]


def test_validation_split_holds_out_evenly_spread_rows():
    mask = streaming._validation_mask(0, 1000, 0.1).numpy()
    assert mask.sum() == 100 and set(np.diff(np.flatnonzero(mask))) == {10}


def test_in_memory_and_buffered_pipelines_hold_out_the_same_rows():
    # Up to shuffle_rows the rows are held once (training and validation from one pass);
    # beyond, they stream through the buffer. Both must validate on the very same
    # batches and train on the same rows, or a fit's early stopping depends on its size.
    from neuronedit_tf import models

    values = np.random.default_rng(0).normal(size=(1003, 3)).astype(np.float32)
    pre = models.preprocessing(3, values.mean(0), values.var(0))
    rows = [streaming.Rows(values[:600], "s", chunk_rows=128), streaming.Rows(values[600:], "t")]
    held, streamed = (streaming.training_data(rows, pre, len(values), 0.1, 64, seed=0,
                                              shuffle_rows=buffer, validation_batch=40,
                                              counts=[600, 403])
                      for buffer in (10_000, 100))
    assert held[1] == streamed[1] == -(-903 // 64)
    for a, b in zip(held[2], streamed[2], strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    first_epoch = [np.concatenate([next(iter_) for _ in range(held[1])])
                   for iter_ in (iter(held[0].as_numpy_iterator()),
                                 iter(streamed[0].as_numpy_iterator()))]
    expected = pre(values).numpy()[~streaming._validation_mask(0, 1003, 0.1).numpy()]
    for epoch in first_epoch:
        assert epoch.shape == expected.shape
        np.testing.assert_array_equal(np.sort(epoch, axis=0), np.sort(expected, axis=0))


@pytest.mark.parametrize("kind", ["arrays", "datasets"])
def test_beyond_the_buffer_the_streams_are_read_side_by_side(kind):
    # Read one after the other, a buffer smaller than S would give batches of S alone for
    # the first part of every epoch (then T's, then X's): arrays' chunks are read in a
    # seeded random order, datasets' drawn in proportion to their rows, so the first
    # batches hold every stream in its share.
    from neuronedit_tf import models

    sizes = [4000, 2000, 1000, 1000]
    pre = models.preprocessing(2, np.zeros(2, np.float32), np.ones(2, np.float32))
    values = [np.full((n, 2), float(k), np.float32) for k, n in enumerate(sizes)]
    rows = [streaming.Rows(v if kind == "arrays" else tf.data.Dataset.from_tensor_slices(v)
                           .batch(25), str(k), chunk_rows=25) for k, v in enumerate(values)]
    training, steps, _ = streaming.training_data(rows, pre, sum(sizes), 0.1, 50, seed=0,
                                                 shuffle_rows=200, counts=sizes)
    batches = training.as_numpy_iterator()
    first_quarter = np.concatenate([next(batches) for _ in range(steps // 4)])[:, 0]
    shares = [float(np.mean(first_quarter == k)) for k in range(len(sizes))]
    # 0.5, 0.25, 0.125, 0.125 in the data (in turn: 1, 0, 0, 0); ~72 chunks drawn, so a
    # seed's shares stray by ~0.05.
    np.testing.assert_allclose(shares, np.divide(sizes, sum(sizes)), atol=0.1)
    # Seeded: a resumed fit skips the epochs done on a fresh pipeline and reads the same rows.
    again, _, _ = streaming.training_data(rows, pre, sum(sizes), 0.1, 50, seed=0,
                                          shuffle_rows=200, counts=sizes)
    for _ in range(steps - steps // 4):  # the rest of the first epoch
        next(batches)
    second_epoch = [next(batches) for _ in range(steps)]
    resumed = [b for _, b in zip(range(steps), again.skip(steps).as_numpy_iterator())]
    for a, b in zip(second_epoch, resumed, strict=True):
        np.testing.assert_array_equal(a, b)


def test_streams_read_side_by_side_hold_no_chunk_each(tmp_path):
    # A study's 100 memory-mapped anchors are read side by side: a stream that kept its last
    # chunk while the others are read would hold 100 chunks (~1 GB at 65,536 rows x 37
    # features). Here 40 open streams of 5 chunks each, read for half an epoch: what is held
    # must be a few chunks in flight, not one per stream. tracemalloc sees numpy's
    # allocations (the chunks read from the maps), not TensorFlow's (the shuffle buffer).
    import tracemalloc

    from neuronedit_tf import models

    n_streams, n_rows, chunk_rows, width = 40, 10_000, 2_000, 16
    streams = []
    for k in range(n_streams):
        np.save(tmp_path / f"{k}.npy", np.full((n_rows, width), float(k), np.float32))
        streams.append(streaming.Rows(np.load(tmp_path / f"{k}.npy", mmap_mode="r"), str(k),
                                      chunk_rows=chunk_rows))
    pre = models.preprocessing(width, np.zeros(width, np.float32), np.ones(width, np.float32))
    training, steps, _ = streaming.training_data(
        streams, pre, n_streams * n_rows, 0.1, 1000, seed=0, shuffle_rows=5000,
        counts=[n_rows] * n_streams)
    tracemalloc.start()
    try:
        batches = iter(training)
        seen = set()
        for _ in range(steps // 2):
            seen.update(np.unique(next(batches).numpy()[:, 0]).tolist())
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(seen) > n_streams * 3 // 4  # most streams drawn (and few finished)
    chunk_bytes = chunk_rows * width * 4
    assert held < 4 * chunk_bytes, f"{held / chunk_bytes:.1f} chunks held by {n_streams} streams"


@pytest.mark.parametrize("n_rows", [2, 101, 1000, 4097])
def test_percentiles_equal_numpy_exactly(n_rows):
    rng = np.random.default_rng(n_rows)
    values = rng.normal(size=(n_rows, 6)).astype(np.float32)
    values[:, 1] = np.round(values[:, 1])  # ties
    values[:, 2] = 0.0  # constant
    quantiles = np.linspace(0, 100, 101)
    np.testing.assert_array_equal(percentiles(values, quantiles),
                                  np.percentile(values, quantiles, axis=0).astype(np.float32))


def test_percentiles_agree_with_tfp_reference():
    import tensorflow_probability as tfp

    values = np.random.default_rng(0).lognormal(size=(5000, 5)).astype(np.float32)
    quantiles = np.arange(101.0)
    reference = tfp.stats.percentile(values, quantiles, axis=0, interpolation="linear").numpy()
    np.testing.assert_allclose(percentiles(values, quantiles), reference, rtol=1e-5, atol=1e-6)


def test_adapt_takes_a_generator_of_batches():
    values = np.random.default_rng(0).normal(size=(3000, 3)).astype(np.float32)
    whole, streamed = NeuronEdit(), NeuronEdit()
    whole.adapt(values, values * 2)
    streamed.adapt((values[i : i + 512] for i in range(0, 3000, 512)),
                   (values[i : i + 512] * 2 for i in range(0, 3000, 512)))
    np.testing.assert_array_equal(whole.target_q.numpy(), streamed.target_q.numpy())


def test_the_edit_is_fitted_on_a_bounded_seeded_sample_of_long_streams(arrays, monkeypatch):
    """Beyond EDIT_ROWS rows of S or T, fit holds a seeded uniform sample of that many for the
    edit's tables (memory flat in the rows); up to it every row, so results are unchanged."""
    from neuronedit_tf import editor as editor_module
    from neuronedit_tf.layers.neuron_edit import reservoir

    values = arrays["source"]
    rows = streaming.Rows(values, "source")
    scale = lambda chunk, training=False: chunk * 2.0  # noqa: E731
    np.testing.assert_array_equal(rows.standardised(scale, len(values), 0), values * 2.0)
    sampled = rows.standardised(scale, 300, 7)
    assert sampled.shape == (300, values.shape[1])
    np.testing.assert_array_equal(sampled, reservoir([values * 2.0], 300, 7))
    np.testing.assert_array_equal(sampled, rows.standardised(scale, 300, 7))  # seeded
    assert not np.array_equal(sampled, rows.standardised(scale, 300, 8))

    seen = []
    adapt = NeuronEdit.adapt

    def recording(self, source, target, *args, **kwargs):
        seen.append((self.name, len(source), len(target)))
        return adapt(self, source, target, *args, **kwargs)

    monkeypatch.setattr(NeuronEdit, "adapt", recording)
    monkeypatch.setattr(editor_module, "EDIT_ROWS", 300)
    NeuronEditor(**SETTINGS).fit(arrays["source"], arrays["target"], **FIT)
    assert len(arrays["source"]) > 300 and len(arrays["target"]) > 300
    assert seen and all(n_source == 300 and n_target == 300 for _, n_source, n_target in seen)
