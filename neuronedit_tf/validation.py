"""Guards shared by every public entry point: argument checks, float32 range, finite
outputs, and what a saved model may contain before it is loaded.

Each guard raises one :class:`~neuronedit_tf.errors.NeuronEditError` that names
the problem and the fix; none of them executes anything from the data it checks.

Example:
    >>> positive_int(3, "epochs")
    3
    >>> positive_int("a", "epochs")
    Traceback (most recent call last):
    ...
    neuronedit_tf.errors.NeuronEditError: epochs must be a positive integer; got 'a'.
"""

from __future__ import annotations

import json
import numbers
import zipfile
import zlib
from pathlib import Path

import numpy as np

from neuronedit_tf.errors import NeuronEditError, foreign_errors

#: The largest finite float32; every value is computed in float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)

#: Files Keras writes into a ``.keras`` archive (zip); anything else is refused.
KERAS_MEMBERS = ("config.json", "metadata.json", "model.weights.h5", "model.weights.npz")
#: Layer classes that carry Python code (bytecode) in their config.
CODE_LAYERS = ("Lambda", "TFOpLambda", "SlicingOpLambda")
#: Leading bytes of Python pickles (protocol 2 to 5) and of ``marshal``-ed code.
_PICKLE_MAGIC = tuple(bytes([0x80, protocol]) for protocol in range(2, 6))


def positive_int(value, name):
    """``value`` as an ``int`` >= 1, or a NeuronEditError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, numbers.Real)):
        raise NeuronEditError(f"{name} must be a positive integer; got {value!r}.")
    if isinstance(value, numbers.Real) and not float(value).is_integer():
        raise NeuronEditError(f"{name} must be a positive integer; got {value!r}.")
    if int(value) < 1:
        raise NeuronEditError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def integer(value, name):
    """``value`` as an ``int`` (any sign), or a NeuronEditError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(
            value).is_integer():
        raise NeuronEditError(f"{name} must be an integer; got {value!r}.")
    return int(value)


def widths(values, name="hidden"):
    """A non-empty tuple of positive layer widths, e.g. ``(500, 250, 50)``."""
    try:
        result = tuple(values)
    except TypeError:
        raise NeuronEditError(f"{name} must be a list of positive widths, e.g. (500, 250, 50); "
                              f"got {values!r}.") from None
    if not result:
        raise NeuronEditError(f"{name} is empty; give at least one width, e.g. (500, 250, 50).")
    return tuple(positive_int(v, f"every width in {name}") for v in result)


