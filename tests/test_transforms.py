"""The in-graph logicle transform: agrees with flowutils (the reference C code), inverts exactly."""

import numpy as np
import pytest

from neuronedit_tf import NeuronEditError, NeuronEditor, models
from neuronedit_tf.data import read_fcs
from neuronedit_tf.data.datasets import facs_diva_bytes
from neuronedit_tf.layers import Logicle
from neuronedit_tf.transforms import logicle_options

import flowutils  # noqa: E402  (the test extra installs it; a missing one must fail)

PARAMETERS = [
    {"t": 262144, "w": 0.5, "m": 4.5, "a": 0},   # flowutils' defaults (BD instruments)
    {"t": 10000, "w": 1.0, "m": 4.5, "a": 0.5},
    {"t": 262144, "w": 0.0, "m": 4.5, "a": 0},   # w = 0: a pure arcsinh-like scale
]


@pytest.fixture(scope="module")
def flow_values():
    """Real flow cytometry events (FACSDiva, 12 channels; compensated ones go negative) plus edges."""
    events = read_fcs(facs_diva_bytes()).values[:5000].ravel()
    edges = np.array([0.0, 1e-3, -1e-3, 262144.0, 1e6, -1e4, 3e7], np.float32)
    return np.concatenate([events, edges]).astype(np.float32)


@pytest.mark.parametrize("params", PARAMETERS, ids=["default", "wide", "w0"])
def test_logicle_matches_flowutils(flow_values, params):
    ours = Logicle(**params)(flow_values[:, None]).numpy()[:, 0]
    reference = flowutils.transforms.logicle(flow_values.astype(np.float64), None, **params)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)
    back = Logicle(**params, inverse=True)(reference.astype(np.float32)[:, None]).numpy()[:, 0]
    expected = flowutils.transforms.logicle_inverse(reference, None, **params)
    np.testing.assert_allclose(back, expected, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("params", PARAMETERS, ids=["default", "wide", "w0"])
def test_logicle_inverse_undoes_the_transform(flow_values, params):
    forward = Logicle(**params)(flow_values[:, None])
    back = Logicle(**params, inverse=True)(forward).numpy()[:, 0]
    np.testing.assert_allclose(back, flow_values, rtol=1e-5, atol=1e-2)


def test_bad_logicle_parameters_are_refused():
    with pytest.raises(NeuronEditError, match="Invalid logicle parameters"):
        logicle_options({"w": 3.0})
    with pytest.raises(NeuronEditError, match=r"Unknown logicle parameter\(s\) \['q'\]"):
        logicle_options({"q": 1})
    with pytest.raises(NeuronEditError, match="need transform='logicle'"):
        NeuronEditor(logicle={"t": 1000})


def test_editor_with_logicle_is_raw_in_raw_out_and_saves(tmp_path):
    events = read_fcs(facs_diva_bytes())
    markers = [c for c in events.channels if c.endswith("-A") and c != "FSC-A"]
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(events.values))[:3000]
    source = events.select(markers).to_frame().iloc[rows[:1000]]
    target = source * 1.3
    extra = events.select(markers).to_frame().iloc[rows[1000:2000]]
    editor = NeuronEditor(transform="logicle", logicle={"t": 262144}, hidden=(32, 16, 8), seed=0)
    editor.fit(source, target, extra=extra, epochs=2, verbose=0)
    pre, post = editor.part("preprocessing"), editor.part("postprocessing")
    raw = extra.to_numpy(np.float32)
    np.testing.assert_allclose(models.run(post, models.run(pre, raw)), raw, rtol=1e-4, atol=1e-1)
    loaded = NeuronEditor.load(editor.save(tmp_path / "editor"))
    assert loaded.logicle == editor.get_config()["logicle"] == logicle_options({"t": 262144})
    np.testing.assert_array_equal(loaded.transform(extra).to_numpy(),
                                  editor.transform(extra).to_numpy())
