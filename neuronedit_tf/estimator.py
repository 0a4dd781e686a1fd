"""The contract shared by NeuronEditor and every baseline: ``fit(source, target, extra)``
then ``transform(X)``.

One place for what every method does with its inputs and outputs: validate S, T
and X (tables through :func:`~neuronedit_tf.data.tables.as_table`, images
through :func:`as_images`), match named columns to the fitted ones, and return
results in the kind the caller gave (DataFrame with its index, FCSData with every
channel and keyword, or an ndarray), rows in input order.
"""

from __future__ import annotations

import os

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


class Estimator:
    """Input handling for ``fit(source, target, extra=None)`` / ``transform(X)``.

    Subclasses say whether they take images (:attr:`images`), call
    :meth:`_fit_tables` at the start of ``fit`` and :meth:`_apply` in
    ``transform``. After fitting, ``columns`` holds the edited feature names (or
    None for unnamed tables and images) and ``passthrough`` the other features
    of the inputs when ``channels`` selected a subset.
    """

    columns = None
    channels = None
    passthrough = ()

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
        in ``passthrough``.

        Returns:
            ``(tables, columns)``: a list of :class:`Table` (S, T, then each X),
            and the feature names (None if unnamed or images).
        """
        inputs = [(name, load(data)) for name, data in named_inputs(source, target, extra)]
        self.passthrough = []
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
        self.passthrough = [c for c in reference if c not in self.channels]
        return tables, list(self.channels)

    def _input_table(self, data, name, sample_shape=None):
        """``data`` checked like the fitted inputs: named columns matched to ``columns``
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
                match_names(names, list(self.columns) + list(self.passthrough), name)
            return select(data, self.columns, name)
        return align(as_table(data, name), self.columns, name)

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