def positive_finite(value, name):
    """``value`` as a finite float > 0 (a cofactor, a learning rate)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise NeuronEditError(f"{name} must be a positive number; got {value!r}.") from None
    if not (np.isfinite(number) and number > 0):
        raise NeuronEditError(f"{name} must be a positive finite number; got {value!r}.")
    return number


def check_float32_range(values, name="input"):
    """Refuse finite values too large for float32 (they would silently become inf).

    ``values`` is any numeric array; float32 and smaller types always pass.
    """
    values = np.asarray(values)
    if values.dtype.kind != "f" or values.dtype.itemsize <= 4:
        return
    with np.errstate(invalid="ignore", over="ignore"):
        too_large = np.isfinite(values) & (np.abs(values) > FLOAT32_MAX)
    if too_large.any():
        rows, cols = np.nonzero(too_large.reshape(len(values), -1))
        raise NeuronEditError(
            f"{name} has {int(too_large.sum())} value(s) beyond float32's range (|x| > 3.4e38; "
            f"first at row {rows[0]}, column {cols[0]}); every computation is in float32. "
            "Rescale the data (e.g. divide by a constant) first."
        )


def check_variance(variance, name="the data"):
    """Refuse per-feature variances that overflow float32 (features spread beyond ~1.8e19)."""
    variance = np.asarray(variance, np.float64)
    if not np.all(variance <= FLOAT32_MAX):
        column = int(np.argmax(~(variance <= FLOAT32_MAX)))
        raise NeuronEditError(
            f"{name}: feature {column} varies too widely to standardise in float32 (variance "
            f"{variance[column]:.3g} > 3.4e38, i.e. values beyond ~1e19). Rescale the data, or "
            "use transform='arcsinh' for cytometry intensities."
        )


def check_output(values, name="the result"):
    """Raise instead of returning NaN/inf: a non-finite output is never handed back silently."""
    values = np.asarray(values)
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise NeuronEditError(
            f"{name} came out with NaN/inf values although the input was finite; the model "
            "is unusable on this data (e.g. it diverged in training). Refit it with a smaller "
            "learning rate or rescaled data."
        )
    return values


# --------------------------------------------------------------------- tables
def check_unique(names, name="input") -> list[str]:
    """``names`` as strings; raises if any repeats (two channels with one name cannot be matched)."""
    names = [str(n) for n in names]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise NeuronEditError(
            f"{name} has duplicate column/channel names {duplicated}; rename them so that "
            "every feature has one name."
        )
    return names


def numeric_frame(frame, name="input"):
    """``(values, column names)`` of a DataFrame whose columns are uniquely named numbers."""
    columns = check_unique(frame.columns, name)
    non_numeric = [c for c, kind in zip(columns, frame.dtypes) if kind.kind not in "biuf"]
    if non_numeric:
        raise NeuronEditError(
            f"{name} has non-numeric columns {non_numeric}; drop them, or pass "
            "channels=[...] so that only numeric channels are edited."
        )
    return frame.to_numpy(), columns


def float32_values(values, name="input", columns=None) -> np.ndarray:
    """``values`` as a checked ``(rows, features)`` float32 array.

    ``columns`` (optional) name the features in the message about a NaN/inf.

    Raises:
        NeuronEditError: not 2-D, empty, non-numeric, beyond float32's range,
            or containing NaN/inf.
    """
    kind = getattr(values, "dtype", np.dtype(object)).kind
    if kind in "cmMSUV":  # complex, times, text and raw bytes are not measurements
        raise NeuronEditError(
            f"{name} has dtype {values.dtype}, not real numbers; convert it to real numbers "
            "first (e.g. values.astype('float32'), or values.real for complex data)."
        )
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "biuf":
        try:
            values = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise NeuronEditError(
                f"{name} is not numeric; pass a numeric array or DataFrame."
            ) from None
    if values.ndim != 2:
        raise NeuronEditError(
            f"{name} must be 2-D (rows = cells/samples, columns = features); got shape "
            f"{values.shape}. Reshape it, e.g. values.reshape(len(values), -1)."
        )
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise NeuronEditError(f"{name} is empty (shape {values.shape}).")
    check_float32_range(values, name)
    values = values.astype(np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        rows, cols = np.nonzero(bad)
        where = columns[cols[0]] if columns else f"column {cols[0]}"
        raise NeuronEditError(
            f"{name} contains {bad.sum()} NaN/inf value(s) (first at row {rows[0]}, {where}); "
            "remove or impute them first."
        )
    return values


# --------------------------------------------------------------------- saved files
def _is_pickle(path):
    with open(path, "rb") as handle:
        head = handle.read(2)
    return head in _PICKLE_MAGIC or Path(path).suffix.lower() in (".pkl", ".pickle", ".joblib")


def _code_in_config(node, trail="config"):
    """The first place in a Keras config that names a code-carrying layer or function."""
    if isinstance(node, dict):
        if node.get("class_name") in CODE_LAYERS:
            return f"{trail}: a {node['class_name']} layer"
        if node.get("class_name") == "__lambda__" or "__lambda__" in node:
            return f"{trail}: a Python function"
        for key, value in node.items():
            found = _code_in_config(value, f"{trail}.{key}")
            if found:
                return found
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found = _code_in_config(value, f"{trail}[{i}]")
            if found:
                return found
    return None


def check_keras_archive(path):
    """Refuse a ``.keras`` file that holds code (a Lambda layer, a function) or a pickle,
    or is damaged (a member fails its CRC-32).

    Run before ``keras.saving.load_model(..., safe_mode=True)``, which refuses
    the same things with a Keras ``ValueError``; this names the file and the
    layer in a :class:`NeuronEditError` and also refuses files a ``.keras``
    archive never holds.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            unexpected = [m for m in members if m not in KERAS_MEMBERS
                          and not m.startswith("assets/")]
            if unexpected:
                raise NeuronEditError(
                    f"{path} holds files a Keras model never has ({unexpected}); refusing to "
                    "load it. Re-save the model with this package."
                )
            if "config.json" not in members:
                raise NeuronEditError(f"{path} has no config.json; it is not a Keras model file.")
            # Each member's CRC-32: a flipped byte in model.weights.h5 is refused here. Keras
            # hands the member to HDF5 as it is read, and zipfile checks the CRC only at its
            # end: HDF5 would parse the damaged bytes first, and those can crash the process.
            damaged = archive.testzip()
            if damaged is not None:
                raise NeuronEditError(
                    f"{path} is damaged: its member {damaged} fails its checksum (CRC-32). "
                    "Copy or download the model again, or re-save it."
                )
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, zlib.error, EOFError):
        raise NeuronEditError(
            f"{path} is not a Keras model file (not a zip archive); it may be truncated."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise NeuronEditError(f"{path} has an unreadable config.json ({error}).") from None
    found = _code_in_config(config)
    if found:
        raise NeuronEditError(
            f"{path} contains Python code ({found}); loading it would run that code, so it is "
            "refused (Keras safe_mode). Only load models you made, or rebuild the model "
            "without Lambda layers."
        )


def check_saved_folder(path):
    """Refuse a saved editor/method folder that holds a pickle or an unsafe ``.keras`` file."""
    path = Path(path)
    for item in sorted(path.rglob("*")):
        if not item.is_file():
            continue
        if _is_pickle(item):
            raise NeuronEditError(
                f"{item} is a Python pickle; loading pickles can run arbitrary code, so this "
                "folder is refused. Saved editors hold only JSON, NPZ and .keras files."
            )
        if item.suffix == ".keras":
            check_keras_archive(item)


def load_keras_model(path, custom_objects):
    """``keras.saving.load_model`` with ``safe_mode=True``, after :func:`check_keras_archive`;
    any failure is one NeuronEditError naming the file."""
    import keras

    check_keras_archive(path)
    with foreign_errors(f"Could not load the model {path} ({{kind}}: {{error}}). Check that the "
                        "folder was written by this package's save() and is complete."):
        return keras.saving.load_model(path, custom_objects=custom_objects, safe_mode=True)
