"""Apply an exported study on Apache Beam: files -> cells with their batch -> ``RunInference``
(Beam's TensorFlow model handler over the exported SavedModel) -> corrected files.

When a study outgrows one machine, the served graph of ``study.export(path)`` (or
``neuronedit export``) runs on any Beam runner: the DirectRunner here, Dataflow, Flink or
Spark elsewhere. Each file is read and cut into chunks of cells, each chunk carrying its
rows' batch name; ``RunInference`` batches chunks (of any batches) into one request to the
graph's ``serving_default`` (``features`` and ``batch`` -> ``edited``), and each file's chunks
are gathered and written corrected, in the file's own format, with its other channels and
keywords kept and the batch and reference recorded (FCS ``$COM``), each file written to a
temporary name and renamed. The files go where :func:`neuronedit_tf.data.formats.output_paths`
puts them (as ``neuronedit apply`` does).

Needs the ``beam`` extra (``pip install "neuronedit_tf[beam]"``: apache-beam, with
tensorflow-hub, which Beam's TensorFlow handler imports)::

    from neuronedit_tf.beam import correct_files
    correct_files("served/study", "metadata.csv", "normalized/")          # DirectRunner
    correct_files("gs://b/served/study", "metadata.csv", "/mnt/out",      # another runner
                  options=PipelineOptions(runner="DataflowRunner", project=..., ...))

or ``python -m neuronedit_tf.beam --export served/study --metadata metadata.csv
--out-dir normalized/ [Beam pipeline options]``. On a distributed runner every worker
needs ``neuronedit_tf`` (its readers and writers) and must see the input files and the
output folder (a shared file system).

Beam's ``TFModelHandlerNumpy`` loads models with ``tf.keras.models.load_model``, which in
Keras 3 reads only ``.keras`` files; :class:`StudyModelHandler` is that handler with the
SavedModel loaded by ``tf.saved_model.load`` (TF Serving's way) and an inference function
that sends each row's batch name beside its features.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuronedit_tf.data.formats import (channel_names, infer_format, output_paths, read,
                                        resolve_dataset, split_dataset, write)
from neuronedit_tf.data.metadata import StudyTable, read_metadata
from neuronedit_tf.data.tables import as_table, replace_columns, select
from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.study import correction_note

try:  # the optional extra
    from apache_beam.ml.inference.tensorflow_inference import \
        TFModelHandlerNumpy as _TFModelHandlerNumpy
except ImportError:  # pragma: no cover - without the extra, require_beam() says what to do
    _TFModelHandlerNumpy = object

#: Cells per chunk (one RunInference element); RunInference batches several per request.
CHUNK_ROWS = 4096


def require_beam():
    """Import apache_beam or say how to install it."""
    try:
        import apache_beam
        import tensorflow_hub  # noqa: F401  (Beam's TensorFlow handler imports it)
    except ImportError as error:
        raise NeuronEditError(
            f"Running a study on Apache Beam needs the beam extra ({error}): "
            'pip install "neuronedit_tf[beam]".') from None
    return apache_beam


def serve_chunks(model, batch, inference_args=None, model_id=None):
    """Beam's inference function for a study's graph: ``batch`` is a list of chunks
    ``(features (n, d) float32, batch names (n,))``; they go to ``serving_default`` as one
    request and come back split per chunk as ``PredictionResult``s."""
    import tensorflow as tf
    from apache_beam.ml.inference.base import PredictionResult

    features = np.concatenate([np.asarray(f, np.float32) for f, _ in batch])
    names = np.concatenate([np.asarray(b, dtype=object) for _, b in batch]).astype(bytes)
    serve = model.signatures["serving_default"]
    edited = serve(features=tf.constant(features), batch=tf.constant(names))["edited"].numpy()
    ends = np.cumsum([len(f) for f, _ in batch])[:-1]
    return [PredictionResult(example, part, model_id)
            for example, part in zip(batch, np.split(edited, ends))]


class StudyModelHandler(_TFModelHandlerNumpy):
    """Beam's ``TFModelHandlerNumpy`` for an exported study: the SavedModel loaded with
    ``tf.saved_model.load``, each element a chunk ``(features, batch names)`` served by
    :func:`serve_chunks`. Other arguments (``min_batch_size``, ``max_batch_size``,
    ``model_copies``, ...) are the handler's."""

    def __init__(self, model_uri, **kwargs):
        require_beam()
        kwargs.setdefault("inference_fn", serve_chunks)
        kwargs.setdefault("max_batch_size", 8)  # chunks per request
        super().__init__(model_uri, **kwargs)

    def load_model(self):
        import tensorflow as tf

        return tf.saved_model.load(self._model_uri)

    def get_num_bytes(self, batch):
        return sum(np.asarray(f).nbytes for f, _ in batch)

    def get_metrics_namespace(self):
        return "neuronedit_study"


