"""Where each comparison method lives: its name -> ``module:Class``, imported on demand.

The one table both :mod:`~neuronedit_tf.baselines.registry` (``get``, ``list``,
``load``) and :meth:`Baseline.load <neuronedit_tf.baselines.base.Baseline.load>`
read, so neither imports the other. Importing it imports no method's module.
"""

from __future__ import annotations

import importlib

from neuronedit_tf.errors import NeuronEditError

# name -> "module:Class"; the order is the order of list().
METHODS = {
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
    if name not in METHODS:
        raise NeuronEditError(
            f"Unknown method {name!r}; choose one of: {', '.join(METHODS)}."
        )
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(f"neuronedit_tf.baselines.{module}"), cls)
