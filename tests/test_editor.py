"""NeuronEditor: fit/transform/save/load/export on the real CyTOF spike-in files."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from neuronedit_tf import NeuronEditError, NeuronEditor, metrics, models
from neuronedit_tf.data.fcs import FCSData
from neuronedit_tf.export import TOLERANCE

from conftest import arcsinh


def test_edit_moves_the_sample_toward_the_real_batch(small_editor, cytof):
    edited = small_editor.transform(cytof["sample"])
    uncorrected = metrics.mean_emd(arcsinh(cytof["sample"].values), arcsinh(cytof["truth"].values))
    corrected = metrics.mean_emd(arcsinh(edited.values), arcsinh(cytof["truth"].values))
    assert corrected < uncorrected


def test_edit_applies_the_spike_in_median_change(small_editor, cytof):
    edited = small_editor.transform(cytof["sample"])
    r = metrics.median_change_r(*(arcsinh(d.values) for d in (
        cytof["source"], cytof["target"], cytof["sample"], edited)))
    assert r > 0.7


def test_graph_is_raw_in_raw_out_with_exact_inverse_transform(small_editor, cytof):
    pre, post = small_editor.part("preprocessing"), small_editor.part("postprocessing")
    raw = cytof["sample"].values
    np.testing.assert_allclose(models.run(post, models.run(pre, raw)), raw, rtol=1e-3, atol=1e-2)


def test_fcs_input_returns_fcs_with_every_channel_and_keyword(small_editor, cytof):
    edited = small_editor.transform(cytof["sample"])
    assert isinstance(edited, FCSData)
    assert edited.channels == cytof["sample"].channels and edited.text == cytof["sample"].text
    assert not np.allclose(edited.values, cytof["sample"].values)


def test_dataframe_columns_are_matched_by_name_and_index_kept(small_editor, cytof):
    frame = cytof["sample"].to_frame()
    frame.index = [f"cell{i}" for i in range(len(frame))]
    expected = small_editor.transform(frame)
    shuffled = frame[list(reversed(frame.columns))]
    got = small_editor.transform(shuffled)
    assert list(got.columns) == list(shuffled.columns) and list(got.index) == list(frame.index)
    np.testing.assert_allclose(got.to_numpy(), expected[shuffled.columns].to_numpy(), rtol=1e-6)


def test_transform_keeps_row_order(small_editor, cytof):
    values = cytof["sample"].values
    order = np.random.default_rng(0).permutation(len(values))
    whole = small_editor.transform(values)
    np.testing.assert_allclose(small_editor.transform(values[order]), whole[order], rtol=1e-5,
                               atol=1e-4)


def test_save_load_round_trip_gives_identical_outputs(small_editor, cytof, tmp_path):
    path = small_editor.save(tmp_path / "editor")
    loaded = NeuronEditor.load(path)
    np.testing.assert_array_equal(loaded.transform(cytof["sample"].values),
                                  small_editor.transform(cytof["sample"].values))
    assert loaded.columns_ == small_editor.columns_
    with pytest.raises(NeuronEditError, match="exists"):
        small_editor.save(path)


def test_seeded_fits_repeat_exactly(cytof):
    def fit():
        editor = NeuronEditor(transform="arcsinh", hidden=(16, 8, 4), seed=3)
        editor.fit(cytof["source"], cytof["target"], extra=cytof["sample"], epochs=2, verbose=0)
        return editor.transform(cytof["sample"].values)

    np.testing.assert_array_equal(fit(), fit())


def test_export_runs_in_a_process_that_never_imports_the_package(small_editor, cytof, tmp_path):
    report = small_editor.export(tmp_path / "served")
    assert report["parity"]["saved_model"]["max_error"] <= TOLERANCE
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(tmp_path / 'served')!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        "out = list(m.signatures['serving_default'](tf.constant(x)).values())[0].numpy()\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, out)\n"
        "assert 'neuronedit_tf' not in sys.modules\n"
    )
    np.save(tmp_path / "x.npy", cytof["sample"].values)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path,
                   env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"),
                               small_editor.transform(cytof["sample"].values), rtol=1e-4, atol=1e-3)


def test_conv_editor_edits_images():
    from sklearn.datasets import load_digits

    digits = load_digits().images.astype(np.float32)
    labels = load_digits().target
    source = digits[labels == 0]
    target = np.clip(source * 1.5, 0, 16)
    extra = digits[labels == 6]
    editor = NeuronEditor(model="conv", quantiles=range(0, 101, 10), seed=0)
    editor.fit(source, target, extra=extra, epochs=2, verbose=0)
    out = editor.transform(extra)
    assert out.shape == extra.shape + (1,) and np.all(np.isfinite(out))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda v: np.where(np.arange(v.size).reshape(v.shape) == 5, np.nan, v), "NaN/inf"),
        (lambda v: v[:, :10], "columns"),
        (lambda v: v[:0], "empty"),
        (lambda v: v.ravel(), "2-D"),
        (lambda v: v.astype(str).astype(object) + "x", "not numeric"),
    ],
    ids=["nan", "width", "empty", "1-D", "strings"],
)
def test_bad_input_to_transform_is_refused_clearly(small_editor, cytof, make, message):
    with pytest.raises(NeuronEditError, match=message):
        small_editor.transform(make(cytof["sample"].values))


def test_missing_and_extra_named_columns_are_listed(small_editor, cytof):
    frame = cytof["sample"].to_frame().rename(columns={"Nd142Di": "Nd142"})
    with pytest.raises(NeuronEditError, match=r"missing \['Nd142Di'\], extra \['Nd142'\]"):
        small_editor.transform(frame)


def test_too_few_rows_for_the_quantiles_is_refused(cytof):
    with pytest.raises(NeuronEditError, match="fewer than the 101 quantiles"):
        NeuronEditor(method="paper").fit(cytof["source"].values[:50], cytof["target"].values,
                                         epochs=1)
    with pytest.raises(NeuronEditError, match="fewer than the 2 quantiles"):
        NeuronEditor().fit(cytof["source"].values[:1], cytof["target"].values, epochs=1)


def test_unfitted_editor_says_so():
    with pytest.raises(NeuronEditError, match="not fitted"):
        NeuronEditor().transform(np.zeros((3, 3)))


def test_constant_features_and_far_values_stay_finite(cytof):
    source = cytof["source"].values.copy()
    source[:, 0] = 7.0
    editor = NeuronEditor(transform="arcsinh", hidden=(16, 8, 4), seed=0)
    editor.fit(source, cytof["target"].values, epochs=2, verbose=0)
    far = cytof["sample"].values.copy() * 1e6
    assert np.all(np.isfinite(editor.transform(far)))
    assert np.all(np.isfinite(editor.transform(pd.DataFrame(source))))


@pytest.mark.float_sensitive  # the same kernels in both paths on any CPU: rerun to hold it
def test_several_steps_per_call_train_the_very_same_weights_as_one(cytof):
    """The default runs several steps per compiled call; each step is the same ops on the
    same batches as Keras's one step per call, so the weights are the same bit for bit."""
    def fit(**options):
        editor = NeuronEditor(transform="arcsinh", hidden=(16, 8, 4), seed=3)
        return editor.fit(cytof["source"], cytof["target"], extra=cytof["sample"], epochs=3,
                          verbose=0, **options)

    from neuronedit_tf.distribute import compile_for_training
    from neuronedit_tf.models import dense_autoencoder

    # The default is several steps per call (30 for a 300-step epoch) ...
    assert compile_for_training(dense_autoencoder(5, (4, 2)), "adam", 300).steps_per_execution == 30
    default, one_step = fit(), fit(steps_per_execution=1)
    # ... and it trains exactly what one step per call trains.
    for got, expected in zip(default.model_.get_weights(), one_step.model_.get_weights()):
        np.testing.assert_array_equal(got, expected)
    assert default.history_ == one_step.history_


