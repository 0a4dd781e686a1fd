"""Readers, writers, validation and the real datasets shipped in pinned artifacts.

    >>> from neuronedit_tf.data import read, write   # doctest: +SKIP
    >>> cells = read("sample.fcs")                     # FCSData; .csv/.parquet -> DataFrame, ...
    >>> write("sample.h5ad", cells)                    # any format to any format, atomically
"""

from neuronedit_tf.data.datasets import load_cytof
from neuronedit_tf.data.fcs import FCSData, read_fcs, write_fcs
from neuronedit_tf.data.formats import FORMATS, iter_chunks, read, write

__all__ = ["FCSData", "FORMATS", "iter_chunks", "load_cytof", "read", "read_fcs", "write",
           "write_fcs"]
