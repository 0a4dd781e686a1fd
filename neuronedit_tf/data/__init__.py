"""Readers, writers, validation and the real datasets shipped in pinned artifacts.

    >>> from neuronedit_tf.data import read, write
    >>> cells = read("sample.fcs")        # doctest: +SKIP
    >>> write("sample.h5ad", cells)       # doctest: +SKIP

``read`` gives FCSData for FCS, a DataFrame for tables, an AnnData for .h5ad;
``write`` converts between them atomically (see :mod:`neuronedit_tf.data.formats`).
"""

from neuronedit_tf.data.datasets import load_cytof
from neuronedit_tf.data.fcs import FCSData, FCSWarning, read_fcs, write_fcs
from neuronedit_tf.data.formats import FORMATS, iter_chunks, read, write

__all__ = ["FCSData", "FCSWarning", "FORMATS", "iter_chunks", "load_cytof", "read", "read_fcs",
           "write", "write_fcs"]
