"""The scanpy-style API on an AnnData built from the real CyTOF files: tl.edit, pl.*, alignment."""

import numpy as np
import pandas as pd
import pytest

import anndata  # noqa: E402  (the test extra installs it; a missing one must fail)

import neuronedit_tf as ne  # noqa: E402
from neuronedit_tf import NeuronEditError, NeuronEditor  # noqa: E402
from neuronedit_tf.data import load_cytof, read, write  # noqa: E402
from neuronedit_tf.data.datasets import cytof_markers  # noqa: E402

FAST = {"transform": "arcsinh", "cofactor": 5.0, "hidden": (32, 16, 8), "seed": 0}
FIT = {"epochs": 3, "verbose": 0}


@pytest.fixture(scope="module")
def adata():
    """3000 real cells x 55 channels: spike-in donor 1 in batch 021 ("ctrl") and 028 ("stim"),
    donor 2 in batch 021 ("other"); rows shuffled so that conditions are interleaved."""
    parts = {"ctrl": load_cytof("021", 1, markers_only=False),
             "stim": load_cytof("028", 1, markers_only=False),
             "other": load_cytof("021", 2, markers_only=False)}
    first = parts["ctrl"]
    values = np.concatenate([p.values for p in parts.values()])
    obs = pd.DataFrame({"condition": np.repeat(list(parts), [len(p.values) for p in parts.values()])},
                       index=[f"{name}_{i}" for name, p in parts.items() for i in range(len(p.values))])
    var = pd.DataFrame({"marker": first.markers}, index=first.channels)
    order = np.random.default_rng(0).permutation(len(values))
    return anndata.AnnData(values[order], obs=obs.iloc[order], var=var)


@pytest.fixture(scope="module")
def edited(adata):
    return ne.tl.edit(adata, key="condition", source="ctrl", target="stim", apply_to=["other"],
                      channels=cytof_markers(), fit_kwargs=FIT, **FAST)


@pytest.fixture(scope="module")
def editor(adata):
    """An editor fitted on the markers of the same cells (for tests that only apply)."""
    frame = adata.to_df()
    groups = adata.obs["condition"]
    return NeuronEditor(channels=cytof_markers(), **FAST).fit(
        frame[groups == "ctrl"], frame[groups == "stim"], extra=frame[groups == "other"], **FIT)


def test_edit_stores_a_full_layer_with_unedited_rows_and_channels_copied(adata, edited):
    layer = edited.layers["neuronedit"]
    other = (adata.obs["condition"] == "other").to_numpy()
    markers = adata.var_names.isin(cytof_markers())
    assert layer.shape == adata.shape
    np.testing.assert_array_equal(layer[~other], adata.X[~other])
    np.testing.assert_array_equal(layer[other][:, ~markers], adata.X[other][:, ~markers])
    assert not np.allclose(layer[other][:, markers], adata.X[other][:, markers])
    assert list(edited.obs_names) == list(adata.obs_names)
    assert list(edited.var_names) == list(adata.var_names)
    settings = edited.uns["neuronedit"]
    assert (settings["key"], settings["source"], settings["target"]) == ("condition", "ctrl", "stim")
    assert list(settings["apply_to"]) == ["other"] and settings["n_edited"] == 1000


def test_input_is_not_modified_unless_copy_false(adata, editor):
    before = adata.X.copy()
    out = ne.tl.edit(adata, source="ctrl", target="stim", editor=editor)
    assert "neuronedit" not in adata.layers and "neuronedit" not in adata.uns
    np.testing.assert_array_equal(adata.X, before)
    inplace = adata.copy()
    assert ne.tl.edit(inplace, source="ctrl", target="stim", editor=editor, copy=False) is None
    np.testing.assert_array_equal(inplace.layers["neuronedit"], out.layers["neuronedit"])
    np.testing.assert_array_equal(inplace.X, before)


def test_shuffled_obs_order_in_gives_the_same_cells_out_in_that_order(adata, editor):
    out = ne.tl.edit(adata, source="ctrl", target="stim", editor=editor)
    reordered = adata[np.random.default_rng(1).permutation(adata.n_obs)].copy()
    again = ne.tl.edit(reordered, source="ctrl", target="stim", editor=editor)
    assert list(again.obs_names) == list(reordered.obs_names)
    by_name = pd.DataFrame(out.layers["neuronedit"], index=out.obs_names)
    np.testing.assert_allclose(again.layers["neuronedit"],
                               by_name.loc[reordered.obs_names].to_numpy(), rtol=1e-5, atol=1e-4)
    other = adata.obs["condition"] == "other"
    direct = editor.transform(adata[other.to_numpy()].to_df())
    np.testing.assert_allclose(by_name.loc[direct.index].to_numpy(), direct.to_numpy(),
                               rtol=1e-5, atol=1e-4)


