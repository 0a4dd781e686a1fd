"""The contract shared by NeuronEditor and every baseline: ``fit(source, target, extra)``
then ``transform(X)``.

One place for what every method does with its inputs and outputs: validate S, T
and X (tables through :func:`~neuronedit_tf.data.tables.as_table`, images
through :func:`as_images`), match named columns to the fitted ones, and return
results in the kind the caller gave (DataFrame with its index, FCSData with every
channel and keyword, or an ndarray), rows in input order.
"""

from __future__ import annotations

import numpy as np

from neuronedit_tf.data.tables import Table, align, as_table
from neuronedit_tf.errors import NeuronEditError

ROLES = ("source", "target", "extra")


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


def like_input(original, table, values):
    """Return ``values`` (rows of ``table``) in the caller's form: DataFrame, FCSData or ndarray.

    An FCSData keeps every channel and keyword; only ``table.columns`` are replaced.
    """
    from neuronedit_tf.data.fcs import FCSData

    if isinstance(original, FCSData):
        order = [original.channels.index(c) for c in table.columns]
        result = np.array(original.values, copy=True)
        result[:, order] = values
        return FCSData(result, list(original.channels), list(original.markers),
                       dict(original.text))
    if hasattr(original, "columns") and hasattr(original, "to_numpy"):
        import pandas as pd

        return pd.DataFrame(values, columns=table.columns, index=table.index)
    return values


class Estimator:
    """Input handling for ``fit(source, target, extra=None)`` / ``transform(X)``.

    Subclasses say whether they take images (:attr:`images`), call
    :meth:`_fit_tables` at the start of ``fit`` and :meth:`_apply` in
    ``transform``. After fitting, ``columns`` holds the feature names (or None
    for unnamed tables and images).
    """

    columns = None

    @property
    def images(self) -> bool:
        """True if this method works on image batches ``(n, H, W, C)``."""
        return False

    def _validate(self, data, name):
        return as_images(data, name) if self.images else as_table(data, name)

    def _fit_tables(self, source, target, extra=None):
        """Validated S, T (and X if given) as Tables, columns aligned to the source's.

        Returns:
            ``(tables, columns)``: a list of 2 or 3 :class:`Table`, and the
            source's column names (None if unnamed or images).
        """
        given = [source, target] + ([] if extra is None else [extra])
        tables = [self._validate(data, name) for data, name in zip(given, ROLES)]
        if self.images:
            shapes = {t.values.shape[1:] for t in tables}
            if len(shapes) != 1:
                raise NeuronEditError(f"source, target and extra differ in image shape: {shapes}.")
            return tables, None
        columns = tables[0].columns
        return [align(t, columns, n) for t, n in zip(tables, ROLES)], columns

    def _apply(self, data, name, function, sample_shape=None):
        """Validate ``data`` like the fitted inputs, run ``function`` on its values
        (``(n, d)`` or ``(n, H, W, C)`` float32) and return the result like the input.

        ``sample_shape`` is the image shape the method was fitted on (checked for images).
        """
        from neuronedit_tf.data.fcs import FCSData

        if isinstance(data, FCSData) and self.columns is not None:
            # Channels the method does not use (Time, scatter, ...) pass through unchanged.
            table = as_table(data.select(self.columns), name)
        else:
            table = self._validate(data, name)
        if not self.images:
            table = align(table, self.columns, name)
        elif sample_shape is not None and table.values.shape[1:] != tuple(sample_shape):
            raise NeuronEditError(
                f"{name} has image shape {table.values.shape[1:]}; the model expects "
                f"{tuple(sample_shape)}."
            )
        values = np.asarray(function(table.values), np.float32)
        return like_input(data, table, values)
