"""tl.edit_study on the AnnData cytonormpy itself ships (test_adata.h5ad: 6,000 cells x 55
channels of 3 plates x 2 donors, X None, the values in layers["compensated"])."""

import numpy as np
import pytest

import anndata  # noqa: F401  (the test extra installs it; a missing one must fail)

import neuronedit_tf as ne
from neuronedit_tf import NeuronEditError, NeuronEditor
from neuronedit_tf.data import load_cytof_adata, read, write
from neuronedit_tf.data.datasets import cytof_markers

SETTINGS = {"transform": "arcsinh", "cofactor": 5.0, "hidden": (32, 16, 8), "seed": 0}
FIT = {"epochs": 3, "verbose": 0}


@pytest.fixture(scope="module")
def adata():
    return load_cytof_adata()


@pytest.fixture(scope="module")
def corrected(adata):
    return ne.tl.edit_study(adata, batch_key="batch", anchor_key="reference", anchor="ref",
                            reference="1", layer="compensated", channels=cytof_markers(),
                            fit_kwargs=FIT, **SETTINGS)


def cells(adata, batch, donor, values=None):
    """One file's rows (donor 1 is the anchor, donor 2 the sample) on the arcsinh scale."""
    rows = ((adata.obs["batch"].astype(str) == batch)
            & (adata.obs["reference"].astype(str) == ("ref" if donor == 1 else "other"))).to_numpy()
    markers = [list(adata.var_names).index(m) for m in cytof_markers()]
    matrix = adata.layers["compensated"] if values is None else values
    return np.arcsinh(np.asarray(matrix, np.float64)[rows][:, markers] / 5.0)


def median_gap(a, b):
    return float(np.abs(np.median(a, 0) - np.median(b, 0)).mean())


def test_every_cell_is_corrected_into_the_reference_plate(adata, corrected):
    assert adata.X is None and "neuronedit" not in adata.layers  # the input is untouched
    layer = corrected.layers["neuronedit"]
    assert layer.shape == (6000, 55) and layer.dtype == np.float32
    assert list(corrected.obs_names) == list(adata.obs_names)
    assert list(corrected.var_names) == list(adata.var_names)
    reference = (adata.obs["batch"].astype(str) == "1").to_numpy()
    np.testing.assert_array_equal(layer[reference],
                                  adata.layers["compensated"][reference].astype(np.float32))
    others = [i for i, c in enumerate(adata.var_names) if c not in cytof_markers()]
    np.testing.assert_array_equal(layer[:, others],
                                  adata.layers["compensated"][:, others].astype(np.float32))
    for batch in ("2", "3"):
        # Donor 2 on plate 2 (3), corrected, against donor 2's real file on plate 1.
        before = median_gap(cells(adata, batch, 2), cells(adata, "1", 2))
        after = median_gap(cells(adata, batch, 2, layer), cells(adata, "1", 2))
        assert after < before, (batch, before, after)
    settings = corrected.uns["neuronedit"]
    assert settings["batches"] == ["1", "2", "3"] and settings["reference"] == "1"
    assert settings["layer"] == "compensated" and settings["channels"] == cytof_markers()
    assert settings["n_anchor_cells"] == {"1": 1000, "2": 1000, "3": 1000}


def test_the_result_survives_h5ad(corrected, tmp_path):
    written = read(write(tmp_path / "corrected.h5ad", corrected))
    np.testing.assert_array_equal(written.layers["neuronedit"], corrected.layers["neuronedit"])
    assert list(written.uns["neuronedit"]["batches"]) == ["1", "2", "3"]
    assert dict(written.uns["neuronedit"]["n_anchor_cells"]) == {"1": 1000, "2": 1000, "3": 1000}


def test_copy_false_fills_adata_and_a_fitted_study_is_reused(adata):
    import pandas as pd

    frame = pd.DataFrame(adata.layers["compensated"], columns=list(adata.var_names))
    batches = adata.obs["batch"].astype(str).to_numpy()
    anchors = {b: frame[(batches == b) & (adata.obs["reference"] == "ref").to_numpy()]
               for b in ("1", "2", "3")}
    study = NeuronEditor(channels=cytof_markers(), method="paper", **SETTINGS).fit_study(
        anchors, reference="mean", **FIT)
    target = adata.copy()
    assert ne.tl.edit_study(target, layer="compensated", study=study, key_added="mean",
                            copy=False) is None
    # The same computation as the study's transform of those rows with their batches.
    np.testing.assert_array_equal(target.layers["mean"],
                                  study.transform(frame, batch=batches).to_numpy())
    assert target.uns["mean"]["reference"] == "mean"
    with pytest.raises(NeuronEditError, match="carries its own settings"):
        ne.tl.edit_study(adata, layer="compensated", study=study, transform="arcsinh")
    other = adata[adata.obs["batch"] == "2"].copy()
    other.obs["batch"] = "9"
    with pytest.raises(NeuronEditError, match=r"\['9'\] is not in this study"):
        ne.tl.edit_study(other, layer="compensated", study=study)


def test_bad_input_names_the_problem(adata):
    with pytest.raises(NeuronEditError, match="no column 'plate'"):
        ne.tl.edit_study(adata, batch_key="plate", layer="compensated")
    with pytest.raises(NeuronEditError, match="no anchor cells \\('control'\\)"):
        ne.tl.edit_study(adata, anchor="control", layer="compensated")
    with pytest.raises(NeuronEditError, match="has no X matrix; pass layer="):
        ne.tl.edit_study(adata)
    orphan = adata.copy()
    orphan.obs["reference"] = orphan.obs["reference"].astype(str)
    orphan.obs.loc[orphan.obs["batch"] == "3", "reference"] = "other"
    with pytest.raises(NeuronEditError, match=r"batch\(es\) \['3'\] .* have no anchor cells"):
        ne.tl.edit_study(orphan, layer="compensated")
    with pytest.raises(NeuronEditError, match="reference='7' is not a batch"):
        ne.tl.edit_study(adata, reference="7", layer="compensated", channels=cytof_markers(),
                         fit_kwargs=FIT, **SETTINGS)
    with pytest.raises(TypeError, match="takes an AnnData"):
        ne.tl.edit_study(adata.layers["compensated"])