@dataclass(frozen=True)
class Job:
    """One file to correct: where it is, its batch, where its corrected copy goes."""

    path: str
    batch: str
    destination: str
    format: str | None
    out_format: str
    note: str


def exported_study(export):
    """The export's ``assets/neuronedit.json`` (a study's), checked."""
    where = Path(export)
    if not (where / "saved_model.pb").exists():
        raise NeuronEditError(f"{export} is not an exported SavedModel (no saved_model.pb); "
                              "export the study first: neuronedit export --model STUDY --out "
                              f"{export}.")
    try:
        metadata = json.loads((where / "assets" / "neuronedit.json").read_text())
    except (OSError, ValueError):
        metadata = {}
    if metadata.get("kind") != "study":
        raise NeuronEditError(f"{export} is not an exported study (its assets/neuronedit.json "
                              "does not say kind 'study'); export a study, not a pair editor.")
    return metadata


def plan(export, files, out_dir, batch=None, format=None, out_format=None):
    """Every file's :class:`Job`, checked before anything runs: each batch known to the
    export, each file holding the export's channels, no two outputs in one place and no
    output over its input.

    Args:
        export: the exported study (a SavedModel folder).
        files: a metadata table (path, DataFrame or :class:`StudyTable`; each file its own
            batch), or a list of files of one ``batch``.
    """
    metadata = exported_study(export)
    if isinstance(files, (str, Path)) or hasattr(files, "columns"):
        files = read_metadata(files)
    if isinstance(files, StudyTable):
        if batch is not None:
            raise NeuronEditError("A metadata table gives each file its batch; drop batch=.")
        entries = [(str(f.path), f.batch, f.output_name) for f in files.files]
        names = [name for _, _, name in entries]
    else:
        if batch is None:
            raise NeuronEditError(f"Say which batch the files belong to (batch=...; the export "
                                  f"knows {metadata['batches']}), or pass a metadata table.")
        entries = [(str(path), str(batch), None) for path in files]
        names = None
    known = list(metadata["batches"])
    unknown = list(dict.fromkeys(b for _, b, _ in entries if b not in known))
    if unknown:
        raise NeuronEditError(f"batch(es) {unknown} are not in the exported study {export}; it "
                              f"knows {known}. Add them (study.add_batch) and export again.")
    columns = metadata.get("columns")
    if columns:
        problems = [f"{Path(p).name} lacks {[c for c in columns if c not in names_]}"
                    for p, _, _ in entries
                    for names_ in [channel_names(p, format)]
                    if names_ is not None and not set(columns) <= set(names_)]
        if problems:
            raise NeuronEditError(f"{len(problems)} file(s) lack the study's channels: "
                                  f"{'; '.join(problems[:20])}. Nothing was written.")
    destinations = output_paths([p for p, _, _ in entries], out_dir, out_format, names)
    editor = metadata.get("editor", {})
    jobs = []
    for (path, name, _), destination in zip(entries, destinations):
        in_format = infer_format(split_dataset(path)[0], format)
        note = correction_note(name, metadata["reference"], columns,
                               f"the exported study {export} on Apache Beam (RunInference)",
                               editor.get("method"), editor.get("transform"))
        jobs.append(Job(path, name, str(destination), format, out_format or in_format, note))
    return jobs


def read_cells(job, columns, chunk_rows=CHUNK_ROWS):
    """A file's cells as ``((destination, chunk number), (features, batch names))``."""
    data = read(job.path, job.format, mmap=False)
    table = select(data, columns, job.path) if columns else as_table(data, job.path)
    values = table.values
    if len(values) == 0:
        raise NeuronEditError(f"{job.path} has no cells.")
    for number, start in enumerate(range(0, len(values), chunk_rows)):
        chunk = values[start:start + chunk_rows]
        yield (job.destination, number), (chunk, np.full(len(chunk), job.batch, dtype=object))


