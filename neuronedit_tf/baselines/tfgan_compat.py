"""Import ``tensorflow_gan`` (TF-GAN 2.1.0) on TensorFlow 2.21, where ``tf.estimator`` is gone.

TF-GAN 2.1.0 (2021, unmaintained) subclasses ``tf.estimator.SessionRunHook`` and
``tf.estimator.Estimator`` at import time, so ``import tensorflow_gan`` fails on
TF >= 2.16. Its losses (``tfgan.losses.wargs.*``) and evaluation functions
(``tfgan.eval.*``, e.g. ``frechet_classifier_distance_from_activations``) never
touch ``tf.estimator`` and run eagerly; its ``gan_model``/``gan_loss``/``gan_train``
and estimators are graph-only and stay unusable.

TF-GAN also imports ``tensorflow_hub`` (for Inception metrics, which download
weights and cannot run offline here); ``tensorflow_hub`` 0.16 imports
``pkg_resources``, which setuptools >= 81 no longer ships.

This module is the one place that knows this: during the import it puts a stub
``tf.estimator`` (and ``tf.compat.v1.estimator``) on the ``tensorflow`` module
(placeholder classes that raise when used, and the real ``ModeKeys`` strings)
and, only if ``tensorflow_hub`` does not import, a stub ``tensorflow_hub`` whose
every attribute raises; then it imports ``tensorflow_gan`` and removes both
stubs again, so nothing else sees them.

Example:
    >>> import tensorflow as tf
    >>> from neuronedit_tf.baselines.tfgan_compat import tfgan
    >>> round(float(tfgan.losses.wargs.modified_generator_loss(tf.zeros([4, 1]))), 4)
    0.6931
"""

from __future__ import annotations

import importlib
import sys
import types

import tensorflow as tf

from neuronedit_tf.errors import NeuronEditError

INSTALL_HINT = "pip install 'neuronedit_tf[gan]' (tensorflow-gan==2.1.0)"


# TF-GAN reaches the estimator API as tf.estimator and as tf.compat.v1.estimator.
_COMPAT_V1 = ("tensorflow.compat.v1", "tensorflow._api.v2.compat.v1")


class _RemovedMeta(type):
    """Any attribute of a stub class is another stub (``tf.estimator.tpu.RunConfig``...)."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _removed(f"{cls.__qualname__}.{name}")


def _removed(qualname):
    def __init__(self, *args, **kwargs):
        raise NeuronEditError(
            f"tf.estimator.{qualname} does not exist in TensorFlow {tf.__version__}; TF-GAN's "
            "estimator and gan_train parts cannot run here. Use tfgan.losses.wargs.* and "
            "tfgan.eval.* only."
        )

    return _RemovedMeta(qualname, (), {"__init__": __init__, "__qualname__": qualname})


class _ModeKeys:
    TRAIN = "train"
    EVAL = "eval"
    PREDICT = "infer"


class _EstimatorStub(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _removed(name)


class _HubStub(types.ModuleType):
    def __init__(self, reason):
        super().__init__("tensorflow_hub")
        self.reason = reason

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise NeuronEditError(
            f"tensorflow_hub could not be imported ({self.reason}); TF-GAN's Inception "
            "metrics need it (and a network connection). Use "
            "tfgan.eval.frechet_classifier_distance_from_activations on your own activations."
        )


def _hub_stub():
    """None if ``tensorflow_hub`` imports; else a stub to stand in for it."""
    try:
        import tensorflow_hub  # noqa: F401
    except Exception as error:  # ImportError (pkg_resources), or its own version checks
        return _HubStub(f"{type(error).__name__}: {error}")
    return None


def _tensorflow_modules():
    """``tf`` and every object that ``tf.compat.v1`` may resolve to (TF wraps its API
    modules in ``TFModuleWrapper``s, one per import path, each over a plain module)."""
    found = {}
    for module in (tf, *(importlib.import_module(name) for name in _COMPAT_V1)):
        for candidate in (module, getattr(module, "_tfmw_wrapped_module", module)):
            found[id(candidate)] = candidate
    return list(found.values())


def _import():
    if "tensorflow_gan" in sys.modules:
        return sys.modules["tensorflow_gan"]
    stub = _EstimatorStub("tensorflow.estimator")
    stub.ModeKeys = _ModeKeys
    stubbed = [m for m in _tensorflow_modules() if "estimator" not in vars(m)]
    for module in stubbed:
        setattr(module, "estimator", stub)
    hub = _hub_stub()
    if hub is not None:
        sys.modules["tensorflow_hub"] = hub
    try:
        import tensorflow_gan
    except ImportError as error:
        raise ImportError(
            f"tensorflow_gan is not importable ({error}); install it with {INSTALL_HINT}."
        ) from error
    finally:
        for module in stubbed:
            if vars(module).get("estimator") is stub:  # a wrapper removes its module's too
                delattr(module, "estimator")
        if hub is not None and sys.modules.get("tensorflow_hub") is hub:
            del sys.modules["tensorflow_hub"]
    return tensorflow_gan


tfgan = _import()

__all__ = ["tfgan", "INSTALL_HINT"]
