"""Input validation and feature matching in one place: anything tabular -> a checked float32 ``Table``.

Features are matched by name wherever names exist (DataFrame columns, FCS $PnN,
AnnData ``var_names``): reordered columns are fine, a missing or an extra name
is one error listing both. ``select`` picks a subset of channels by name (the
other channels pass through, see ``replace_columns``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from neuronedit_tf.data.annotated import dense_matrix, with_matrix
from neuronedit_tf.data.fcs import FCSData
from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.validation import check_unique, float32_values, numeric_frame


@dataclass
class Table:
    """A checked 2-D float32 table with optional column names and row index."""

    values: np.ndarray
    columns: list[str] | None = None
    index: object = None

    def __len__(self):
        return len(self.values)


def is_anndata(data) -> bool:
    """True for an ``anndata.AnnData`` (checked by its attributes; anndata is optional)."""
    return all(hasattr(data, attr) for attr in ("obs_names", "var_names", "X", "layers"))


def _is_frame(data) -> bool:
    return hasattr(data, "columns") and hasattr(data, "to_numpy") and hasattr(data, "dtypes")


def names_of(data) -> list[str] | None:
    """The feature names of ``data`` (FCS $PnN, DataFrame columns, AnnData var_names), or None."""
    if isinstance(data, Table):
        return data.columns
    if isinstance(data, FCSData):
        return [str(c) for c in data.channels]
    if is_anndata(data):
        return [str(c) for c in data.var_names]
    if _is_frame(data):
        return [str(c) for c in data.columns]
    return None


def as_table(data, name="input") -> Table:
    """Validate ``data`` (numpy array, DataFrame, FCSData, AnnData or Table).

    AnnData gives its ``X`` (dense; sparse matrices are densified) with
    ``var_names`` as columns and ``obs_names`` as the index.

    Returns:
        Table: ``(rows, features)`` float32 values, column names (or None), index.

    Raises:
        NeuronEditError: not 2-D, empty, non-numeric, containing NaN/inf, or
            with duplicate names.
    """
    if isinstance(data, Table):
        table = data
    elif isinstance(data, (str, os.PathLike)):
        raise _file_path(data, name)
    elif isinstance(data, FCSData):
        table = Table(data.values, check_unique(data.channels, name))
    elif is_anndata(data):
        table = Table(dense_matrix(data, None, name), check_unique(data.var_names, name),
                      data.obs_names)
    elif _is_frame(data):
        values, columns = numeric_frame(data, name)
        table = Table(values, columns, data.index)
    else:
        table = Table(data)
    return Table(float32_values(table.values, name, table.columns), table.columns, table.index)


def _file_path(path, name):
    # Files are read in data.formats (which builds on this module), never here.
    return NeuronEditError(
        f"{name} is a file path ({path}), not data; read it first: "
        "neuronedit_tf.data.formats.read_table(path) gives a checked Table, "
        "neuronedit_tf.data.read(path) its content (FCSData, DataFrame, AnnData, ...)."
    )


def match_names(names, expected, name="input", against="the model's"):
    """Raise unless ``names`` and ``expected`` hold the same names (any order).

    The message lists what is missing and what is extra, e.g. an FCS file whose
    $PnN differ from the other files'.
    """
    missing = [c for c in expected if c not in names]
    extra = [c for c in names if c not in expected]
    if missing or extra:
        raise NeuronEditError(
            f"{name}'s columns do not match {against}: missing {missing}, extra {extra}. "
            "Rename or drop channels so that the names agree (reordering is fine)."
        )


def align(table: Table, columns, name="input") -> Table:
    """Reorder ``table``'s columns to ``columns`` by name; unnamed tables must match by width.

    Raises:
        NeuronEditError: a width mismatch, or names missing from / extra to ``columns``.
    """
    width = len(columns) if columns is not None else None
    if table.columns is None or columns is None:
        if width is not None and table.values.shape[1] != width:
            raise NeuronEditError(
                f"{name} has {table.values.shape[1]} columns; the model expects {width}."
            )
        return table
    match_names(table.columns, columns, name)
    order = [table.columns.index(c) for c in columns]
    return Table(table.values[:, order], list(columns), table.index)


def select(data, columns, name="input") -> Table:
    """The named ``columns`` of ``data`` (any input of :func:`as_table`), validated, in that order.

    Only the chosen columns are validated, so other channels may hold anything
    (text, NaN): they are not edited and pass through untouched.

    Raises:
        NeuronEditError: ``data`` has no names, lacks some of ``columns``, or
            the chosen columns are not finite numbers.
    """
    if isinstance(data, (str, os.PathLike)):
        raise _file_path(data, name)
    columns = check_unique(columns, "the channel list")
    names = names_of(data)
    if names is None:
        raise NeuronEditError(
            f"{name} has no column names, so channels cannot be chosen by name; pass a "
            "DataFrame, an FCS file or an AnnData (or a file with a header)."
        )
    names = check_unique(names, name)
    missing = [c for c in columns if c not in names]
    if missing:
        raise NeuronEditError(f"{name} has no channel(s) {missing}; it has {names}.")
    order = [names.index(c) for c in columns]
    if isinstance(data, Table):
        picked = Table(data.values[:, order], list(columns), data.index)
    elif isinstance(data, FCSData):
        picked = data.select(columns)
    elif is_anndata(data):
        picked = data[:, order]
    else:
        picked = data.iloc[:, order]
    return as_table(picked, name)


def replace_columns(original, columns, values):
    """``original`` with its ``columns`` replaced by ``values``, in the caller's form.

    Every other column, the column order, row order and index, FCS keywords and
    AnnData annotations are kept; ``original`` itself is not modified.

    Args:
        original: what the caller passed: FCSData, DataFrame, AnnData or array.
        columns: names of the columns that ``values`` holds (None: all columns,
            in ``original``'s order).
        values: ``(rows, len(columns))`` new values.

    Returns:
        The same kind as ``original`` (an ndarray for arrays and Tables).
    """
    values = np.asarray(values, np.float32)
    names = None if isinstance(original, Table) else names_of(original)
    if names is None:
        return values
    order = list(range(len(names))) if columns is None else [names.index(c) for c in columns]
    if isinstance(original, FCSData):
        result = np.array(original.values, dtype=np.float32, copy=True)
        result[:, order] = values
        return original.with_values(result)
    if is_anndata(original):
        result = dense_matrix(original, None, "input").copy()
        result[:, order] = values
        return with_matrix(original, result)
    result = original.copy()
    for column, position in enumerate(order):
        result.isetitem(position, values[:, column])
    return result
