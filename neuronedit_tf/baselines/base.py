"""``Baseline``: the one interface of every comparison method.

``fit(source, target, extra=None)`` learns how S became T (X may be used, as
by neuron editing, where a method can use unlabelled data), and returns self;
``transform(X)`` applies it to any later data without refitting; ``save(path)``
and ``Baseline.load(path)`` keep it. Inputs and outputs behave exactly as
NeuronEditor's (:class:`~neuronedit_tf.estimator.Estimator`): numpy arrays,
DataFrames (columns matched by name, index kept), FCSData (other channels pass
through), file paths; images ``(n, H, W[, C])`` for the methods that take them.

Two kinds of method share this class:

* array methods keep their learned state as named numpy arrays
  (``self.state_``, saved as ``state.npz``, loaded with ``allow_pickle=False``)
  and implement ``_fit_arrays`` / ``_transform_array`` on 2-D arrays on the
  analysis scale (``transform="arcsinh"``: ``arcsinh(x / cofactor)``; images
  are flattened to one row each);
* network methods build ``self.model_``, one Keras graph raw values -> corrected
  raw values (pre- and post-processing in the graph, as NeuronEditor's), saved
  as ``model.keras`` and loaded with Keras ``safe_mode``.

A saved method is a folder: ``baseline.json`` (method name, constructor
config, columns, sample shape, training history), plus ``state.npz`` and/or
``model.keras``. Nothing is pickled.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from neuronedit_tf import models, validation
from neuronedit_tf.baselines.catalog import method_class
from neuronedit_tf.data.atomic import atomic_folder
from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.estimator import Estimator, Renamed
from neuronedit_tf.layers import custom_objects

CONFIG_FILE = "baseline.json"
STATE_FILE = "state.npz"
MODEL_FILE = "model.keras"
FORMAT = 1


def optional(module, extra):
    """Import an optional dependency, or raise a NeuronEditError naming the extra that brings it.

    Example:
        >>> optional("sklearn.decomposition", "baselines").PCA.__name__
        'PCA'
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise NeuronEditError(
            f"This method needs {module.split('.')[0]} ({error}); install it with "
            f"pip install 'neuronedit_tf[{extra}]'."
        ) from None


