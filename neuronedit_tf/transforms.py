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
#: Halley iterations of the logicle's inverse-free scale (float32 converges well within).
HALLEY_STEPS = 8


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
