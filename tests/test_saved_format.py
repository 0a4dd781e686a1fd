"""Saved editors stay loadable: a folder written by an earlier version loads and edits as it did.

``tests/data/editor_cbecd6d_gated`` was saved by commit cbecd6d (before methods became a
package and layers a package): ``NeuronEditor(method="gated", hidden=(8, 4, 2), seed=0,
quantiles=(0, 25, 50, 75, 100))`` fitted for 2 epochs on 40 rows of 3 features (S + [1, 0, 0.5]);
``editor_cbecd6d_gated_probe.npz`` holds 6 rows and that editor's ``transform`` of them.
"""

from pathlib import Path

import numpy as np

from neuronedit_tf import NeuronEditor

DATA = Path(__file__).parent / "data"


def test_an_editor_saved_before_the_methods_package_loads_and_edits_as_it_did():
    editor = NeuronEditor.load(DATA / "editor_cbecd6d_gated")
    probe = np.load(DATA / "editor_cbecd6d_gated_probe.npz")
    assert editor.method == "gated"
    assert all(editor.part(name).is_adapted for name in ("neuron_edit", "calibration",
                                                         "support_gate"))
    np.testing.assert_allclose(editor.transform(probe["rows"]), probe["edited"],
                               rtol=1e-5, atol=1e-6)
