"""The registry of comparison methods: ``get(name, **kwargs)``, ``list()``, ``load(path)``.

Names are stable strings used by the benchmarks and the CLI. Importing this
module imports no optional dependency: ``scanpy`` (ComBat) and
``tensorflow_gan`` (the GANs) are imported when those methods are fitted.
"""

from __future__ import annotations

import builtins
from pathlib import Path

from neuronedit_tf.errors import NeuronEditError

# name -> "module:Class"; the order is the order of list().
_METHODS = {
    "neuron_edit": "neuron_edit:NeuronEditMethod",
    "none": "data_space:NoCorrection",
    "train_mean": "data_space:TrainMean",
    "mean_shift": "data_space:MeanShift",
    "quantile_map": "data_space:QuantileMap",
    "constant_shift": "latent:ConstantShift",
    "pca_edit": "latent:PCAEdit",
    "regae": "regae:RegAE",
    "gan": "gans:GAN",
    "cyclegan": "gans:CycleGAN",
    "resnetgan": "gans:ResnetGAN",
    "combat": "classical:ComBat",
    "limma": "classical:Limma",
    "mnn": "mnn:MNN",
    "cca": "classical:CCA",
}


def method_class(name):
    """The class registered under ``name``."""
    import importlib

    if name not in _METHODS:
        raise NeuronEditError(
            f"Unknown method {name!r}; choose one of: {', '.join(_METHODS)}."
        )
    module, cls = _METHODS[name].split(":")
    return getattr(importlib.import_module(f"neuronedit_tf.baselines.{module}"), cls)


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
    return [(name, method_class(name).description) for name in _METHODS]


def names():
    """The method names, in the order of :func:`list`."""
    return builtins.list(_METHODS)


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
