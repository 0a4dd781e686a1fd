"""Readers, writers, validation and the real datasets shipped in pinned artifacts.

    >>> from neuronedit_tf.data import read, write
    >>> cells = read("sample.fcs")        # doctest: +SKIP
    >>> write("sample.h5ad", cells)       # doctest: +SKIP

``read`` gives FCSData for FCS, a DataFrame for tables, an AnnData for .h5ad;
``write`` converts between them atomically (see :mod:`neuronedit_tf.data.formats`).
"""

from neuronedit_tf.data.datasets import load_cytof, load_cytof_adata, write_cytof_study
from neuronedit_tf.data.fcs import FCSData, FCSWarning, read_fcs, write_fcs
from neuronedit_tf.data.formats import FORMATS, channel_names, iter_chunks, read, write
from neuronedit_tf.data.metadata import StudyTable, read_metadata

__all__ = ["FCSData", "FCSWarning", "FORMATS", "StudyTable", "channel_names", "iter_chunks",
           "load_cytof", "load_cytof_adata", "read", "read_fcs", "read_metadata", "write",
           "write_cytof_study", "write_fcs"]
