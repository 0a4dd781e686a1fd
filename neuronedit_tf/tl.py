"""Tools in the scanpy manner: ``neuronedit_tf.tl.edit(adata, key=..., source=..., target=...)``
and, for a study of many batches, ``neuronedit_tf.tl.edit_study(adata, batch_key=..., reference=...)``.

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


def edit_study(
    adata,
    batch_key="batch",
    anchor_key="reference",
    anchor="ref",
    reference="1",
    *,
    layer=None,
    key_added="neuronedit",
    channels=None,
    copy=True,
    study=None,
    fit_kwargs=None,
    **editor_kwargs,
):
    """Correct every cell of a study into the reference batch's frame (neuron editing's
    studies; cytonormpy's AnnData layout).

    Each batch (``adata.obs[batch_key]``) has anchor cells (``adata.obs[anchor_key] ==
    anchor``: the control sample run on every batch) and samples (the other cells). One
    :class:`~neuronedit_tf.NeuronEditor` study is fitted on all cells
    (:meth:`~neuronedit_tf.NeuronEditor.fit_study`: each batch's anchor cells are its
    anchor, its other cells join the training), and every cell, anchors included, is
    corrected into the frame of batch ``reference`` (whose own cells stay as they are) or
    of the anchors' mean (``reference="mean"``). The result is a full ``(n_obs, n_vars)``
    matrix in ``layers[key_added]`` (features not in ``channels`` copied unchanged) with
    obs/var names and order untouched; ``uns[key_added]`` records the settings.

    Args:
        adata: an AnnData; cells are rows, features (markers) columns.
        batch_key: the ``obs`` column naming each cell's batch (plate).
        anchor_key: the ``obs`` column saying which cells are anchors.
        anchor: the value of ``anchor_key`` that marks anchor cells (cytonormpy: ``"ref"``;
            its other value, ``"other"``, marks samples).
        reference: the batch every cell is corrected into, or ``"mean"``.
        layer: the input matrix: ``None`` for ``X``, or a layer name (cytonormpy's
            ``"compensated"``).
        key_added: the layer and ``uns`` key for the result.
        channels: the ``var_names`` to correct (default all); the others are copied.
        copy: ``True`` (default) returns a new AnnData and leaves ``adata`` untouched;
            ``False`` adds the layer and ``uns`` entry to ``adata`` and returns ``None`` (the
            input matrix is never changed).
        study: an already fitted :class:`~neuronedit_tf.study.Study` to apply instead of
            fitting one (its own reference and channels are used; every batch of
            ``adata`` must be one of its batches).
        fit_kwargs: passed to ``fit_study`` (e.g. ``{"epochs": 50}``).
        **editor_kwargs: passed to :class:`~neuronedit_tf.NeuronEditor` (e.g.
            ``transform="arcsinh"``, ``cofactor=5``, ``method="paper"``, ``seed=0``).

    Returns:
        The corrected copy (``copy=True``) or ``None``.

    Raises:
        NeuronEditError: a key that is not in ``obs``; no anchor cells; a batch whose
            cells include no anchor; a reference that is not a batch; a batch the given
            ``study`` does not know; the layer or channels do not exist; bad values.

    Example:
        >>> import anndata, numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> cells = rng.gamma(2.0, 20.0, size=(1200, 4)).astype("float32")
        >>> cells[600:, 0] *= 1.5                       # batch "2" reads feature 0 higher
        >>> obs = pd.DataFrame({"batch": np.repeat(["1", "2"], 600),
        ...                     "reference": np.tile(np.repeat(["ref", "other"], 300), 2)},
        ...                    index=[f"cell{i}" for i in range(1200)])
        >>> adata = anndata.AnnData(cells, obs=obs)
        >>> out = edit_study(adata, reference="1", hidden=(16, 8, 4),
        ...                  fit_kwargs={"epochs": 2, "verbose": 0})
        >>> out.layers["neuronedit"].shape, out.uns["neuronedit"]["batches"]
        ((1200, 4), ['1', '2'])
        >>> bool(np.array_equal(out.layers["neuronedit"][:600], cells[:600]))   # the reference
        True
    """
    import pandas as pd

    from neuronedit_tf import __version__
    from neuronedit_tf.data.annotated import dense_matrix
    from neuronedit_tf.data.tables import is_anndata
    from neuronedit_tf.editor import NeuronEditor

    if not is_anndata(adata):
        raise TypeError(f"edit_study() takes an AnnData; got {type(adata).__name__}.")
    if getattr(adata, "isbacked", False):
        raise NeuronEditError("adata is backed (on disk); load it with adata.to_memory() first.")
    fitting = study is None
    if not fitting and (channels is not None or editor_kwargs or fit_kwargs):
        raise NeuronEditError(
            "A fitted study= carries its own settings; drop channels=, fit_kwargs= and the "
            "editor keyword arguments.")
    for role, key in (("batch_key", batch_key), ("anchor_key", anchor_key))[:1 + fitting]:
        if key not in adata.obs.columns:
            raise NeuronEditError(
                f"adata.obs has no column {key!r}; its columns are {list(adata.obs.columns)}. "
                f"Pass {role}= the column that holds each cell's "
                f"{'batch' if role == 'batch_key' else 'role (anchor or sample)'}.")
    batches = adata.obs[batch_key].astype(str).to_numpy()
    names = list(dict.fromkeys(batches))
    is_anchor = (adata.obs[anchor_key].astype(str).to_numpy() == str(anchor)
                 if anchor_key in adata.obs.columns else np.zeros(len(batches), bool))
    if fitting:
        if not is_anchor.any():
            present = sorted(set(adata.obs[anchor_key].astype(str)))
            raise NeuronEditError(
                f"adata.obs[{anchor_key!r}] has no anchor cells ({anchor!r}); its values are "
                f"{present}. Pass anchor= the value that marks the anchors.")
        orphans = [b for b in names if not is_anchor[batches == b].any()]
        if orphans:
            raise NeuronEditError(
                f"batch(es) {orphans} of adata.obs[{batch_key!r}] have no anchor cells "
                f"(adata.obs[{anchor_key!r}] == {anchor!r}); every batch needs its anchor. "
                "Drop those cells or mark their anchor.")
    matrix = dense_matrix(adata, layer, "adata")
    frame = pd.DataFrame(matrix, columns=check_unique(adata.var_names, "adata.var_names"),
                         index=[str(i) for i in adata.obs_names])
    if fitting:
        anchors = {b: frame[(batches == b) & is_anchor] for b in names}
        samples = {b: [frame[(batches == b) & ~is_anchor]] for b in names
                   if ((batches == b) & ~is_anchor).any()}
        study = NeuronEditor(channels=channels, **editor_kwargs).fit_study(
            anchors, reference=reference, samples=samples or None, **(fit_kwargs or {}))
    corrected = study.transform(frame, batch=batches)
    out = adata.copy() if copy else adata
    out.layers[key_added] = corrected.to_numpy(dtype=np.float32)
    out.uns[key_added] = {
        "batch_key": str(batch_key),
        "anchor_key": str(anchor_key),
        "anchor": str(anchor),
        "reference": str(study.reference),
        "batches": list(study.batches),
        "layer": "X" if layer is None else str(layer),
        "channels": list(study.columns_),
        "n_anchor_cells": {b: int(((batches == b) & is_anchor).sum()) for b in names},
        "params": json.dumps(study.editor.get_config()),  # JSON: h5ad cannot store None
        "version": __version__,
    }
    return out if copy else None