def test_fast_training_configuration_is_seeded_and_trains_the_same_model(cytof):
    """fit(jit_compile="auto"): XLA on top of the default's several steps per call."""
    def fit(**options):
        editor = NeuronEditor(transform="arcsinh", hidden=(16, 8, 4), seed=3)
        editor.fit(cytof["source"], cytof["target"], extra=cytof["sample"], epochs=3, verbose=0,
                   **options)
        return editor

    fast = [fit(jit_compile="auto") for _ in range(2)]
    plain = fit()
    np.testing.assert_array_equal(fast[0].transform(cytof["sample"].values),
                                  fast[1].transform(cytof["sample"].values))
    assert len(fast[0].history_["loss"]) == len(plain.history_["loss"]) == 3
    np.testing.assert_allclose(fast[0].history_["loss"], plain.history_["loss"], rtol=0.05)


def test_constructor_arguments_are_stored_untouched_and_cloned_by_scikit_learn():
    base = pytest.importorskip("sklearn.base")
    editor = NeuronEditor(hidden=[16, 8, 4], transform="arcsinh", seed=3)
    assert editor.get_params()["hidden"] == [16, 8, 4] and editor.get_params()["method"] is None
    clone = base.clone(editor)
    assert clone is not editor and clone.get_params() == editor.get_params()
    assert NeuronEditor(**editor.get_params()).get_params() == editor.get_params()


