"""AnnData (``.h5ad``) in and out: matrices by ``X`` or a layer, obs/var names and order kept.

``anndata`` is an optional extra (``pip install "neuronedit_tf[anndata]"``); it
is imported only when AnnData is used.
"""

from __future__ import annotations

import numpy as np

from neuronedit_tf.data.atomic import atomic_path
from neuronedit_tf.data.hdf5check import check_hdf5
from neuronedit_tf.errors import NeuronEditError


def require_anndata():
    """Import anndata or say how to install it."""
    try:
        import anndata
    except ImportError:
        raise NeuronEditError(
            "Reading or writing AnnData (.h5ad) needs the anndata package: "
            'pip install "neuronedit_tf[anndata]".'
        ) from None
    return anndata


def dense_matrix(adata, layer=None, name="adata"):
    """``adata.X`` or ``adata.layers[layer]`` as a dense float32 ``(n_obs, n_vars)`` array.

    Raises:
        NeuronEditError: the layer does not exist, or ``X`` is empty (None).
    """
    if layer is None:
        matrix = adata.X
        if matrix is None:
            raise NeuronEditError(f"{name} has no X matrix; pass layer=... to use a layer.")
    else:
        if layer not in adata.layers:
            raise NeuronEditError(
                f"{name} has no layer {layer!r}; its layers are {list(adata.layers)} "
                "(layer=None uses X)."
            )
        matrix = adata.layers[layer]
    if hasattr(matrix, "toarray"):  # scipy sparse (counts are usually stored sparse)
        matrix = matrix.toarray()
    elif hasattr(matrix, "to_memory"):  # a backed dataset
        matrix = matrix.to_memory()
    return np.asarray(matrix, dtype=np.float32)


def group_masks(adata, key, source, target, apply_to=None):
    """Boolean masks of the source, target and to-edit cells, and the ``apply_to`` list.

    ``adata.obs[key]`` names each cell's condition; ``apply_to`` (a category or a
    list; default every category but ``source`` and ``target``) are the cells to
    edit. Used by :func:`neuronedit_tf.tl.edit` and the plots of :mod:`neuronedit_tf.pl`.

    Returns:
        ``(is_source, is_target, is_edited, apply_to)``: three boolean ``(n_obs,)``
        arrays and the list of categories edited.
    """
    if key not in adata.obs.columns:
        raise NeuronEditError(
            f"adata.obs has no column {key!r}; its columns are {list(adata.obs.columns)}. "
            "Pass key= the column that holds the conditions."
        )
    labels = adata.obs[key].astype(str).to_numpy()
    present = sorted(set(labels))
    if apply_to is None:
        apply_to = [c for c in present if c not in (str(source), str(target))]
    elif isinstance(apply_to, str):
        apply_to = [apply_to]
    apply_to = [str(c) for c in apply_to]
    wanted = {"source": [str(source)], "target": [str(target)], "apply_to": apply_to}
    for role, categories in wanted.items():
        absent = [c for c in categories if c not in present]
        if absent:
            raise NeuronEditError(
                f"adata.obs[{key!r}] has no {role} categor{'y' if len(absent) == 1 else 'ies'} "
                f"{absent}; its categories are {present}."
            )
    if not apply_to:
        raise NeuronEditError(
            f"adata.obs[{key!r}] has no cells other than the source and target ({present}); "
            "pass apply_to=[...] naming the categories to edit."
        )
    if str(source) == str(target):
        raise NeuronEditError(f"source and target are the same category {source!r}.")
    return (labels == str(source), labels == str(target), np.isin(labels, apply_to), apply_to)


def with_matrix(adata, values, layer=None):
    """A copy of ``adata`` whose ``X`` (or ``layers[layer]``) holds ``values``.

    obs, var (names and order), obsm, uns and the other layers are kept; the
    input is not modified.
    """
    values = np.asarray(values, np.float32)
    if values.shape != tuple(adata.shape):
        raise NeuronEditError(f"Values of shape {values.shape} do not fit AnnData {adata.shape}.")
    result = adata.copy()
    if layer is None:
        result.X = values
    else:
        result.layers[layer] = values
    return result


def from_table(values, columns=None, index=None):
    """A new AnnData from a table: ``columns`` become var_names, ``index`` obs_names."""
    anndata = require_anndata()
    import pandas as pd

    values = np.asarray(values, np.float32)
    columns = columns if columns is not None else [str(i) for i in range(values.shape[1])]
    index = [str(i) for i in (index if index is not None else range(len(values)))]
    return anndata.AnnData(
        values, obs=pd.DataFrame(index=index), var=pd.DataFrame(index=[str(c) for c in columns])
    )


def read_h5ad(path):
    """Read an ``.h5ad`` file (whole, into memory).

    Raises:
        NeuronEditError: anndata is missing, or the file is not a readable h5ad (a
            damaged file that would crash HDF5 is refused first, see
            :func:`~neuronedit_tf.data.hdf5check.check_hdf5`).
    """
    anndata = require_anndata()
    check_hdf5(path)
    try:
        adata = anndata.read_h5ad(path)
    except FileNotFoundError:
        raise NeuronEditError(f"No such file: {path}.") from None
    except Exception as error:  # h5py/anndata raise many types for damaged files
        raise NeuronEditError(
            f"{path} is not a readable .h5ad file ({type(error).__name__}: {error}). "
            "Check that it was written completely by anndata."
        ) from None
    return adata


def write_h5ad(path, adata, note=None):
    """Write ``adata`` atomically; ``note`` is appended to ``uns["history"]``.

    The input is not modified (string columns are not converted in place).
    """
    require_anndata()
    if note:
        adata = adata.copy()
        history = list(np.atleast_1d(adata.uns.get("history", [])))
        adata.uns["history"] = [str(h) for h in history] + [note]
    with atomic_path(path) as temporary:
        adata.write_h5ad(temporary, convert_strings_to_categoricals=False)
