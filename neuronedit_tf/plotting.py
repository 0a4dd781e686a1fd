"""The paper's figures: biaxial before/after (Figure 4) and per-feature median change (Figure 5b)."""

from __future__ import annotations

import numpy as np


def pyplot():
    """``matplotlib.pyplot``, on the non-interactive Agg backend unless inline (notebooks)."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def biaxial(ax, panels, x, y, names, title=None):
    """Scatter two features of several sets on one axis.

    Args:
        ax: a matplotlib Axes.
        panels: list of ``(label, values (rows, features), color)``.
        x, y: column indices to plot.
        names: feature names (for axis labels).
    """
    for label, values, color in panels:
        ax.scatter(values[:, x], values[:, y], s=3, alpha=0.35, color=color, label=label,
                   rasterized=True)
    ax.set_xlabel(names[x])
    ax.set_ylabel(names[y])
    if title:
        ax.set_title(title)
    ax.legend(markerscale=4, fontsize=7, loc="best")


def median_change(ax, observed, applied, names=None, title=None):
    """Per-feature median change: spike-in (observed) vs applied to the sample."""
    observed, applied = np.asarray(observed), np.asarray(applied)
    ax.scatter(observed, applied, s=14, color="tab:blue")
    low = min(observed.min(), applied.min())
    high = max(observed.max(), applied.max())
    pad = 0.05 * (high - low or 1.0)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], color="grey", lw=1, ls="--")
    if names is not None:
        largest = np.argsort(-np.abs(observed))[:5]
        for k in largest:
            ax.annotate(names[k], (observed[k], applied[k]), fontsize=7)
    r = np.corrcoef(observed, applied)[0, 1]
    ax.set_xlabel("median change in spike-in (target − source)")
    ax.set_ylabel("median change applied to sample")
    ax.set_title(title or f"Pearson r = {r:.3f}")


def spike_in_figure(path, source, target, sample, edited, truth, names, x, y):
    """Write the demo's figure: biaxial panels before/after and the median-change scatter.

    All arrays are ``(cells, markers)`` on the plotting scale (arcsinh for cytometry).
    """
    from neuronedit_tf.data.atomic import atomic_path

    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    biaxial(axes[0], [("spike-in, batch A", source, "tab:cyan"),
                      ("spike-in, batch B", target, "tab:red")], x, y, names,
            "Spike-in: the batch effect")
    biaxial(axes[1], [("sample, batch A", sample, "tab:blue"),
                      ("sample edited to B", edited, "tab:red"),
                      ("sample, real batch B", truth, "tab:grey")], x, y, names,
            "Sample: neuron editing applies it")
    observed = np.median(target, 0) - np.median(source, 0)
    applied = np.median(edited, 0) - np.median(sample, 0)
    median_change(axes[2], observed, applied, names)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    plt.close(figure)