def test_set_params_checks_like_the_constructor_and_refuses_unknown_names():
    editor = NeuronEditor().set_params(seed=4, transform="arcsinh")
    assert (editor.seed, editor.get_params()["transform"]) == (4, "arcsinh")
    with pytest.raises(ValueError, match="Invalid parameter 'epoch'"):
        editor.set_params(epoch=3)
    with pytest.raises(NeuronEditError, match="members must be a positive integer"):
        editor.set_params(members=0)
    assert editor.members == 1


def test_fitted_state_ends_in_an_underscore_and_old_names_warn(small_editor):
    assert small_editor.model == "dense" and small_editor.model_.name
    assert small_editor.method_ == "gated" and len(small_editor.columns_) == 37
    with pytest.warns(DeprecationWarning, match=r"history_"):
        assert small_editor.history is small_editor.history_
    with pytest.warns(DeprecationWarning, match=r"columns_"):
        assert small_editor.columns == small_editor.columns_


def test_training_settings_in_the_constructor_train_as_the_same_fit_arguments(cytof):
    pair = cytof["source"].values, cytof["target"].values
    configured = NeuronEditor(hidden=(8, 4, 2), epochs=2, batch_size=200, verbose=0).fit(*pair)
    overridden = NeuronEditor(hidden=(8, 4, 2), epochs=50).fit(*pair, epochs=2, batch_size=200,
                                                               verbose=0)
    assert configured.get_params()["epochs"] == 2 and len(configured.history_["loss"]) == 2
    np.testing.assert_array_equal(configured.transform(pair[0]), overridden.transform(pair[0]))


def test_a_fit_says_where_its_time_went(cytof):
    import time

    editor = NeuronEditor(transform="arcsinh", cofactor=5.0, hidden=(16, 8), seed=0)
    start = time.perf_counter()
    editor.fit(cytof["source"], cytof["target"], epochs=2, verbose=0)
    wall = time.perf_counter() - start
    phases = editor.timings_
    assert list(phases) == ["inputs", "statistics", "pipeline", "training", "edit"]
    assert all(seconds > 0 for seconds in phases.values())
    # The phases do not overlap: together they are at most the fit's wall time, and they
    # account for most of it (what is left is only the few steps between them).
    assert 0.8 * wall < sum(phases.values()) <= wall
    data_space = NeuronEditor(method="quantile_map").fit(cytof["source"], cytof["target"])
    assert list(data_space.timings_) == ["inputs", "statistics", "edit"]
