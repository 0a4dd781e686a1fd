"""Every comparison method of the paper and of the field, behind one interface.

    >>> from neuronedit_tf import baselines
    >>> [name for name, _ in baselines.list()][:4]
    ['neuron_edit', 'none', 'train_mean', 'mean_shift']
    >>> method = baselines.get("quantile_map", transform="arcsinh")   # doctest: +SKIP
    >>> corrected = method.fit(source, target, extra=sample).transform(sample)   # doctest: +SKIP

Each method: ``fit(source, target, extra=None)`` -> self, ``transform(X)``,
``save(path)``, ``load(path)``; see :class:`~neuronedit_tf.baselines.base.Baseline`
and each class's docstring for exactly how it is applied.
"""

from neuronedit_tf.baselines.base import Baseline
from neuronedit_tf.baselines.registry import get, list, load, method_class, names

__all__ = ["Baseline", "get", "list", "load", "method_class", "names"]
