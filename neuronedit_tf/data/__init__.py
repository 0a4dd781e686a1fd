"""Readers, writers, validation and the real datasets shipped in pinned artifacts."""

from neuronedit_tf.data.datasets import load_cytof
from neuronedit_tf.data.fcs import FCSData, read_fcs, write_fcs

__all__ = ["FCSData", "load_cytof", "read_fcs", "write_fcs"]
