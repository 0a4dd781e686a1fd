"""neuronedit_tf: neuron editing (Amodio & Krishnaswamy) in Keras 3 / TensorFlow.

Transform data the way a known source became a known target, on data whose
result was never observed.

    >>> from neuronedit_tf import NeuronEditor, NeuronEdit   # doctest: +SKIP
    >>> import neuronedit_tf as ne; ne.tl.edit(adata, key="condition")   # doctest: +SKIP

The public names and submodules (``ne.tl``, ``ne.pl``, ``ne.zoo``, ``ne.data``, ...) are
imported on first use (PEP 562), so ``import neuronedit_tf`` does not import TensorFlow:
the ``neuronedit`` command answers ``--help`` at once.
"""

import importlib
import importlib.util

__version__ = "0.1.0"
__all__ = ["NeuronEdit", "NeuronEditError", "NeuronEditor", "Study", "__version__", "pl", "tl"]

#: Public classes and the module that defines each.
_DEFINED_IN = {
    "NeuronEdit": "neuronedit_tf.layers",
    "NeuronEditError": "neuronedit_tf.errors",
    "NeuronEditor": "neuronedit_tf.editor",
    "Study": "neuronedit_tf.study",
}


def __getattr__(name):
    if name in _DEFINED_IN:
        value = getattr(importlib.import_module(_DEFINED_IN[name]), name)
    elif _is_submodule(name):
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def _is_submodule(name):
    """True for ``zoo``, ``tl``, ``data``, ...: the package's own modules by name."""
    return (name.isidentifier() and not name.startswith("_")
            and importlib.util.find_spec(f"{__name__}.{name}") is not None)


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_DEFINED_IN))
