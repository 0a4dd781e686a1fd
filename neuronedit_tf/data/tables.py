"""Input validation in one place: anything tabular -> a checked float32 ``Table``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuronedit_tf.errors import NeuronEditError


@dataclass
class Table:
    """A checked 2-D float32 table with optional column names and row index."""

    values: np.ndarray
    columns: list[str] | None = None
    index: object = None

    def __len__(self):
        return len(self.values)


def read_table(path) -> Table:
    """Read a CSV/TSV (header row of column names) or FCS file into a Table."""
    path = Path(path)
    if not path.exists():
        raise NeuronEditError(f"No such file: {path}.")
    suffix = path.suffix.lower()
    if suffix == ".fcs":
        from neuronedit_tf.data.fcs import read_fcs

        data = read_fcs(path)
        return Table(data.values, list(data.channels))
    if suffix in (".csv", ".tsv", ".txt"):
        import pandas as pd

        try:
            frame = pd.read_csv(path, sep="\t" if suffix != ".csv" else ",")
        except Exception as error:
            raise NeuronEditError(f"Could not read {path} as a table: {error}.") from None
        return as_table(frame, name=str(path))
    raise NeuronEditError(
        f"Unknown file type {suffix!r} for {path}; use .csv, .tsv or .fcs."
    )


def as_table(data, name="input") -> Table:
    """Validate ``data`` (numpy array, pandas DataFrame, FCSData, Table or a file path).

    Raises:
        NeuronEditError: not 2-D, empty, non-numeric, or containing NaN/inf.
    """
    from neuronedit_tf.data.fcs import FCSData

    if isinstance(data, Table):
        table = data
    elif isinstance(data, (str, os.PathLike)):
        table = read_table(data)
    elif isinstance(data, FCSData):
        table = Table(data.values, list(data.channels))
    elif hasattr(data, "columns") and hasattr(data, "to_numpy"):
        columns = [str(c) for c in data.columns]
        non_numeric = [c for c, kind in zip(columns, data.dtypes) if kind.kind not in "biuf"]
        if non_numeric:
            raise NeuronEditError(
                f"{name} has non-numeric columns {non_numeric}; drop them or select numeric ones."
            )
        duplicated = sorted({c for c in columns if columns.count(c) > 1})
        if duplicated:
            raise NeuronEditError(f"{name} has duplicate column names {duplicated}; rename them.")
        table = Table(data.to_numpy(), columns, data.index)
    else:
        table = Table(data)
    values = table.values
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "biuf":
        try:
            values = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError):
            raise NeuronEditError(
                f"{name} is not numeric; pass a numeric array or DataFrame."
            ) from None
    if values.ndim != 2:
        raise NeuronEditError(
            f"{name} must be 2-D (rows = cells/samples, columns = features); got shape "
            f"{values.shape}. Reshape it, e.g. values.reshape(len(values), -1)."
        )
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise NeuronEditError(f"{name} is empty (shape {values.shape}).")
    values = values.astype(np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        rows, cols = np.nonzero(bad)
        where = table.columns[cols[0]] if table.columns else f"column {cols[0]}"
        raise NeuronEditError(
            f"{name} contains {bad.sum()} NaN/inf value(s) (first at row {rows[0]}, {where}); "
            "remove or impute them first."
        )
    return Table(values, table.columns, table.index)


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
    missing = [c for c in columns if c not in table.columns]
    extra = [c for c in table.columns if c not in columns]
    if missing or extra:
        raise NeuronEditError(
            f"{name}'s columns do not match the model's: missing {missing}, extra {extra}. "
            "Select the model's columns (reordering is fine)."
        )
    order = [table.columns.index(c) for c in columns]
    return Table(table.values[:, order], list(columns), table.index)