class Baseline(Estimator):
    """Base class of the comparison methods; see the module docstring.

    Args:
        transform: ``"none"``, ``"arcsinh"`` or ``"logicle"`` (cytometry; its default
            parameters): the scale the method works on; outputs are mapped back to raw
            units exactly.
        cofactor: the arcsinh cofactor (5 for CyTOF, 150 for flow cytometry).
        seed: seeds everything random in ``fit``.

    As in scikit-learn, constructor arguments are stored untouched under their own
    names (``get_params``/``set_params``; ``transform=`` is held in ``transform_name``,
    beside the ``transform()`` method) and fitted state ends in ``_`` (``state_``,
    ``model_``, ``history_``, ``columns_``, ``sample_shape_``).

    Subclasses set ``name`` (the registry key), ``description`` (one line),
    ``supports_images``, and implement ``_fit_arrays``/``_transform_array``
    (array methods) or ``_fit_values`` building ``self.model_`` (network methods).
    """

    name = ""
    description = ""
    supports_images = False

    def __init__(self, transform="none", cofactor=5.0, seed=0):
        if transform not in models.TRANSFORMS:
            raise NeuronEditError(
                f"transform must be one of {models.TRANSFORMS}; got {transform!r}."
            )
        if not cofactor > 0:
            raise NeuronEditError(f"cofactor must be positive; got {cofactor}.")
        self.transform_name = transform  # transform() is the method; see _attribute_names
        self.cofactor = cofactor
        self.seed = seed

    _attribute_names = {"transform": "transform_name"}
    # Fitted state (set by fit and load); the old names warn for one release.
    sample_shape_ = None
    model_ = None
    history_ = None
    _image_input = False
    sample_shape = Renamed("sample_shape_")
    state = Renamed("state_")
    history = Renamed("history_")

    # ----------------------------------------------------------------- config
    def get_config(self):
        """Constructor arguments (JSON-serialisable); ``cls(**get_config())`` rebuilds it."""
        return {"transform": self.transform_name, "cofactor": float(self.cofactor),
                "seed": int(self.seed)}

    def __repr__(self):
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"

    # ----------------------------------------------------------------- inputs
    @property
    def images(self):
        return self._image_input

    def _detect_images(self, source):
        """Array methods take images when given them (n, H, W[, C]); tables otherwise."""
        shape = getattr(source, "shape", None)
        if shape is None and isinstance(source, (list, tuple)):
            shape = np.shape(source)
        is_image = shape is not None and len(shape) in (3, 4) and not hasattr(source, "columns")
        if is_image and not self.supports_images:
            raise NeuronEditError(
                f"{self.name} works on tables (rows x features), not images of shape {shape}; "
                "flatten them first, e.g. images.reshape(len(images), -1)."
            )
        return is_image

    # ---------------------------------------------------------------- fitting
    def fit(self, source, target, extra=None):
        """Learn the correction from S to T (X optional) and return self.

        Args:
            source: S, ``(n_S, d)`` (array, DataFrame, FCSData or path) or
                ``(n_S, H, W[, C])`` images for methods that take them.
            target: T, the same features after the transformation.
            extra: X, the data to be corrected later; used in fitting only by
                methods that say so in their docstring.

        Returns:
            self.
        """
        self._image_input = self._detect_images(source)
        tables, columns = self._fit_tables(source, target, extra)
        for table, role in zip(tables, ("source", "target", "extra")):
            if len(table) < self.min_rows:
                raise NeuronEditError(
                    f"{role} has {len(table)} rows; {self.name} needs at least {self.min_rows}."
                )
        keras.utils.set_random_seed(self.seed)
        self.columns_ = columns
        self.sample_shape_ = tuple(int(s) for s in tables[0].values.shape[1:])
        self.state_, self.model_, self.history_ = {}, None, None
        self._fit_values(*[t.values for t in tables])
        return self

    #: The fewest rows each of S, T (and X) may have.
    min_rows = 2

    def _fit_values(self, source, target, extra=None):
        """Default for array methods: flatten, move to the analysis scale, ``_fit_arrays``."""
        scaled = [None if v is None else self._scale(v) for v in (source, target, extra)]
        self._fit_arrays(*scaled)

    def _fit_arrays(self, source, target, extra=None):
        raise NotImplementedError

    def _transform_array(self, values):
        raise NotImplementedError

    # -------------------------------------------------------------- transform
    def _require_fitted(self):
        if self.sample_shape_ is None:  # class default until fit or load
            raise NeuronEditError(
                f"This {type(self).__name__} is not fitted; call fit() or load() first."
            )

    def transform(self, data):
        """Apply the fitted correction to ``data`` (X, or any later data) without refitting.

        Returns:
            The same kind as given (DataFrame with its index, FCSData with every
            channel, or ndarray), rows in input order, in raw units.
        """
        self._require_fitted()
        return self._apply(data, "data", self._transform_values, sample_shape=self.sample_shape_)

    def _transform_values(self, values):
        if self.model_ is not None:
            return models.run(self.model_, values)
        flat = self._scale(values)
        return self._unscale(self._transform_array(flat), values.shape)

    # ------------------------------------------------------------ the scale
    def _scale(self, values):
        """Raw ``(n, ...)`` -> the analysis scale, one flattened row per sample, float64."""
        values = np.asarray(values, np.float32).reshape(len(values), -1)
        return models.transform_values(values, self.transform_name, self.cofactor).astype(
            np.float64
        )

    def _unscale(self, values, shape):
        """The exact inverse of ``_scale``, back to ``shape``."""
        values = models.transform_values(values, self.transform_name, self.cofactor,
                                         inverse=True)
        return values.reshape(shape)

    def _processing(self, standardise_with):
        """``(pre, post)``: raw -> standardised and back (NeuronEditor's layers), with the
        per-feature (per-channel for images) statistics of ``standardise_with`` (raw values)."""
        shape = self.sample_shape_
        transformed = models.transform_values(
            np.asarray(standardise_with, np.float32), self.transform_name, self.cofactor
        )
        mean, variance = models.standardisation_stats(transformed.reshape(-1, shape[-1]))
        pre = models.preprocessing(shape, mean, variance, self.transform_name, self.cofactor)
        post = models.postprocessing(shape, mean, variance, self.transform_name, self.cofactor)
        return pre, post

    # ----------------------------------------------------------- persistence
    def save(self, path, overwrite=False):
        """Save to a folder (``baseline.json`` + ``state.npz`` / ``model.keras``), atomically.

        An existing folder is refused unless ``overwrite``.
        """
        self._require_fitted()
        path = Path(path)
        with atomic_folder(path, overwrite) as scratch:
            record = {
                "format": FORMAT,
                "method": self.name,
                "config": self.get_config(),
                "columns": self.columns_,
                "sample_shape": list(self.sample_shape_),
                "images": self._image_input,
                "history": self.history_,
                "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
            }
            (scratch / CONFIG_FILE).write_text(json.dumps(record, indent=2))
            if self.state_:
                np.savez(scratch / STATE_FILE,
                         **{k: np.asarray(v) for k, v in self.state_.items()})
            if self.model_ is not None:
                self.model_.save(scratch / MODEL_FILE)
        return path

    @classmethod
    def load(cls, path):
        """Load a saved method (Keras ``safe_mode``, ``allow_pickle=False``: no code runs).

        Called on ``Baseline`` it returns the saved method's own class.
        """
        path = Path(path)
        config_file = path / CONFIG_FILE
        if not config_file.exists():
            raise NeuronEditError(f"{path} is not a saved baseline (no {CONFIG_FILE}).")
        validation.check_saved_folder(path)
        try:
            record = json.loads(config_file.read_text())
        except json.JSONDecodeError as error:
            raise NeuronEditError(f"{config_file} is not valid JSON: {error}.") from None
        if record.get("format") != FORMAT:
            raise NeuronEditError(
                f"{config_file} has format {record.get('format')!r}; this version reads {FORMAT}."
            )
        method = method_class(record["method"])
        if cls is not Baseline and not issubclass(method, cls):
            raise NeuronEditError(f"{path} holds a {record['method']!r}, not a {cls.__name__}.")
        baseline = method(**record["config"])
        baseline.state_ = {}
        baseline.columns_ = record["columns"]
        baseline.sample_shape_ = tuple(record["sample_shape"])
        baseline._image_input = bool(record["images"])
        baseline.history_ = record["history"]
        if (path / STATE_FILE).exists():
            try:
                with np.load(path / STATE_FILE, allow_pickle=False) as arrays:
                    baseline.state_ = {k: arrays[k] for k in arrays.files}
            except ValueError as error:  # an object array: it would need unpickling
                raise NeuronEditError(
                    f"{path / STATE_FILE} cannot be read without unpickling ({error}); refused."
                ) from None
        if (path / MODEL_FILE).exists():
            baseline.model_ = validation.load_keras_model(path / MODEL_FILE, custom_objects())
        baseline._after_load()
        return baseline

    def _after_load(self):
        """Hook for methods that rebuild helpers from ``state``/``model``."""
