"""Tools in the scanpy manner: ``neuronedit_tf.tl.edit(adata, key=..., source=..., target=...)``.

Like ``sc.pp.combat(adata, key="batch")``: the cells are one AnnData, a column
of ``adata.obs`` says which are the source, the target and the cells to edit,
and the result is stored beside the data (a layer and an ``uns`` entry) with
obs/var names and order untouched.
"""

from __future__ import annotations

import json

import numpy as np

from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.validation import check_unique


def edit(
    adata,
    key="condition",
    source="ctrl",
    target="stim",
    apply_to=None,
    *,
    layer=None,
    key_added="neuronedit",
    channels=None,
    copy=True,
    editor=None,
    fit_kwargs=None,
    **editor_kwargs,
):
    """Learn how ``source`` cells became ``target`` cells and apply it to ``apply_to`` cells.

    Trains a :class:`~neuronedit_tf.NeuronEditor` on the source, target and
    to-edit cells (the paper's S, T and X), edits the ``apply_to`` cells, and
    stores a full ``(n_obs, n_vars)`` matrix in ``layers[key_added]``: edited
    rows for ``apply_to`` cells, every other row copied unchanged from the
    input matrix. ``uns[key_added]`` records the settings.

    Args:
        adata: an AnnData; cells are rows, features (markers, genes) columns.
        key: the ``adata.obs`` column holding the condition of each cell.
        source, target: the categories of ``key`` that show the change (S -> T).
        apply_to: the categories to edit (a name or a list); default: every
            category except ``source`` and ``target``.
        layer: the input matrix: ``None`` for ``X``, or a layer name.
        key_added: the layer and ``uns`` key for the result.
        channels: the ``var_names`` to edit (default all); the others are copied.
        copy: ``True`` (default) returns a new AnnData and leaves ``adata``
            untouched; ``False`` adds the layer and ``uns`` entry to ``adata``
            in place and returns ``None`` (the input matrix is never changed).
        editor: an already fitted NeuronEditor to apply instead of training one.
        fit_kwargs: passed to :meth:`NeuronEditor.fit` (e.g. ``{"epochs": 50}``).
        **editor_kwargs: passed to :class:`NeuronEditor` (e.g. ``transform="arcsinh"``,
            ``cofactor=5``, ``hidden=(64, 32, 16)``, ``seed=0``).

    Returns:
        The edited copy (``copy=True``) or ``None``.

    Raises:
        NeuronEditError: ``key`` is not in ``obs``; a category is absent; no
            cells to edit; the layer or channels do not exist; bad values.

    Example:
        >>> import anndata, numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> cells = rng.gamma(2.0, 20.0, size=(900, 4)).astype("float32")
        >>> cells[300:600, 0] *= 2                      # "stim" doubles feature 0
        >>> obs = pd.DataFrame({"condition": np.repeat(["ctrl", "stim", "other"], 300)},
        ...                    index=[f"cell{i}" for i in range(900)])
        >>> adata = anndata.AnnData(cells, obs=obs)
        >>> out = edit(adata, key="condition", source="ctrl", target="stim", apply_to=["other"],
        ...            hidden=(16, 8, 4), fit_kwargs={"epochs": 2, "verbose": 0})
        >>> out.layers["neuronedit"].shape, out.uns["neuronedit"]["n_edited"]
        ((900, 4), 300)
    """
    import pandas as pd

    from neuronedit_tf import __version__
    from neuronedit_tf.data.annotated import dense_matrix, group_masks
    from neuronedit_tf.data.tables import is_anndata
    from neuronedit_tf.editor import NeuronEditor

    if not is_anndata(adata):
        raise TypeError(f"edit() takes an AnnData; got {type(adata).__name__}.")
    if getattr(adata, "isbacked", False):
        raise NeuronEditError("adata is backed (on disk); load it with adata.to_memory() first.")
    is_source, is_target, is_edited, apply_to = group_masks(adata, key, source, target,
                                                            apply_to)
    matrix = dense_matrix(adata, layer, "adata")
    frame = pd.DataFrame(matrix, columns=check_unique(adata.var_names, "adata.var_names"),
                         index=[str(i) for i in adata.obs_names])
    if editor is None:
        editor = NeuronEditor(channels=channels, **editor_kwargs)
        editor.fit(frame[is_source], frame[is_target], extra=frame[is_edited],
                   **(fit_kwargs or {}))
    elif channels is not None or editor_kwargs or fit_kwargs:
        raise NeuronEditError(
            "A fitted editor= carries its own settings; drop channels=, fit_kwargs= and "
            "the editor keyword arguments."
        )
    edited = editor.transform(frame[is_edited])
    result = matrix.copy()
    result[is_edited] = edited.to_numpy(dtype=np.float32)

    out = adata.copy() if copy else adata
    out.layers[key_added] = result
    out.uns[key_added] = {
        "key": str(key),
        "source": str(source),
        "target": str(target),
        "apply_to": list(apply_to),
        "layer": "X" if layer is None else str(layer),
        "channels": list(editor.columns_),
        "n_edited": int(is_edited.sum()),
        "params": json.dumps(editor.get_config()),  # JSON: h5ad cannot store None values
        "version": __version__,
    }
    return out if copy else None
