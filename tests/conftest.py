"""Shared fixtures: the real CyTOF files (pinned artifact, cached) and one small fitted editor."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def cytof():
    """Real CyTOF files: spike-in donor 1 in batches 021 -> 028, sample donor 2 (021), truth (028)."""
    from neuronedit_tf.data import load_cytof

    return {
        "source": load_cytof("021", 1),
        "target": load_cytof("028", 1),
        "sample": load_cytof("021", 2),
        "truth": load_cytof("028", 2),
    }


@pytest.fixture(scope="session")
def small_editor(cytof):
    """A small, quickly trained editor on the real spike-in pair (arcsinh, cofactor 5)."""
    from neuronedit_tf import NeuronEditor

    editor = NeuronEditor(transform="arcsinh", cofactor=5.0, hidden=(64, 32, 16), seed=0)
    return editor.fit(cytof["source"], cytof["target"], extra=cytof["sample"], epochs=15,
                      verbose=0)


def arcsinh(values):
    return np.arcsinh(np.asarray(values, np.float64) / 5.0)
