"""Every comparison method, through the registry, on the real CyTOF spike-ins and on digits."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from neuronedit_tf import NeuronEditError, NeuronEditor, baselines, metrics
from neuronedit_tf.data.fcs import FCSData

from conftest import arcsinh

SMALL_NETWORK = {"hidden": (32, 16, 8), "epochs": 2}
SMALL_GAN = {"hidden": (32, 16, 8), "epochs": 3}
#: Small, fast settings per method (the defaults are the paper's, for real runs).
SETTINGS = {
    "neuron_edit": SMALL_NETWORK,
    "constant_shift": SMALL_NETWORK,
    "regae": SMALL_NETWORK,
    "gan": SMALL_GAN,
    "cyclegan": SMALL_GAN,
    "resnetgan": SMALL_GAN,
    "cca": {"max_pairs": 300},
}
NETWORKS = ("neuron_edit", "constant_shift", "regae", "gan", "cyclegan", "resnetgan")
IMAGE_METHODS = NETWORKS + ("none", "train_mean", "mean_shift", "quantile_map", "pca_edit")
TABLE_ONLY = ("combat", "limma", "mnn", "cca")
#: Methods that must bring the sample closer to its real batch-B file than no correction.
CORRECTING = ("mean_shift", "quantile_map", "pca_edit", "combat", "limma", "mnn", "cca")


def make(name, **extra):
    return baselines.get(name, transform="arcsinh", **SETTINGS.get(name, {}), **extra)


@pytest.fixture(scope="module")
def fitted(cytof):
    """Each method fitted once on the spike-ins (donor 1, batch 021 -> 028), X = donor 2."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = make(name).fit(cytof["source"], cytof["target"], extra=cytof["sample"])
        return cache[name]

    return get


@pytest.fixture(scope="module")
def digits():
    """Real 8x8 digits: S = 300 digits 0-4, T = S shifted one pixel right, X = 300 digits 5-9."""
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    images = images.reshape(-1, 8, 8).astype("float32")
    source = images[labels < 5][:300]
    return {"source": source, "target": np.roll(source, 1, axis=2),
            "sample": images[labels >= 5][:300]}


def test_registry_lists_every_method_with_a_description():
    listed = dict(baselines.list())
    assert set(listed) == set(NETWORKS + TABLE_ONLY + IMAGE_METHODS)
    assert all(isinstance(d, str) and d for d in listed.values())
    assert baselines.names() == [name for name, _ in baselines.list()]
    with pytest.raises(NeuronEditError, match="Unknown method 'nope'"):
        baselines.get("nope")


@pytest.mark.parametrize("name", baselines.names())
def test_method_fits_and_transforms_the_cytof_sample(name, fitted, cytof):
    corrected = fitted(name).transform(cytof["sample"])
    assert isinstance(corrected, FCSData)
    assert corrected.channels == cytof["sample"].channels
    assert corrected.values.shape == cytof["sample"].values.shape
    assert np.all(np.isfinite(corrected.values))
    if name != "none":
        assert not np.allclose(corrected.values, cytof["sample"].values)


@pytest.mark.parametrize("name", CORRECTING)
def test_classical_and_data_space_methods_move_the_sample_toward_its_real_batch(
        name, fitted, cytof):
    truth = arcsinh(cytof["truth"].values)
    corrected = fitted(name).transform(cytof["sample"])
    assert (metrics.mean_emd(arcsinh(corrected.values), truth)
            < metrics.mean_emd(arcsinh(cytof["sample"].values), truth))


@pytest.mark.parametrize("name", baselines.names())
def test_save_load_round_trip_gives_identical_outputs(name, fitted, cytof, tmp_path):
    method = fitted(name)
    path = method.save(tmp_path / name)
    loaded = baselines.load(path)
    assert type(loaded) is type(method) and loaded.get_config() == method.get_config()
    np.testing.assert_array_equal(loaded.transform(cytof["sample"].values),
                                  method.transform(cytof["sample"].values))
    with pytest.raises(NeuronEditError, match="exists"):
        method.save(path)


@pytest.mark.parametrize("name", baselines.names())
def test_seeded_runs_repeat_exactly(name, fitted, cytof):
    again = make(name).fit(cytof["source"], cytof["target"], extra=cytof["sample"])
    np.testing.assert_array_equal(again.transform(cytof["sample"].values),
                                  fitted(name).transform(cytof["sample"].values))


