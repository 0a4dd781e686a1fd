"""How a trained autoencoder and percentile maps become one edit graph: the methods.

``NeuronEditor(method=...)`` picks one by name; each is one object (one module here, one line
in :data:`REGISTRY`, see :class:`~neuronedit_tf.methods.base.EditMethod`) that owns its default
knots, whether it takes images, the layers it adapts and how it assembles its graph for fitting
and for export. Each graph is one Keras model, raw values in and raw values out, so every method
saves, loads and exports the same way.

* ``"paper"`` (:mod:`~neuronedit_tf.methods.paper`) -- the paper's neuron editing (§2):
  ``X' = D(NeuronEdit(E(X)))``, the percentile maps adapted from ``E(S)`` to ``E(T)``.
* ``"calibrated"`` (:mod:`~neuronedit_tf.methods.calibrated`) -- the paper's edit in residual
  form, ``R(X) = X + D(NeuronEdit(E(X))) - D(E(X))`` with two knots
  (:data:`RESIDUAL_QUANTILES`), then a per-feature calibration fitted on the spike-in pair.
* ``"gated"`` (:mod:`~neuronedit_tf.methods.gated`) -- ``"calibrated"`` applied only where it
  was learned: a :class:`~neuronedit_tf.layers.SupportGate` blends, per cell, the calibrated
  output with the residual edit alone by how far the cell's code lies from the spike-ins'.
* ``"knn_shift"`` (:mod:`~neuronedit_tf.methods.knn_shift`) -- the authors' own variant: each
  cell's code moves by the mean edit of its 50 nearest spike-in codes, then is decoded.
* ``"latent_shift"`` (same module) -- the mean edit of every spike-in code added to each
  cell's code, the decoded change added to X (residual): ``X + D(E(X) + Delta) - D(E(X))``.
  The edit that transferred best across populations where the change mixes channels (#19).
* ``"gated_shift"`` (:mod:`~neuronedit_tf.methods.gated_shift`) -- ``"gated"`` on the latent
  shift: per-feature calibration within the spike-ins' support, ``"latent_shift"`` outside.
* ``"quantile_map"``, ``"mean_shift"`` (:mod:`~neuronedit_tf.methods.data_space`) -- the
  per-feature maps in data space (no autoencoder), what ``"auto"`` weighs the edits against.
* ``"auto"`` (:mod:`neuronedit_tf.selection`, not a graph of its own) -- each fit chooses one
  of the above by cross-validation on its spike-in pair.

A new formulation is a module with an :class:`~neuronedit_tf.methods.base.EditMethod` subclass
and one line here (or :func:`register` at run time; a saved editor names its method, so
register it before loading).

Every method also runs on an ensemble of autoencoders, ``NeuronEditor(members=K)``:
K dense autoencoders (seeds ``seed`` .. ``seed + K - 1``) trained side by side, joined by
:func:`neuronedit_tf.models.ensemble` so that the edited layer holds the members'
codes side by side (one :class:`NeuronEdit` edits every member) and the decoder
averages the members' reconstructions; ``R(X)`` is then ``X`` plus the mean of the
members' decoded changes. Same graph, same save/load/export.

The default, the gate's band and the residual edit's knots are chosen by
cross-validation on the spike-in pair alone (fit on part of the S and T cells, score the rest of S, edited,
against the rest of T; random halves and population halves), never on a
sample's truth: :func:`neuronedit_tf.bench.batch.select_method` is the code.

Example:
    >>> import numpy as np
    >>> from neuronedit_tf import NeuronEditor
    >>> rng = np.random.default_rng(0)
    >>> source = rng.normal(size=(500, 4)).astype("float32")
    >>> target = source * [1.0, 1.0, 2.0, 1.0] + [1.0, 0.0, 0.0, 0.0]
    >>> extra = rng.normal(size=(500, 4)).astype("float32") + [0.0, 2.0, 0.0, 0.0]
    >>> editor = NeuronEditor(method="gated", hidden=(32, 16, 8)).fit(
    ...     source, target, extra=extra, epochs=3, verbose=0)
    >>> [layer.name for layer in editor.model_.layers if "edit" in layer.name or
    ...  layer.name in ("calibration", "support_gate")]
    ['neuron_edit', 'residual_edit', 'calibration', 'support_gate']
"""

from __future__ import annotations

from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.methods.base import EditMethod, Pieces
from neuronedit_tf.methods.calibrated import (CALIBRATION_QUANTILES, RESIDUAL_QUANTILES,
                                              Calibrated, residual_edit)
from neuronedit_tf.methods.data_space import MeanShift, QuantileMap
from neuronedit_tf.methods.gated import GATE, Gated
from neuronedit_tf.methods.gated_shift import GatedShift
from neuronedit_tf.methods.knn_shift import KNN, KnnShift, LatentShift
from neuronedit_tf.methods.paper import Paper

#: Every method by name; :func:`get` reads it, :func:`register` adds to it.
REGISTRY = {}
#: Chosen by ``neuronedit_tf.bench.batch.select_method`` (run by ``neuronedit bench batch``:
#: seeds 0, 1, 2; 6 CyTOF, 2 cross-channel and the drug case), with the residual methods'
#: quartile edit: ``"gated"`` with ``GATE`` scored 0.638 (held-out spike-in EMD / no
#: correction), ``"calibrated"`` 0.976, ``"paper"`` 0.969 (``benchmarks/RESULTS.md``).
DEFAULT_METHOD = "gated"
#: The default for images (``NeuronEditor(model="conv")``): the default method takes tables only.
DEFAULT_IMAGE_METHOD = "paper"
#: Ensemble size chosen by cross-validation (``docs/decisions/0001-default-edit-for-tables.md``,
#: decision 3; seed 0, with the paper's 101-knot edit: 3 members side by side 1.007 vs 1.074 on
#: one autoencoder). With the quartile edit the gain is gone (the default's 3-seed, 3-family
#: protocol): 0.633 on 3 members vs 0.638 on one. Not the default
#: (``NeuronEditor(members=1)``): it doubles the fit time and halves the throughput of the edit.
ENSEMBLE_MEMBERS = 3


