"""Every Keras layer of neuronedit_tf, and the one registry that loads them.

* :class:`NeuronEdit` (``neuron_edit.py``): per-neuron percentile maps (paper eq. 1), and
  :func:`percentiles`, the exact column-sorted percentiles its ``adapt`` computes;
* :class:`SupportGate` (``support_gate.py``): the ``"gated"`` method's blend by distance to
  reference codes (it and :class:`ReferenceCodes` hold their codes as ``reference.py``'s
  :class:`~neuronedit_tf.layers.reference.StoredReference` does);
* :class:`ReferenceCodes` and :class:`KnnShift` (``knn_shift.py``): the ``"knn_shift"``
  method's stored spike-in codes and each row's mean shift of its nearest ones;
* the in-graph transforms (``transforms.py``): :class:`Arcsinh`, :class:`Logicle` and
  :class:`Saturate`; the ensemble's :class:`MemberSlice` (``ensemble.py``);
* a study's (``study.py``): :class:`StudyEdit`, every batch's percentile maps stacked and
  gathered per row by its batch, and :class:`KeepBatches`, the reference batch passed through.

:func:`custom_objects` is what Keras's loader is given wherever this package loads
a ``.keras`` file (the editor, the baselines, the zoo), so every loader knows the same layers.
"""

from neuronedit_tf.layers.neuron_edit import (DEFAULT_MAX_SAMPLES, DEFAULT_QUANTILES,
                                              EXTRAPOLATIONS, NeuronEdit, clean_knots,
                                              percentiles, quantile_knots)
from neuronedit_tf.layers.support_gate import DEFAULT_GATE_REFERENCE, SupportGate, gate_groups
from neuronedit_tf.layers.knn_shift import DEFAULT_KNN_REFERENCE, KnnShift, ReferenceCodes
from neuronedit_tf.layers.ensemble import MemberSlice
from neuronedit_tf.layers.transforms import Arcsinh, Logicle, Saturate
from neuronedit_tf.layers.study import KeepBatches, StudyEdit

__all__ = ["DEFAULT_GATE_REFERENCE", "DEFAULT_KNN_REFERENCE", "DEFAULT_MAX_SAMPLES",
           "DEFAULT_QUANTILES", "EXTRAPOLATIONS", "Arcsinh", "KeepBatches", "KnnShift", "LAYERS",
           "Logicle", "MemberSlice", "NeuronEdit", "ReferenceCodes", "Saturate", "StudyEdit",
           "SupportGate", "clean_knots", "custom_objects", "gate_groups", "percentiles",
           "quantile_knots"]

#: The package's Keras layers, each registered (``keras.saving``) under package ``neuronedit``.
LAYERS = (NeuronEdit, SupportGate, Arcsinh, Saturate, Logicle, MemberSlice, StudyEdit, KeepBatches,
          ReferenceCodes, KnnShift)


def custom_objects():
    """``{class name: layer class}``: the ``custom_objects`` of every Keras model load
    (:func:`neuronedit_tf.validation.load_keras_model`, the package's one Keras loader).

    Example:
        >>> sorted(custom_objects())  # doctest: +NORMALIZE_WHITESPACE
        ['Arcsinh', 'KeepBatches', 'KnnShift', 'Logicle', 'MemberSlice', 'NeuronEdit',
         'ReferenceCodes', 'Saturate', 'StudyEdit', 'SupportGate']
    """
    return {layer.__name__: layer for layer in LAYERS}
