"""Using an exported graph: batch inference, TF Serving requests, an MLflow model folder.

* ``ServedEditor(path).transform(X)``: edit data through an exported SavedModel
  in chunks, with the same inputs and outputs as ``NeuronEditor.transform``
  (arrays, DataFrames matched by column name, FCSData, CSV/TSV/FCS paths);
  ``transform_file`` streams a large CSV/TSV file chunk by chunk.
* ``rest_request(path, rows)``: the JSON body of a TF Serving REST ``:predict``
  request, built from the exported ``serving_default`` signature.
* ``models_config(...)``: a TF Serving ``--model_config_file``.
* ``mlflow_model(path, destination)``: an MLflow model folder that serves the
  SavedModel as it is (MLflow's TensorFlow flavour) with
  ``mlflow models serve --env-manager local`` (optional extra ``serve``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from neuronedit_tf.data.atomic import atomic_path
from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.export import METADATA_FILE

#: Rows per call of the exported graph.
DEFAULT_BATCH_SIZE = 65536


def _metadata(path):
    path = Path(path)
    if not (path / "saved_model.pb").exists():
        raise NeuronEditError(
            f"{path} has no saved_model.pb; export with format='saved_model' or 'both' "
            "(for TF Serving: the PATH/NAME/VERSION folder)."
        )
    metadata_file = path / "assets" / METADATA_FILE
    if not metadata_file.exists():
        raise NeuronEditError(
            f"{path} is a SavedModel without assets/{METADATA_FILE}; it was not written by "
            "neuronedit_tf.export."
        )
    return json.loads(metadata_file.read_text())


def _input_handler(metadata):
    """A NeuronEditor used only for its input handling (validation, column
    alignment by name, output in the caller's form) for this export."""
    from neuronedit_tf.editor import NeuronEditor

    handler = NeuronEditor(model="conv" if len(metadata["feature_shape"]) == 3 else "dense")
    handler.columns = metadata["columns"]
    return handler


class ServedEditor:
    """Edit data through an exported SavedModel, in chunks of ``batch_size`` rows.

    Loads the graph with ``tf.saved_model.load`` (no neuronedit code runs in
    the graph) and takes the same inputs as ``NeuronEditor.transform``: numpy
    arrays, DataFrames (columns matched by name, reordering is fine), FCSData
    (channels the model does not edit pass through) and CSV/TSV/FCS paths; it
    returns the same kind, rows in input order.

    Args:
        path: an export folder holding ``saved_model.pb`` (for TF Serving
            layouts: ``PATH/NAME/VERSION``).
        batch_size: rows per call of the graph (bounds the graph's memory).

    Example:
        >>> served = ServedEditor("served/neuronedit/1")  # doctest: +SKIP
        >>> edited = served.transform(frame)               # doctest: +SKIP
    """

    def __init__(self, path, batch_size=DEFAULT_BATCH_SIZE):
        metadata = _metadata(path)
        if not int(batch_size) >= 1:
            raise NeuronEditError(f"batch_size must be a positive integer; got {batch_size!r}.")
        self.path = Path(path)
        self.batch_size = int(batch_size)
        self.columns = metadata["columns"]
        self.feature_shape = tuple(metadata["feature_shape"])
        self._loaded = tf.saved_model.load(os.fspath(path))
        self._serve = self._loaded.signatures["serving_default"]
        self._inputs = _input_handler(metadata)

    def __call__(self, values):
        """Run the graph on a float32 array of shape ``(n, *feature_shape)``, in chunks."""
        values = np.asarray(values, np.float32)
        if values.shape[1:] != self.feature_shape:
            raise NeuronEditError(
                f"The exported graph takes samples of shape {self.feature_shape}; got "
                f"{values.shape[1:]}."
            )
        chunks = [
            self._serve(features=tf.constant(values[i : i + self.batch_size]))["edited"].numpy()
            for i in range(0, len(values), self.batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0,) + self.feature_shape, np.float32)

    def transform(self, data):
        """Edit ``data``; the same inputs and outputs as ``NeuronEditor.transform``."""
        table = self._inputs._input_table(data, "data", self.feature_shape)
        return self._inputs._like(data, table, self(table.values))

    def transform_file(self, source, destination, chunk_rows=DEFAULT_BATCH_SIZE):
        """Edit a CSV/TSV file too large for memory, ``chunk_rows`` rows at a time.

        The header must name the model's columns (any order; other columns are
        refused, as in ``transform``). ``destination`` is written under a
        temporary name and renamed when complete.
        """
        import pandas as pd

        source = Path(source)
        separator = {".csv": ",", ".tsv": "\t", ".txt": "\t"}.get(source.suffix.lower())
        if separator is None:
            raise NeuronEditError(f"transform_file reads .csv or .tsv files; got {source}.")
        if not source.exists():
            raise NeuronEditError(f"No such file: {source}.")
        with atomic_path(destination) as temporary:
            header = True
            for chunk in pd.read_csv(source, sep=separator, chunksize=int(chunk_rows)):
                edited = self.transform(chunk)
                edited.to_csv(temporary, sep=separator, index=False, header=header,
                              mode="w" if header else "a")
                header = False
            if header:
                raise NeuronEditError(f"{source} has no rows.")
        return Path(destination)


def rest_request(path, data):
    """The JSON body of a TF Serving REST predict request for ``data``.

    Built from the export's ``serving_default`` signature (its input name and
    sample shape); ``data`` is anything ``NeuronEditor.transform`` takes (named
    columns are put in the model's order). The body is
    ``{"signature_name": "serving_default", "inputs": {"features": rows}}``:
    POST it to ``http://HOST:8501/v1/models/NAME:predict`` (TF Serving; answer
    ``{"outputs": rows}``) or to ``/invocations`` of ``mlflow models serve``
    (answer ``{"predictions": {"edited": rows}}``).
    """
    metadata = _metadata(path)
    table = _input_handler(metadata)._input_table(data, "data", tuple(metadata["feature_shape"]))
    (name,) = metadata["signatures"]["serving_default"]["inputs"]
    return {"signature_name": "serving_default", "inputs": {name: table.values.tolist()}}


def models_config(models):
    """A TF Serving model config file (text protobuf) for ``{name: base_path}``.

    ``base_path`` is the folder holding the numbered versions (``PATH/NAME``),
    as the server sees it (inside Docker: e.g. ``/models/NAME``).
    """
    entries = "".join(
        f"  config {{\n    name: {json.dumps(str(name))}\n    base_path: {json.dumps(str(base))}\n"
        f"    model_platform: \"tensorflow\"\n  }}\n"
        for name, base in models.items()
    )
    return f"model_config_list {{\n{entries}}}\n"


def mlflow_model(path, destination):
    """Wrap an exported SavedModel as an MLflow model folder (TensorFlow flavour).

    The SavedModel is copied unchanged into ``destination/saved_model``; the
    ``MLmodel`` file points MLflow's TensorFlow flavour at its
    ``serving_default`` signature and records the input schema (float32,
    ``(-1, *feature_shape)``, named ``features``), so MLflow checks the width of
    requests. Serve it with::

        mlflow models serve -m DESTINATION --env-manager local -h 127.0.0.1 -p 5000

    and POST ``{"inputs": {"features": [[...], ...]}}`` to ``/invocations``.
    Needs the optional extra ``serve`` (``mlflow-skinny``).
    """
    try:
        from mlflow.models import Model
        from mlflow.models.signature import ModelSignature
        from mlflow.types.schema import Schema, TensorSpec
    except ImportError:
        raise NeuronEditError(
            "mlflow_model needs MLflow: pip install 'neuronedit_tf[serve]' (mlflow-skinny)."
        ) from None
    metadata = _metadata(path)
    destination = Path(destination)
    if destination.exists():
        raise NeuronEditError(f"{destination} exists; choose a new folder.")
    shape = (-1, *metadata["feature_shape"])
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), shape, "features")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), shape, "edited")]),
    )
    destination.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        shutil.copytree(path, scratch / "saved_model",
                        ignore=shutil.ignore_patterns("*.tflite"))
        model = Model(signature=signature)
        # No model_type: MLflow loads the SavedModel and calls the named signature.
        model.add_flavor("tensorflow", saved_model_dir="saved_model", meta_graph_tags=["serve"],
                         signature_def_key="serving_default")
        model.add_flavor("python_function", loader_module="mlflow.tensorflow",
                         env={}, python_version=".".join(map(str, sys.version_info[:3])))
        model.save(os.fspath(scratch / "MLmodel"))
        os.replace(scratch, destination)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return destination


__all__ = ["ServedEditor", "mlflow_model", "models_config", "rest_request"]