@pytest.mark.parametrize("name", IMAGE_METHODS)
def test_image_capable_methods_fit_and_transform_digits(name, digits):
    options = {"model": "conv", "filters": (8, 16, 32), "epochs": 1} if name in NETWORKS else {}
    method = baselines.get(name, **options)
    edited = method.fit(digits["source"], digits["target"], extra=digits["sample"]).transform(
        digits["sample"])
    assert edited.shape == digits["sample"].shape + (1,)
    assert np.all(np.isfinite(edited))


@pytest.mark.parametrize("name", TABLE_ONLY)
def test_table_only_methods_refuse_images_with_a_clear_error(name, digits):
    with pytest.raises(NeuronEditError, match="flatten"):
        baselines.get(name).fit(digits["source"], digits["target"])


def test_gan_losses_fall_during_training(fitted):
    # Per-epoch means over the first epochs of the real spike-in pair (seed 0).
    gan, cyclegan = fitted("gan").history_, fitted("cyclegan").history_
    assert gan["discriminator_loss"][-1] < gan["discriminator_loss"][0]
    for loss in ("generator_loss", "discriminator_loss", "cycle_loss"):
        assert cyclegan[loss][-1] < cyclegan[loss][0], loss


def test_tfgan_compat_imports_in_a_fresh_interpreter():
    code = (
        "import tensorflow as tf\n"
        "from neuronedit_tf.baselines.tfgan_compat import tfgan\n"
        "assert not hasattr(tf, 'estimator')\n"
        "loss = tfgan.losses.wargs.modified_generator_loss(tf.zeros([4, 1]))\n"
        "a = tf.random.stateless_normal([200, 3], seed=[1, 2], dtype=tf.float64)\n"
        "fd = tfgan.eval.frechet_classifier_distance_from_activations(a, a + 1.0)\n"
        "print(round(float(loss), 4), round(float(fd), 4))\n"
    )
    path = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["0.6931", "3.0"]


@pytest.fixture(scope="module")
def sample_frame(cytof):
    frame = cytof["sample"].to_frame()
    frame.index = [f"cell{i}" for i in range(len(frame))]
    return frame


def test_dataframe_columns_are_matched_by_name_and_index_kept(fitted, sample_frame):
    method = fitted("mean_shift")
    reversed_columns = list(reversed(sample_frame.columns))
    corrected = method.transform(sample_frame[reversed_columns])
    # Like NeuronEditor.transform: the input's column order and index come back.
    assert list(corrected.columns) == reversed_columns
    assert list(corrected.index) == list(sample_frame.index)
    np.testing.assert_allclose(corrected[list(sample_frame.columns)].to_numpy(),
                               method.transform(sample_frame.to_numpy()), rtol=1e-6)


def test_bad_inputs_get_the_same_clear_errors_as_neuron_editor(fitted, sample_frame):
    with pytest.raises(NeuronEditError, match="columns do not match"):
        fitted("mean_shift").transform(sample_frame.iloc[:, 1:])
    with pytest.raises(NeuronEditError, match="NaN"):
        baselines.get("mean_shift").fit(np.full((5, 2), np.nan), np.zeros((5, 2)))
    with pytest.raises(NeuronEditError, match="not fitted"):
        baselines.get("combat").transform(sample_frame)
    with pytest.raises(NeuronEditError, match="needs at least 101"):
        baselines.get("quantile_map").fit(np.zeros((50, 2)), np.ones((50, 2)))


def test_quantile_map_sends_source_percentiles_onto_target_percentiles(fitted, cytof):
    mapped = arcsinh(fitted("quantile_map").transform(cytof["source"]).values)
    target = arcsinh(cytof["target"].values)
    # Exact at the knots up to interpolating between order statistics (and ties at 0,
    # which the map collapses), so compare away from the zero-inflated low percentiles.
    levels = [50, 75, 90]
    np.testing.assert_allclose(np.percentile(mapped, levels, axis=0),
                               np.percentile(target, levels, axis=0), atol=1e-2)


