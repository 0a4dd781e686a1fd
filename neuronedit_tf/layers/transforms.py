"""The in-graph transforms of cytometry data, forward and exact inverse: ``Arcsinh`` (a
cofactor), ``Logicle`` (its parameters; the math is in :mod:`neuronedit_tf.transforms`), and
``Saturate``, which keeps standardised values finite."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.transforms import HALLEY_STEPS, logicle_constants, logicle_options


@keras.saving.register_keras_serializable(package="neuronedit")
class Arcsinh(keras.layers.Layer):
    """``arcsinh(x / cofactor)``, or its exact inverse ``cofactor * sinh(x)``.

    The cytometry transform (cofactor 5 for CyTOF, 150 for flow), in the graph
    so that exported models take raw values.

    Example:
        >>> import numpy as np
        >>> forward, back = Arcsinh(5.0), Arcsinh(5.0, inverse=True)
        >>> x = np.array([[0.0, 5.0, 500.0]], "float32")
        >>> bool(np.allclose(back(forward(x)).numpy(), x, rtol=1e-5))
        True
    """

    def __init__(self, cofactor=5.0, inverse=False, **kwargs):
        super().__init__(**kwargs)
        if not cofactor > 0:
            raise NeuronEditError(f"The arcsinh cofactor must be positive; got {cofactor}.")
        self.cofactor = float(cofactor)
        self.inverse = bool(inverse)

    def call(self, inputs):
        # Written with log1p/expm1 rather than tf.asinh/tf.sinh, which are not TFLite
        # builtin ops; accurate to a few float32 ulps, exact at 0, finite up to float32's
        # range (asinh) and overflowing where sinh does.
        if self.inverse:
            return self.cofactor * _sinh(inputs)
        return _asinh(inputs / self.cofactor)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(cofactor=self.cofactor, inverse=self.inverse)
        return config


@keras.saving.register_keras_serializable(package="neuronedit")
class Saturate(keras.layers.Layer):
    """Clip values to ``[-limit, limit]`` (inf becomes ``±limit``): far inputs saturate.

    Example:
        >>> import numpy as np
        >>> Saturate(10.0)(np.array([[-np.inf, 3.0, 1e30]], "float32")).numpy().tolist()
        [[-10.0, 3.0, 10.0]]
    """

    def __init__(self, limit=float(np.finfo(np.float32).max), **kwargs):
        super().__init__(**kwargs)
        self.limit = float(limit)

    def call(self, inputs):
        return tf.clip_by_value(inputs, -self.limit, self.limit)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(limit=self.limit)
        return config


_LN2 = float(np.log(2.0))


def _asinh(x):
    """asinh(x) = sign(x) log1p(a + a^2 / (1 + sqrt(1 + a^2))), a = |x|; log(2a) past 2^60."""
    a = tf.abs(x)
    bounded = tf.minimum(a, 2.0**60)  # keeps a^2 finite
    near = tf.math.log1p(bounded + bounded * bounded / (1.0 + tf.sqrt(1.0 + bounded * bounded)))
    far = tf.math.log(a) + _LN2
    return tf.sign(x) * tf.where(a > 2.0**60, far, near)


def _sinh(y):
    """sinh(y) = sign(y) (m + m / (1 + m)) / 2, m = expm1(|y|); exp(|y| - ln 2) past 20."""
    a = tf.abs(y)
    m = tf.math.expm1(tf.minimum(a, 20.0))
    near = 0.5 * (m + m / (1.0 + m))
    # Past |y| ~ 89.4 sinh overflows float32: saturate at float32's largest value instead.
    far = tf.minimum(tf.exp(a - _LN2), float(np.finfo(np.float32).max))
    return tf.sign(y) * tf.where(a > 20.0, far, near)


@keras.saving.register_keras_serializable(package="neuronedit")
class Logicle(keras.layers.Layer):
    """The logicle transform (data -> display scale), or its exact inverse.

    Maps ``t`` to 1 and 0 to ``w / (m + a)``; linear-like near zero, logarithmic
    for large values, defined for negative values (the reason flow cytometry
    uses it rather than a log). Elementwise; any input shape; float32.

    Args:
        t, w, m, a: logicle parameters (see :func:`logicle_options`).
        inverse: map display-scale values back to data values (closed form).

    Example:
        >>> import numpy as np
        >>> forward, back = Logicle(), Logicle(inverse=True)
        >>> x = np.array([[-100.0, 0.0, 1000.0, 262144.0]], "float32")
        >>> np.round(forward(x).numpy(), 3)
        array([[0.009, 0.111, 0.454, 1.   ]], dtype=float32)
        >>> bool(np.allclose(back(forward(x)).numpy(), x, rtol=1e-4, atol=1e-2))
        True
    """

    def __init__(self, t=262144.0, w=0.5, m=4.5, a=0.0, inverse=False, **kwargs):
        super().__init__(**kwargs)
        options = logicle_options({"t": t, "w": w, "m": m, "a": a})
        self.t, self.w, self.m, self.a = (options[k] for k in ("t", "w", "m", "a"))
        self.inverse = bool(inverse)
        self._constants = logicle_constants(self.t, self.w, self.m, self.a)

    def _series(self, y):
        """The biexponential near data zero: Taylor series around x1."""
        k = self._constants
        h = y - k["x1"]
        total = k["taylor"][-1] * h
        for coefficient in reversed(k["taylor"][2:-1]):
            total = (total + coefficient) * h
        return (total * h + k["taylor"][0]) * h

    def _biexponential(self, y):
        """Data value of a display value ``y >= x1`` (before reflection)."""
        k = self._constants
        exact = (k["a"] * tf.exp(k["b"] * y) + k["f"]) - k["c"] * tf.exp(-k["d"] * y)
        return tf.where(y < k["x_taylor"], self._series(y), exact)

    def _scale(self, values):
        k = self._constants
        negative = values < 0
        magnitude = tf.abs(values)
        # The reference's starting point: linear near zero, logarithmic above f.
        floor = max(k["f"], float(np.finfo(np.float32).tiny))  # f is 0 when w is 0
        linear_guess = k["x1"] + magnitude / k["taylor"][0]
        log_guess = tf.math.log(tf.maximum(magnitude, floor) / k["a"]) / k["b"]
        y = tf.where(magnitude < floor, linear_guess, log_guess)
        for _ in range(HALLEY_STEPS):
            grow = k["a"] * tf.exp(k["b"] * y)
            decay = k["c"] * tf.exp(-k["d"] * y)
            residual = tf.where(
                y < k["x_taylor"], self._series(y) - magnitude,
                (grow + k["f"]) - (decay + magnitude),
            )
            slope = k["b"] * grow + k["d"] * decay
            curvature = k["b"] * k["b"] * grow - k["d"] * k["d"] * decay
            step = residual / (slope * (1 - residual * curvature / (2 * slope * slope)))
            y = y - step
        return tf.where(negative, 2 * k["x1"] - y, y)

    def _unscale(self, values):
        k = self._constants
        negative = values < k["x1"]
        reflected = tf.where(negative, 2 * k["x1"] - values, values)
        data = self._biexponential(reflected)
        return tf.where(negative, -data, data)

    def call(self, inputs):
        inputs = tf.cast(inputs, self.compute_dtype)
        return self._unscale(inputs) if self.inverse else self._scale(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(t=self.t, w=self.w, m=self.m, a=self.a, inverse=self.inverse)
        return config
