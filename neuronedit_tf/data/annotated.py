"""AnnData (``.h5ad``) in and out: matrices by ``X`` or a layer, obs/var names and order kept.

``anndata`` is an optional extra (``pip install "neuronedit_tf[anndata]"``); it
is imported only when AnnData is used.
"""

from __future__ import annotations

import numpy as np

from neuronedit_tf.data.atomic import atomic_path
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
        NeuronEditError: anndata is missing, or the file is not a readable h5ad.
    """
    anndata = require_anndata()
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
