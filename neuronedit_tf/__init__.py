"""neuronedit_tf: neuron editing (Amodio & Krishnaswamy) in Keras 3 / TensorFlow.

Transform data the way a known source became a known target, on data whose
result was never observed.

    >>> from neuronedit_tf import NeuronEditor, NeuronEdit   # doctest: +SKIP
"""

from neuronedit_tf.editor import NeuronEditor
from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.layers import NeuronEdit

__version__ = "0.1.0"
__all__ = ["NeuronEdit", "NeuronEditError", "NeuronEditor", "__version__"]
