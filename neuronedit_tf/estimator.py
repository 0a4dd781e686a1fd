"""The contract shared by NeuronEditor and every baseline: ``fit(source, target, extra)``
then ``transform(X)``.

One place for what every method does with its inputs and outputs: validate S, T
and X (tables through :func:`~neuronedit_tf.data.tables.as_table`, images
through :func:`as_images`), match named columns to the fitted ones, and return
results in the kind the caller gave (DataFrame with its index, FCSData with every
channel and keyword, or an ndarray), rows in input order.
"""

from __future__ import annotations

import inspect
import os
import warnings

import numpy as np

from neuronedit_tf.data.tables import (Table, align, as_table, match_names, names_of,
                                       replace_columns, select)
from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.validation import check_output

def as_images(data, name="input") -> Table:
    """Validate an image batch: ``(n, H, W)`` or ``(n, H, W, C)`` finite numbers.

    Returns a :class:`Table` whose ``values`` are float32 ``(n, H, W, C)``.

    Example:
        >>> as_images(np.zeros((2, 8, 8))).values.shape
        (2, 8, 8, 1)
    """
    values = np.asarray(data)
    if values.dtype.kind not in "biuf":
        raise NeuronEditError(f"{name} is not numeric; pass an array of images.")
    if values.ndim == 3:
        values = values[..., None]
    if values.ndim != 4 or len(values) == 0:
        raise NeuronEditError(
            f"{name} must be a non-empty batch of images (n, H, W[, C]); got shape {values.shape}."
        )
    values = values.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise NeuronEditError(f"{name} contains NaN/inf values; remove or impute them first.")
    return Table(values)


def load(data):
    """A file path becomes its content (FCSData, DataFrame, AnnData, ...); anything else is kept."""
    if isinstance(data, (str, os.PathLike)):
        from neuronedit_tf.data.formats import read

        return read(data)
    return data


def is_collection(data):
    """True for a list/tuple of data sets (files, arrays, frames), not a nested list of numbers."""
    return isinstance(data, (list, tuple)) and len(data) > 0 and all(
        isinstance(d, (str, os.PathLike)) or len(getattr(d, "shape", ())) >= 2
        or hasattr(d, "channels")
        for d in data
    )


def named_inputs(source, target, extra=None):
    """``[(name, data), ...]`` for S, T and X (X may be a list of data sets)."""
    inputs = [("source", source), ("target", target)]
    if is_collection(extra):
        inputs += [(f"extra[{i}]", e) for i, e in enumerate(extra)]
    elif extra is not None:
        inputs.append(("extra", extra))
    return inputs


#: The training settings shared by NeuronEditor and every trained baseline, with their
#: defaults (the paper's: at most 200 epochs of minibatches of 100, Adam at 1e-3; early
#: stopping on every 10th row after 10 epochs without improvement). Each is a constructor
#: argument of all of them, so ``clone`` and grid searches see it; NeuronEditor's
#: ``fit()`` also takes them, as overrides for one fit.
TRAINING = {
    "epochs": 200,
    "batch_size": 100,
    "learning_rate": 1e-3,
    "validation_split": 0.1,
    "patience": 10,
    "deterministic": False,
}


class Renamed:
    """A deprecated attribute name that reads and writes the attribute ``new``, with a
    ``DeprecationWarning`` (kept for one release after a rename)."""

    def __init__(self, new):
        self.new = new

    def __set_name__(self, owner, name):
        self.old = name

    def _warn(self, instance):
        warnings.warn(f"{type(instance).__name__}.{self.old} is deprecated and will be removed "
                      f"in the next release; use .{self.new}.", DeprecationWarning, stacklevel=3)

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        self._warn(instance)
        return getattr(instance, self.new)

    def __set__(self, instance, value):
        self._warn(instance)
        setattr(instance, self.new, value)


