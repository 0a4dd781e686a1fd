"""Plots in the scanpy manner for the result of :func:`neuronedit_tf.tl.edit`.

``biaxial`` shows two features before and after the edit (the paper's Figure 4),
``median_change`` the per-feature median change the edit applied against the
one seen from source to target (Figure 5b). Both read the settings stored in
``adata.uns[key]`` and draw on the editor's scale (e.g. arcsinh for CyTOF);
they reuse :mod:`neuronedit_tf.plotting`. Like scanpy's, each takes ``ax=`` to
draw on given Axes.
"""

from __future__ import annotations

import json
import warnings

import numpy as np

from neuronedit_tf import plotting
from neuronedit_tf.errors import NeuronEditError


def _result(adata, key):
    """Settings, masks and the before/after matrices of a ``tl.edit`` result."""
    from neuronedit_tf.data.annotated import dense_matrix, group_masks

    if key not in adata.uns or key not in adata.layers:
        raise NeuronEditError(
            f"adata has no neuronedit result {key!r} (adata.uns[{key!r}] and "
            f"adata.layers[{key!r}]); run neuronedit_tf.tl.edit(adata, ..., key_added={key!r})."
        )
    settings = adata.uns[key]
    masks = group_masks(adata, settings["key"], settings["source"], settings["target"],
                    list(settings["apply_to"]))
    layer = None if settings["layer"] == "X" else settings["layer"]
    before = dense_matrix(adata, layer, "adata")
    after = dense_matrix(adata, key, "adata")
    return settings, masks, before, after


def _scaled(values, settings, scale):
    """``values`` on the plotting scale: the editor's transform (``"auto"``) or ``"linear"``."""
    from neuronedit_tf import models

    if scale == "linear":
        return values
    if scale != "auto":
        raise NeuronEditError(f"scale must be 'auto' or 'linear'; got {scale!r}.")
    params = json.loads(settings["params"])
    return models.transform_values(values, params["transform"], params["cofactor"],
                                   params.get("logicle"))


def _finish(figure, save, show):
    plt = plotting.pyplot()
    if save:
        from neuronedit_tf.data.atomic import atomic_path

        with atomic_path(save) as temporary:
            figure.savefig(temporary, format="png", dpi=110)
    if show:
        plt.show()


def _index(adata, name):
    names = [str(v) for v in adata.var_names]
    if name not in names:
        raise NeuronEditError(f"{name!r} is not in adata.var_names; choose among {names}.")
    return names.index(name)


def biaxial(adata, x, y, key="neuronedit", *, scale="auto", ax=None, show=False, save=None,
            axes=None):
    """Two features before and after the edit: source vs target, and the edited cells.

    Args:
        adata: the AnnData returned by (or given to, with ``copy=False``) ``tl.edit``.
        x, y: ``var_names`` of the features on the two axes.
        key: the ``key_added`` of ``tl.edit``.
        scale: ``"auto"`` (the editor's transform, e.g. arcsinh) or ``"linear"``.
        ax: two matplotlib Axes to draw on (default: a new 1x2 figure).
        show: call ``plt.show()``.
        save: write the figure to this PNG path (atomically).
        axes: deprecated name of ``ax`` (removed in the next release).

    Returns:
        The two Axes.

    Example:
        >>> axes = biaxial(edited, "CD3", "CD19", key="neuronedit")   # doctest: +SKIP
    """
    if axes is not None:
        warnings.warn("pl.biaxial(axes=...) is deprecated; pass ax=... (as in scanpy).",
                      DeprecationWarning, stacklevel=2)
        if ax is not None:
            raise NeuronEditError("Pass ax= only (axes= is its deprecated name), not both.")
        ax = axes
    settings, (is_source, is_target, is_edited, _), before, after = _result(adata, key)
    columns = [_index(adata, x), _index(adata, y)]
    names = [x, y]
    before = _scaled(before[:, columns], settings, scale)
    after = _scaled(after[:, columns], settings, scale)
    plt = plotting.pyplot()
    axes = ax if ax is not None else plt.subplots(1, 2, figsize=(10, 4.6))[1]
    figure = axes[0].figure
    edited_label = ", ".join(settings["apply_to"])
    plotting.biaxial(axes[0], [(f"source: {settings['source']}", before[is_source], "tab:cyan"),
                               (f"target: {settings['target']}", before[is_target], "tab:red")],
                     0, 1, names, "The change to learn")
    plotting.biaxial(axes[1], [(f"{edited_label}, before", before[is_edited], "tab:blue"),
                               (f"{edited_label}, edited", after[is_edited], "tab:red")],
                     0, 1, names, "The edit applied")
    figure.tight_layout()
    _finish(figure, save, show)
    return list(axes)


def median_change(adata, key="neuronedit", *, scale="auto", ax=None, show=False, save=None):
    """Per-feature median change: target − source against edited − before (edited channels).

    Points on the diagonal mean the edit applied exactly the change seen from
    source to target; the title gives their Pearson r (the paper's metric).

    Args:
        adata: the AnnData returned by (or given to, with ``copy=False``) ``tl.edit``.
        key: the ``key_added`` of ``tl.edit``.
        scale: ``"auto"`` (the editor's transform, e.g. arcsinh) or ``"linear"``.
        ax: a matplotlib Axes to draw on (default: a new figure).
        show: call ``plt.show()``.
        save: write the figure to this PNG path (atomically).

    Returns:
        The matplotlib Axes.

    Example:
        >>> ax = median_change(edited, key="neuronedit")   # doctest: +SKIP
    """
    settings, (is_source, is_target, is_edited, _), before, after = _result(adata, key)
    columns = [_index(adata, c) for c in settings["channels"]]
    before = _scaled(before[:, columns], settings, scale)
    after = _scaled(after[:, columns], settings, scale)
    observed = np.median(before[is_target], 0) - np.median(before[is_source], 0)
    applied = np.median(after[is_edited], 0) - np.median(before[is_edited], 0)
    plt = plotting.pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.6))
    plotting.median_change(ax, observed, applied, list(settings["channels"]))
    ax.figure.tight_layout()
    _finish(ax.figure, save, show)
    return ax
