"""The registry of comparison methods: ``get(name, **kwargs)``, ``list()``, ``load(path)``.

Names are stable strings used by the benchmarks and the CLI. Importing this
module imports no optional dependency: ``scanpy`` (ComBat) and
``tensorflow_gan`` (the GANs) are imported when those methods are fitted.
"""

from __future__ import annotations

import builtins
from pathlib import Path

from neuronedit_tf.baselines.catalog import METHODS, method_class
from neuronedit_tf.errors import NeuronEditError

def get(name, **kwargs):
    """A new, unfitted instance of method ``name`` (e.g. ``get("cyclegan", epochs=50)``).

    Example:
        >>> import numpy as np
        >>> s = np.random.default_rng(0).normal(size=(200, 3))
        >>> get("mean_shift").fit(s, s + 1).transform(s[:1]).shape
        (1, 3)
    """
    return method_class(name)(**kwargs)


def list():  # noqa: A001 - the registry's public name, as in neuronedit_tf.baselines.list()
    """``[(name, one-line description), ...]`` of every method, in a stable order."""
    return [(name, method_class(name).description) for name in METHODS]


def names():
    """The method names, in the order of :func:`list`."""
    return builtins.list(METHODS)


def load(path):
    """Load any saved method: a baseline folder, or a NeuronEditor folder (as ``neuron_edit``)."""
    from neuronedit_tf.baselines.base import CONFIG_FILE, Baseline

    path = Path(path)
    if (path / CONFIG_FILE).exists():
        return Baseline.load(path)
    from neuronedit_tf.editor import CONFIG_FILE as EDITOR_CONFIG

    if (path / EDITOR_CONFIG).exists():
        return method_class("neuron_edit").from_editor_folder(path)
    raise NeuronEditError(
        f"{path} is neither a saved baseline ({CONFIG_FILE}) nor a NeuronEditor ({EDITOR_CONFIG})."
    )
