"""neuronedit_tf: neuron editing (Amodio & Krishnaswamy) in Keras 3 / TensorFlow.

Transform data the way a known source became a known target, on data whose
result was never observed.

    >>> from neuronedit_tf import NeuronEditor, NeuronEdit   # doctest: +SKIP
    >>> import neuronedit_tf as ne; ne.tl.edit(adata, key="condition")   # doctest: +SKIP
"""

from neuronedit_tf.editor import NeuronEditor
from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.layers import NeuronEdit
from neuronedit_tf import pl, tl  # noqa: E402  (scanpy-style namespaces)

__version__ = "0.1.0"
__all__ = ["NeuronEdit", "NeuronEditError", "NeuronEditor", "__version__", "pl", "tl"]
