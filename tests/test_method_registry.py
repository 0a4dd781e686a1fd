"""A new edit method is one object and one registry line: fit, save, load and export then
work for it with no other file touched."""

import keras
import numpy as np
import pytest

from neuronedit_tf import NeuronEditError, NeuronEditor, methods
from neuronedit_tf.methods.base import EditMethod
from neuronedit_tf.methods.paper import decoded_edit
from neuronedit_tf.models import run


class Halfway(EditMethod):
    """Half the paper's edit: ``post((pre(x) + D(edit(E(pre(x))))) / 2)``, no layer of its own."""

    name = "halfway"
    default_quantiles = (10.0, 50.0, 90.0)

    def assemble(self, sample_shape, pieces, edit, parts, name="neuron_editor"):
        features, standardised, _, decoded = decoded_edit(sample_shape, pieces, edit)
        halfway = keras.layers.Average(name="halfway")([standardised, decoded])
        return keras.Model(features, pieces.post(halfway), name=name)


@pytest.fixture
def halfway():
    method = methods.register(Halfway())
    yield method
    methods.unregister(method.name)


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(200, 3)).astype(np.float32)
    return source, source + np.float32([1.0, 0.0, 0.5])


def test_the_methods_are_registered_and_gated_is_the_default_for_tables():
    assert methods.names() == methods.METHODS == (
        "paper", "calibrated", "gated", "knn_shift", "latent_shift", "gated_shift",
        "quantile_map", "mean_shift")
    assert methods.default_name() == "gated" and methods.default_name(images=True) == "paper"
    assert methods.get("paper").handles_images and not methods.get("gated").handles_images


def test_a_registered_method_fits_with_its_own_knots_and_graph(halfway, pair):
    editor = NeuronEditor(method="halfway", hidden=(8, 4, 2)).fit(*pair, epochs=2, verbose=0)
    assert editor.quantiles_ == (10.0, 50.0, 90.0)
    x = pair[0][:20]
    pre, post = editor.part("preprocessing"), editor.part("postprocessing")
    paper_graph = methods.get("paper").assemble((3,), methods.Pieces(
        pre, editor.part("encoder"), editor.part("decoder"), post), editor.part("neuron_edit"), {})
    expected = run(post, (run(pre, x) + run(pre, run(paper_graph, x))) / 2)
    np.testing.assert_allclose(editor.transform(x), expected, rtol=1e-4, atol=1e-4)


def test_a_registered_method_saves_loads_and_exports_by_name(halfway, pair, tmp_path):
    editor = NeuronEditor(method="halfway", hidden=(8, 4, 2)).fit(*pair, epochs=2, verbose=0)
    loaded = NeuronEditor.load(editor.save(tmp_path / "editor"))
    assert loaded.method == "halfway"
    np.testing.assert_array_equal(loaded.transform(pair[0]), editor.transform(pair[0]))
    # Not the encode -> edit -> decode chain: the export checks its endpoints on their own path.
    report = loaded.export(tmp_path / "export")
    assert report["parity"]["saved_model"]["max_error"] < 1e-4


def test_an_unknown_method_is_refused_naming_the_registered_ones():
    with pytest.raises(NeuronEditError,
                       match=r"'auto' or one of \('paper', 'calibrated', 'gated', 'knn_"):
        NeuronEditor(method="halfway")


def test_a_name_is_registered_once(halfway):
    with pytest.raises(NeuronEditError, match="registered already"):
        methods.register(Halfway())