def test_a_layer_can_be_the_input(adata, editor):
    moved = adata.copy()
    moved.layers["raw"] = moved.X.copy()
    moved.X = np.zeros_like(moved.X)
    out = ne.tl.edit(moved, source="ctrl", target="stim", layer="raw", editor=editor)
    expected = ne.tl.edit(adata, source="ctrl", target="stim", editor=editor)
    np.testing.assert_array_equal(out.layers["neuronedit"], expected.layers["neuronedit"])
    assert out.uns["neuronedit"]["layer"] == "raw"


def test_transform_of_an_anndata_returns_a_new_anndata(adata, editor):
    out = editor.transform(adata)
    assert isinstance(out, anndata.AnnData) and out is not adata
    assert list(out.obs_names) == list(adata.obs_names) and list(out.var) == list(adata.var)
    assert out.X.shape == adata.shape


def test_result_survives_h5ad_round_trip(edited, tmp_path):
    path = write(tmp_path / "edited.h5ad", edited)
    back = read(path)
    np.testing.assert_array_equal(back.layers["neuronedit"], edited.layers["neuronedit"])
    assert list(back.obs_names) == list(edited.obs_names)
    assert back.uns["neuronedit"]["params"] == edited.uns["neuronedit"]["params"]


@pytest.mark.parametrize("kwargs, message", [
    ({"key": "batch"}, r"no column 'batch'; its columns are \['condition'\]"),
    ({"source": "basal"}, r"no source category \['basal'\]; its categories are "
                          r"\['ctrl', 'other', 'stim'\]"),
    ({"apply_to": ["drug"]}, r"no apply_to category \['drug'\]"),
    ({"layer": "counts"}, r"no layer 'counts'"),
    ({"target": "ctrl"}, "the same category"),
])
def test_bad_settings_are_one_clear_error(adata, editor, kwargs, message):
    settings = {"key": "condition", "source": "ctrl", "target": "stim", "editor": editor,
                **kwargs}
    with pytest.raises(NeuronEditError, match=message):
        ne.tl.edit(adata, **settings)


def test_nothing_to_edit_and_wrong_types_are_refused(adata, editor):
    only_pair = adata[adata.obs["condition"] != "other"].copy()
    with pytest.raises(NeuronEditError, match="no cells other than the source and target"):
        ne.tl.edit(only_pair, source="ctrl", target="stim", editor=editor)
    with pytest.raises(TypeError, match="takes an AnnData"):
        ne.tl.edit(adata.to_df(), source="ctrl", target="stim")
    with pytest.raises(NeuronEditError, match="carries its own settings"):
        ne.tl.edit(adata, source="ctrl", target="stim", editor=editor, hidden=(8,))


def test_plots_draw_before_and_after_and_save_png(edited, tmp_path):
    axes = ne.pl.biaxial(edited, "Nd142Di", "Nd144Di", save=tmp_path / "biaxial.png")
    assert len(axes) == 2 and axes[1].get_xlabel() == "Nd142Di"
    ax = ne.pl.median_change(edited, save=tmp_path / "median.png")
    assert ax.get_title().startswith("Pearson r")
    for name in ("biaxial.png", "median.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(NeuronEditError, match="run neuronedit_tf.tl.edit"):
        ne.pl.median_change(edited, key="other_key")
    with pytest.raises(NeuronEditError, match="not in adata.var_names"):
        ne.pl.biaxial(edited, "CD3", "Nd144Di")


def test_plots_draw_on_the_axes_given_as_ax_and_axes_is_deprecated(edited):
    plt = ne.plotting.pyplot()
    figure, given = plt.subplots(1, 3)
    assert ne.pl.biaxial(edited, "Nd142Di", "Nd144Di", ax=given[:2]) == list(given[:2])
    assert ne.pl.median_change(edited, ax=given[2]) is given[2]
    with pytest.warns(DeprecationWarning, match="ax="):
        assert ne.pl.biaxial(edited, "Nd142Di", "Nd144Di", axes=given[:2]) == list(given[:2])
    plt.close(figure)
