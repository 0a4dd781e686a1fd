"""NeuronEditor(members=K): K autoencoders trained side by side, edited and decoded as one graph."""

import keras
import numpy as np
import pytest

from neuronedit_tf import NeuronEditError, NeuronEditor, models
from neuronedit_tf.layers import NeuronEdit

SMALL = dict(transform="arcsinh", cofactor=5.0, hidden=(32, 16, 8))


def test_member_slice_takes_columns_and_round_trips_its_config():
    layer = models.MemberSlice(2, 5, name="member_1")
    x = np.arange(12, dtype="float32").reshape(2, 6)
    np.testing.assert_array_equal(layer(x).numpy(), x[:, 2:5])
    clone = models.MemberSlice.from_config(layer.get_config())
    assert (clone.start, clone.stop) == (2, 5)
    with pytest.raises(NeuronEditError, match="start < stop"):
        models.MemberSlice(3, 3)


def test_ensemble_decodes_the_mean_of_its_members_and_edits_each_member():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype("float32")
    parts = [models.split_at(models.dense_autoencoder(6, (16, 4), seed=s), "bottleneck")
             for s in (0, 7, 13)]
    plain = [(models.run(e, x), d) for e, d in parts]
    encoder, decoder = models.ensemble([e for e, _ in parts], [d for _, d in parts])
    codes = models.run(encoder, x)
    assert codes.shape == (300, 12)
    np.testing.assert_allclose(codes, np.concatenate([c for c, _ in plain], 1), atol=1e-6)
    members = np.mean([models.run(d, c) for c, d in plain], 0)
    np.testing.assert_allclose(models.run(decoder, codes), members, atol=1e-5)
    # One NeuronEdit on the joined codes is the members' own edits, side by side.
    shifted = codes + np.linspace(0.5, 2.0, 12, dtype="float32")
    joined = NeuronEdit()
    joined.adapt(codes, shifted)
    for k in range(3):
        own = NeuronEdit()
        own.adapt(codes[:, 4 * k:4 * k + 4], shifted[:, 4 * k:4 * k + 4])
        np.testing.assert_allclose(joined(codes).numpy()[:, 4 * k:4 * k + 4],
                                   own(codes[:, 4 * k:4 * k + 4]).numpy(), atol=1e-5)
    with pytest.raises(NeuronEditError, match="as many decoders"):
        models.ensemble([parts[0][0]], [])


def test_one_member_ensemble_is_the_member_itself():
    encoder, decoder = models.split_at(models.dense_autoencoder(5, (8, 3), seed=0), "bottleneck")
    assert models.ensemble([encoder], [decoder]) == (encoder, decoder)


@pytest.fixture(scope="module")
def fitted(cytof):
    source, target = cytof["source"].values[:600], cytof["target"].values[:600]
    sample = cytof["sample"].values[:600]
    kwargs = dict(extra=sample, epochs=4, verbose=0, deterministic=True)
    ensemble = NeuronEditor(method="gated", members=2, seed=3, **SMALL).fit(source, target,
                                                                             **kwargs)
    return {"ensemble": ensemble, "sample": sample}


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_members_train_side_by_side_each_as_if_alone_on_the_same_batches(loop):
    # Each member's gradient comes from its own loss only (Adam is blind to the 1/K
    # scale of the mean): member k ends as the same autoencoder trained alone.
    import tensorflow as tf

    from neuronedit_tf import distribute

    x = np.random.default_rng(0).normal(size=(400, 6)).astype("float32")
    training = tf.data.Dataset.from_tensor_slices(x).batch(50).repeat()
    validation = tf.data.Dataset.from_tensor_slices(x[:100]).batch(50)
    strategy = tf.distribute.get_strategy()

    def train(build, copies):
        if loop == "fit":
            return distribute.train(build, strategy, training, 8, validation, epochs=3,
                                    patience=10, learning_rate=1e-3, verbose=0,
                                    copies=copies)[0]
        model = build()
        distribute.custom_loop(model, keras.optimizers.Adam(1e-3), strategy, training, 8,
                               validation, 3, patience=10, verbose=0, copies=copies)
        return model

    joint = train(lambda: models.side_by_side(
        [models.dense_autoencoder(6, (16, 4), seed=s) for s in (3, 4)]), 2)
    alone = train(lambda: models.dense_autoencoder(6, (16, 4), seed=4), 1)
    untrained = models.dense_autoencoder(6, (16, 4), seed=4)
    member = joint.get_layer("autoencoder_1")
    np.testing.assert_allclose(models.run(member, x), models.run(alone, x), atol=1e-4)
    assert np.abs(models.run(member, x) - models.run(untrained, x)).max() > 1e-2
    assert joint.output.shape[-1] == 12


def test_editor_members_are_the_side_by_side_autoencoders(fitted):
    ensemble, x = fitted["ensemble"], fitted["sample"]
    standard = models.run(ensemble.part("preprocessing"), x)
    codes = models.run(ensemble.part("encoder"), standard)
    one = keras.Model(ensemble.part("encoder").get_layer("encoder_1").input,
                      ensemble.part("encoder").get_layer("encoder_1").output)
    np.testing.assert_allclose(codes[:, 8:], models.run(one, standard), atol=1e-6)
    # The members start from different seeds and stay different.
    assert np.abs(codes[:, :8] - codes[:, 8:]).mean() > 1e-2
    assert len(ensemble.history_["loss"]) == 4


def test_ensemble_residual_edit_is_the_mean_of_the_members_changes(fitted):
    ensemble, x = fitted["ensemble"], fitted["sample"]
    standard = models.run(ensemble.part("preprocessing"), x)
    encoder, decoder = ensemble.part("encoder"), ensemble.part("decoder")
    edit = ensemble.part("neuron_edit")
    codes = models.run(encoder, standard)
    changes = []
    for k in range(2):
        e, d = encoder.get_layer(f"encoder_{k}"), decoder.get_layer(f"decoder_{k}")
        own = models.run(e, standard)
        edited = models.run(edit, codes)[:, 8 * k:8 * k + 8]
        changes.append(models.run(d, edited) - models.run(d, own))
    residual = keras.Model(ensemble.model_.input, ensemble.model_.get_layer("residual_edit").output)
    np.testing.assert_allclose(models.run(residual, x), standard + np.mean(changes, 0),
                               rtol=1e-4, atol=1e-4)


def test_ensemble_survives_save_and_load_and_exports(fitted, tmp_path):
    ensemble, x = fitted["ensemble"], fitted["sample"]
    loaded = NeuronEditor.load(ensemble.save(tmp_path / "ensemble"))
    assert loaded.members == 2 and loaded.get_config() == ensemble.get_config()
    np.testing.assert_allclose(loaded.transform(x), ensemble.transform(x), rtol=1e-5, atol=1e-4)
    # SavedModel and TFLite (builtin ops), verified in a fresh process by the export itself.
    report = ensemble.export(tmp_path / "served", format="both")
    assert set(report["parity"]) >= {"saved_model", "model.tflite"}


def test_members_needs_a_positive_count_and_the_dense_model():
    with pytest.raises(NeuronEditError, match="members must be a positive integer"):
        NeuronEditor(members=0)
    with pytest.raises(NeuronEditError, match="model='dense'"):
        NeuronEditor(model="conv", members=2)
    assert NeuronEditor().members == 1