def register(method):
    """Add ``method`` (an :class:`EditMethod` instance) under its ``name``; returns it.

    Raises:
        NeuronEditError: another method already has that name.
    """
    if not isinstance(method, EditMethod) or not isinstance(method.name, str):
        raise NeuronEditError(f"register needs an EditMethod with a name; got {method!r}.")
    if method.name in REGISTRY:
        raise NeuronEditError(f"A method named {method.name!r} is registered already: "
                              f"{REGISTRY[method.name]!r}. Choose another name.")
    REGISTRY[method.name] = method
    return method


def unregister(name):
    """Remove the method ``name`` (e.g. one a test registered)."""
    REGISTRY.pop(check_method(name))


def names():
    """The registered methods' names, in registration order.

    Example:
        >>> names()[:3]
        ('paper', 'calibrated', 'gated')
    """
    return tuple(REGISTRY)


def check_method(method):
    """Return ``method`` if it names a registered method; raise a ``NeuronEditError`` otherwise."""
    if method not in REGISTRY:
        raise NeuronEditError(
            f"method must be 'auto' or one of {names()}; got {method!r}. Use 'paper' for the "
            "paper's D(NeuronEdit(E(X))), 'auto' to choose by cross-validation on the "
            f"spike-ins (default {DEFAULT_METHOD!r})."
        )
    return method


def get(method):
    """The :class:`EditMethod` named ``method`` (an ``EditMethod`` is returned as it is).

    Example:
        >>> get("paper").serves_chain, get("gated").parts
        (True, ('calibration', 'support_gate'))
    """
    if isinstance(method, EditMethod):
        return method
    return REGISTRY[check_method(method)]


def default_name(images=False):
    """The default method's name for tables, or for images (``images=True``)."""
    return DEFAULT_IMAGE_METHOD if images else DEFAULT_METHOD


def default_quantiles(method):
    """The neuron edit's knots for ``method``: the paper's 0..100 for ``"paper"``,
    :data:`RESIDUAL_QUANTILES` for the residual methods.

    Example:
        >>> len(default_quantiles("paper"))
        101
    """
    return get(method).default_quantiles


def build_edit_graph(method, sample_shape, pre, encoder, decoder, post, edit, source, target,
                     calibration_quantiles=CALIBRATION_QUANTILES, extrapolation="shift", gate=None,
                     seed=0):
    """Assemble the raw -> edited raw graph of ``method`` (a name), adapting what it needs.

    The functional form of ``get(method).fit_graph``: ``calibration_quantiles`` and ``gate``
    (the ``SupportGate`` settings, default ``GATE``) configure the calibrated methods
    (``"calibrated"``, ``"gated"``, ``"gated_shift"``).

    Returns:
        ``keras.Model`` named ``neuron_editor``; its layers include
        ``preprocessing``, ``encoder``, ``neuron_edit``, ``decoder`` and
        ``postprocessing``, and for ``"calibrated"`` also ``residual_edit`` and
        ``calibration``; for ``"gated"`` also ``support_gate``.
    """
    chosen = get(method)
    if isinstance(chosen, GatedShift):
        chosen = GatedShift(calibration_quantiles, gate, chosen.max_reference)
    elif isinstance(chosen, Gated):
        chosen = Gated(calibration_quantiles, gate)
    elif isinstance(chosen, Calibrated):
        chosen = type(chosen)(calibration_quantiles)
    return chosen.fit_graph(sample_shape, Pieces(pre, encoder, decoder, post), edit, source,
                            target, extrapolation, seed)


def assemble(method, sample_shape, pre, encoder, edit, decoder, post, calibration=None,
             name="neuron_editor", gate=None):
    """The raw -> edited raw graph of ``method`` (a name) from fitted pieces (nothing is
    adapted); the functional form of ``get(method).assemble``."""
    chosen = get(method)
    given = {"calibration": calibration, "support_gate": gate}
    missing = [part for part in chosen.parts if given.get(part) is None]
    if missing:
        raise NeuronEditError(f"method={chosen.name!r} needs its {', '.join(missing)} layer(s).")
    parts = {part: given[part] for part in chosen.parts}
    return chosen.assemble(sample_shape, Pieces(pre, encoder, decoder, post), edit, parts, name)


register(Paper())
register(Calibrated())
register(Gated())
register(KnnShift())
register(LatentShift())
register(GatedShift())
register(QuantileMap())
register(MeanShift())


def __getattr__(name):
    if name == "METHODS":  # the registered names, as before the registry (a tuple)
        return names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CALIBRATION_QUANTILES", "DEFAULT_IMAGE_METHOD", "DEFAULT_METHOD", "ENSEMBLE_MEMBERS",
           "GATE", "METHODS", "REGISTRY", "RESIDUAL_QUANTILES", "EditMethod", "Pieces",
           "assemble", "build_edit_graph", "check_method", "default_name", "default_quantiles",
           "get", "names", "register", "residual_edit", "unregister"]