def test_limma_batch_effect_is_the_least_squares_mean_difference(fitted, cytof):
    source, target = arcsinh(cytof["source"].values), arcsinh(cytof["target"].values)
    np.testing.assert_allclose(fitted("limma").state_["batch_effect"],
                               target.mean(0) - source.mean(0), atol=1e-5)


def test_combat_map_is_read_exactly_from_scanpy_and_moves_source_means_to_target(
        fitted, cytof):
    import anndata
    import scanpy

    source, target = arcsinh(cytof["source"].values), arcsinh(cytof["target"].values)
    both = np.concatenate([source, target])
    obs = pd.DataFrame({"batch": pd.Categorical(["A"] * len(source) + ["B"] * len(target))},
                       index=[str(i) for i in range(len(both))])
    reference = scanpy.pp.combat(anndata.AnnData(both, obs=obs), key="batch", inplace=False)
    state = fitted("combat").state_
    np.testing.assert_allclose(state["scale"][0] * source + state["offset"][0],
                               reference[: len(source)], rtol=1e-6, atol=1e-6)
    moved = arcsinh(fitted("combat").transform(cytof["source"]).values)
    shift, applied = target.mean(0) - source.mean(0), moved.mean(0) - source.mean(0)
    assert np.corrcoef(shift, applied)[0, 1] > 0.95


def test_mnn_pairs_match_a_brute_force_search():
    from neuronedit_tf.baselines.mnn import mnn_pairs

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(60, 3)), rng.normal(size=(50, 3)) + 0.3
    distances = np.linalg.norm(a[:, None] - b[None], axis=2)
    k = 5
    near_b = np.argsort(distances, axis=1)[:, :k]
    near_a = np.argsort(distances, axis=0)[:k, :]
    expected = sorted((i, j) for i in range(60) for j in near_b[i] if i in near_a[:, j])
    assert list(zip(*[x.tolist() for x in mnn_pairs(a, b, k)])) == expected


def test_mnn_recovers_a_pure_translation_exactly():
    # Well separated clusters, a shift far smaller than the spread: each S cell's only
    # mutual neighbour is its own shifted copy, so every correction vector is the shift.
    rng = np.random.default_rng(0)
    source = np.repeat(np.eye(4) * 10, 30, axis=0) + rng.normal(0, 0.1, size=(120, 4))
    shift = np.array([0.002, -0.001, 0.0, 0.003])
    method = baselines.get("mnn", k=1, cos_norm=False, sigma=1.0).fit(source, source + shift)
    sample = rng.normal(0, 3, size=(10, 4)) + 5
    np.testing.assert_allclose(method.transform(sample) - sample,
                               np.broadcast_to(shift, sample.shape), atol=1e-5)


def test_a_neuron_editor_folder_loads_through_the_registry(fitted, cytof, tmp_path):
    editor = fitted("neuron_edit").editor
    assert isinstance(editor, NeuronEditor)
    method = baselines.load(editor.save(tmp_path / "editor"))
    assert method.name == "neuron_edit" and isinstance(method.editor, NeuronEditor)
    np.testing.assert_array_equal(method.transform(cytof["sample"].values),
                                  editor.transform(cytof["sample"].values))


@pytest.mark.parametrize("name", ["quantile_map", "gan", "neuron_edit", "mnn"])
def test_constructor_arguments_are_parameters_that_scikit_learn_clones(name):
    base = pytest.importorskip("sklearn.base")
    method = make(name)
    clone = base.clone(method)
    assert type(clone) is type(method) and clone.get_params() == method.get_params()
    assert method.get_params()["transform"] == "arcsinh"
    with pytest.raises(ValueError, match="Invalid parameter"):
        method.set_params(no_such_setting=1)


@pytest.mark.parametrize("transform", ["arcsinh", "logicle"])
def test_array_baselines_return_raw_units_on_every_scale(transform):
    # A mean shift on the analysis scale, mapped back: raw values in, raw values out
    # (logicle outputs used to stay on the logicle scale).
    rng = np.random.default_rng(0)
    source = rng.uniform(100.0, 5000.0, size=(400, 3)).astype(np.float32)
    moved = baselines.get("mean_shift", transform=transform).fit(source, source).transform(source)
    np.testing.assert_allclose(moved, source, rtol=1e-3)