class Parameters:
    """``get_params``/``set_params`` as scikit-learn's ``BaseEstimator`` gives them, so
    ``sklearn.base.clone``, grid searches and pipelines work without scikit-learn being
    installed: the parameters are ``__init__``'s arguments, each stored, untouched, under
    its own name. The one exception, ``_attribute_names``, maps an argument whose name
    is a method's (``transform=``, beside ``transform()``) to the attribute holding it.

    Example:
        >>> from neuronedit_tf import NeuronEditor
        >>> NeuronEditor(seed=3).get_params()["seed"]
        3
    """

    _attribute_names = {}

    @classmethod
    def _get_param_names(cls):
        """``__init__``'s argument names; through ``**kwargs``, its parents' too."""
        names = set()
        for klass in cls.__mro__:
            if "__init__" not in vars(klass) or klass is object:
                continue
            arguments = list(inspect.signature(klass.__init__).parameters.values())[1:]
            names.update(a.name for a in arguments
                         if a.kind not in (a.VAR_POSITIONAL, a.VAR_KEYWORD))
            if not any(a.kind == a.VAR_KEYWORD for a in arguments):
                break
        return sorted(names)

    def get_params(self, deep=True):
        """The constructor arguments as ``{name: value}``; with ``deep``, also those of
        arguments that are estimators themselves (as ``name__argument``)."""
        params = {}
        for name in self._get_param_names():
            value = getattr(self, self._attribute_names.get(name, name))
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                params.update((f"{name}__{k}", v) for k, v in value.get_params().items())
            params[name] = value
        return params

    def set_params(self, **params):
        """Set constructor arguments (checked as the constructor checks them); returns self.

        Raises:
            ValueError: for a name that is not a constructor argument.
        """
        valid = self._get_param_names()
        nested = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid parameters are {valid}.")
            if sub:
                nested.setdefault(name, {})[sub] = value
        own = {k: v for k, v in params.items() if "__" not in k}
        type(self)(**{**self.get_params(deep=False), **own})  # the constructor's checks
        for name, value in own.items():
            setattr(self, self._attribute_names.get(name, name), value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self


class Estimator(Parameters):
    """Input handling for ``fit(source, target, extra=None)`` / ``transform(X)``.

    Subclasses say whether they take images (:attr:`images`), call
    :meth:`_fit_tables` at the start of ``fit`` and :meth:`_apply` in
    ``transform``. After fitting, ``columns_`` holds the edited feature names (or
    None for unnamed tables and images) and ``passthrough_`` the other features
    of the inputs when ``channels`` selected a subset. Constructor arguments are
    stored under their own names (:class:`Parameters`); fitted state ends in ``_``.
    """

    columns_ = None
    channels = None
    passthrough_ = ()
    columns = Renamed("columns_")
    passthrough = Renamed("passthrough_")

    @property
    def images(self) -> bool:
        """True if this method works on image batches ``(n, H, W, C)``."""
        return False

    def _validate(self, data, name):
        return as_images(data, name) if self.images else as_table(data, name)

    def _fit_tables(self, source, target, extra=None):
        """Validated S, T (and X if given) as Tables, columns matched to the source's.

        Named inputs are matched by name (any order); with ``channels`` every
        input must hold the same full set of features as the source (e.g. the
        same FCS panel), only ``channels`` are used, and the rest are recorded
        in ``passthrough_``.

        Returns:
            ``(tables, columns)``: a list of :class:`Table` (S, T, then each X),
            and the feature names (None if unnamed or images).
        """
        return self._fit_named(named_inputs(source, target, extra))

    def _fit_named(self, inputs):
        """:meth:`_fit_tables` for any named inputs ``[(name, data), ...]`` (files read);
        the first one's columns are the reference."""
        inputs = [(name, load(data)) for name, data in inputs]
        self.passthrough_ = []
        if self.images:
            tables = [as_images(data, name) for name, data in inputs]
            shapes = {t.values.shape[1:] for t in tables}
            if len(shapes) != 1:
                raise NeuronEditError(f"source, target and extra differ in image shape: {shapes}.")
            return tables, None
        if self.channels is None:
            tables = [as_table(data, name) for name, data in inputs]
            columns = tables[0].columns
            return [align(t, columns, n) for t, (n, _) in zip(tables, inputs)], columns
        reference = names_of(inputs[0][1])
        for name, data in inputs[1:]:
            names = names_of(data)
            if names is not None and reference is not None:
                match_names(names, reference, name, against="the source's")
        tables = [select(data, self.channels, name) for name, data in inputs]
        self.passthrough_ = [c for c in reference if c not in self.channels]
        return tables, list(self.channels)

    def _input_table(self, data, name, sample_shape=None):
        """``data`` checked like the fitted inputs: named columns matched to ``columns_``
        (with ``channels``, the rest must be the pass-through features), or the image
        shape checked against ``sample_shape``."""
        data = load(data)
        if self.images:
            table = as_images(data, name)
            if sample_shape is not None and table.values.shape[1:] != tuple(sample_shape):
                raise NeuronEditError(
                    f"{name} has image shape {table.values.shape[1:]}; the model expects "
                    f"{tuple(sample_shape)}."
                )
            return table
        if self.channels is not None:
            names = names_of(data)
            if names is not None:
                match_names(names, list(self.columns_) + list(self.passthrough_), name)
            return select(data, self.columns_, name)
        return align(as_table(data, name), self.columns_, name)

    def _like(self, data, table, values):
        """``values`` (the edited ``table``) in the caller's form: the input's kind, with
        every other column, channel and keyword of ``data`` kept, rows in input order."""
        if self.images:
            return values
        return replace_columns(load(data), table.columns, values)

    def _apply(self, data, name, function, sample_shape=None):
        """Validate ``data`` like the fitted inputs, run ``function`` on its values
        (``(n, d)`` or ``(n, H, W, C)`` float32) and return the result like the input."""
        data = load(data)
        table = self._input_table(data, name, sample_shape)
        values = check_output(np.asarray(function(table.values), np.float32), f"The edited {name}")
        return self._like(data, table, values)
