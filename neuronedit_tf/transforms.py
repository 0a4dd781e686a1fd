"""The logicle cytometry transform (Parks, Roederer & Moore 2006), in the graph, with its exact inverse.

``flowutils.transforms.logicle`` (the reference C implementation of Moore & Parks
2012, the GatingML 2.0 definition) cannot run inside a TensorFlow graph: it is a
C extension called on numpy arrays, so a SavedModel or TFLite file could not
carry it. This module writes the same function in TensorFlow ops:

* the inverse (display scale -> data) is closed form: the biexponential
  ``B(y) = a e^(b y) - c e^(-d y) + f`` (reflected for negative data), with the
  same 16-term Taylor series around data zero that the reference uses;
* the forward direction (data -> display scale) solves ``B(y) = x`` with a fixed
  number of Halley steps from the reference's starting guess, so it is a plain
  feed-forward graph (no ``while`` loop).

The tests compare both directions with ``flowutils`` (a test-only dependency).
Parameters follow the usual names: ``t`` top of scale, ``w`` linearisation width
in decades, ``m`` decades of the full scale, ``a`` additional negative decades;
the defaults are flowutils' (262144, 0.5, 4.5, 0).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from neuronedit_tf.errors import NeuronEditError

LOGICLE_DEFAULTS = {"t": 262144.0, "w": 0.5, "m": 4.5, "a": 0.0}
_TAYLOR_TERMS = 16
_HALLEY_STEPS = 8


def logicle_options(options=None):
    """Complete and check logicle parameters: a dict with keys among ``t, w, m, a``.

    Raises:
        NeuronEditError: an unknown key, or values outside the logicle's domain
            (``t > 0``, ``m > 0``, ``0 <= w <= m / 2``, ``-w <= a <= m - 2 w``).
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(LOGICLE_DEFAULTS))
    if unknown:
        raise NeuronEditError(
            f"Unknown logicle parameter(s) {unknown}; use t (top of scale), w (linear width, "
            "decades), m (decades) and a (extra negative decades)."
        )
    merged = {k: float(options.get(k, v)) for k, v in LOGICLE_DEFAULTS.items()}
    t, w, m, a = merged["t"], merged["w"], merged["m"], merged["a"]
    if not (t > 0 and m > 0 and 0 <= w and 2 * w <= m and -w <= a <= m - 2 * w):
        raise NeuronEditError(
            f"Invalid logicle parameters {merged}: need t > 0, m > 0, 0 <= w <= m/2 and "
            "-w <= a <= m - 2w (typical flow cytometry: t=262144, w=0.5, m=4.5, a=0)."
        )
    return merged


def _solve_d(b, w):
    """The root d of 2 (ln d - ln b) + w (b + d) = 0 in (0, b] (the logicle condition)."""
    if w == 0:
        return b
    from scipy.optimize import brentq

    def condition(d):
        return 2 * (math.log(d) - math.log(b)) + w * (b + d)

    return brentq(condition, 1e-300, b, xtol=1e-15, rtol=4 * np.finfo(float).eps)


def logicle_constants(t, w, m, a):
    """The biexponential's constants (float64), as in Moore & Parks (2012)."""
    width = w / (m + a)
    x2 = a / (m + a)
    x1 = x2 + width
    x0 = x2 + 2 * width
    b = (m + a) * math.log(10.0)
    d = _solve_d(b, width)
    c_over_a = math.exp(x0 * (b + d))
    minus_f_over_a = math.exp(b * x1) - c_over_a / math.exp(d * x1)
    scale_a = t / ((math.exp(b) - minus_f_over_a) - c_over_a / math.exp(d))
    c = c_over_a * scale_a
    f = -minus_f_over_a * scale_a
    positive = scale_a * math.exp(b * x1)
    negative = -c / math.exp(d * x1)
    taylor = []
    for i in range(_TAYLOR_TERMS):
        positive *= b / (i + 1)
        negative *= -d / (i + 1)
        taylor.append(positive + negative)
    taylor[1] = 0.0  # exactly zero by the logicle condition
    return {"a": scale_a, "b": b, "c": c, "d": d, "f": f, "x1": x1,
            "x_taylor": x1 + width / 4, "taylor": taylor}


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
        for _ in range(_HALLEY_STEPS):
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