def write_file(item, jobs, columns):
    """Gather one file's corrected chunks and write it (atomically) beside its other
    channels and keywords; returns the written path."""
    destination, chunks = item
    job = jobs[destination]
    edited = np.concatenate([values for _, values in sorted(chunks, key=lambda c: c[0])])
    source_path, dataset = split_dataset(job.path)
    in_format = infer_format(source_path, job.format)
    if in_format == "hdf5":
        dataset = resolve_dataset(source_path, dataset)
    data = read(job.path, job.format, mmap=False)
    result = replace_columns(data, columns, edited)
    write(destination, result, job.out_format, note=job.note,
          dataset=dataset if job.out_format == "hdf5" else None)
    return destination


def correct_files(export, files, out_dir, *, batch=None, format=None, out_format=None,
                  options=None, chunk_rows=CHUNK_ROWS, handler_kwargs=None):
    """Correct study files with the exported study on Apache Beam (``RunInference``).

    Args:
        export: the exported study's SavedModel folder (``study.export(path)``).
        files: a metadata table (``file_name,reference,batch``: every file as its own
            batch), or a list of files of one ``batch``.
        out_dir: the folder of the corrected files.
        batch: the batch of ``files`` when they are a list.
        format, out_format: as ``neuronedit apply --format/--out-format``.
        options: ``apache_beam.options.pipeline_options.PipelineOptions`` (default: the
            DirectRunner).
        chunk_rows: cells per RunInference element.
        handler_kwargs: passed to :class:`StudyModelHandler` (e.g. ``max_batch_size``).

    Returns:
        The written paths, in the files' order.

    Raises:
        NeuronEditError: before the pipeline runs, and nothing written: an export that is
            not a study, a batch it does not know, files without its channels, outputs that
            collide or overwrite an input. The beam extra missing.

    Example:
        >>> correct_files("served/study", "metadata.csv", "normalized")  # doctest: +SKIP
        ['normalized/Gates_PTLG021_Unstim_Control_1.fcs', ...]
    """
    beam = require_beam()
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
    from apache_beam.options.pipeline_options import PipelineOptions

    jobs = plan(export, files, out_dir, batch, format, out_format)
    columns = exported_study(export).get("columns")
    by_destination = {job.destination: job for job in jobs}
    handler = KeyedModelHandler(StudyModelHandler(str(export), **(handler_kwargs or {})))
    options = options if options is not None else PipelineOptions(runner="DirectRunner")
    with beam.Pipeline(options=options) as pipeline:
        _ = (pipeline
             | "files" >> beam.Create(jobs)
             | "cells" >> beam.FlatMap(read_cells, columns, chunk_rows)
             | "correct" >> RunInference(handler)
             | "by file" >> beam.Map(lambda kv: (kv[0][0], (kv[0][1], kv[1].inference)))
             | "gather" >> beam.GroupByKey()
             | "write" >> beam.Map(write_file, by_destination, columns))
    return [job.destination for job in jobs]


def main(argv=None):
    """``python -m neuronedit_tf.beam --export DIR --metadata TABLE --out-dir DIR [Beam
    options]``: :func:`correct_files` as a Beam program (unknown options go to Beam)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m neuronedit_tf.beam",
                                     description=correct_files.__doc__.splitlines()[0])
    parser.add_argument("--export", required=True, help="the exported study (SavedModel)")
    parser.add_argument("--metadata", help="the study's metadata table (each file its batch)")
    parser.add_argument("--batch", help="the batch of FILES (instead of --metadata)")
    parser.add_argument("files", nargs="*")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--format")
    parser.add_argument("--out-format")
    args, beam_args = parser.parse_known_args(argv)
    if bool(args.metadata) == bool(args.files):
        parser.error("give --metadata or FILES with --batch.")
    require_beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    written = correct_files(args.export, args.metadata or args.files, args.out_dir,
                            batch=args.batch, format=args.format, out_format=args.out_format,
                            options=PipelineOptions(beam_args or ["--runner=DirectRunner"]))
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
