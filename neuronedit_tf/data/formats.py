"""Read and write every supported format with one call; the format comes from the extension.

=========  ===========================  ====================================  ==========================
format     extensions                   read gives                            names / metadata kept
=========  ===========================  ====================================  ==========================
fcs        .fcs .lmd                    :class:`~neuronedit_tf.data.FCSData`  $PnN, $PnS, all keywords
csv, tsv   .csv / .tsv .tab .txt        pandas DataFrame                      header
parquet    .parquet .pq                 pandas DataFrame                      columns, index, a note
npy        .npy                         ndarray (memory-mapped)               none
npz        .npz                         ndarray or DataFrame                  ``columns`` array
hdf5       .h5 .hdf5 .hdf               ndarray or DataFrame                  ``columns`` attribute
h5ad       .h5ad                        anndata.AnnData                       obs/var, layers, uns
=========  ===========================  ====================================  ==========================

HDF5 and NPZ hold several arrays: name one as ``"cells.h5:/group/events"`` or
``dataset="/group/events"`` (a file with one array needs neither). Writes are
atomic (a temporary file renamed into place), so an error or Ctrl-C never
leaves a partial file. A file whose content is another format than its
extension says is refused with a message naming the format it looks like. An
HDF5/h5ad file is first opened in a child process (:mod:`~neuronedit_tf.data.hdf5check`),
so a damaged one that crashes or hangs the HDF5 library is refused instead of
killing or hanging this one.

Parquet needs ``pyarrow`` and h5ad needs ``anndata`` (optional extras).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from neuronedit_tf.data.annotated import (dense_matrix, from_table, read_h5ad, require_anndata,
                                           write_h5ad)
from neuronedit_tf.data.atomic import atomic_path
from neuronedit_tf.data.fcs import FCSData, read_fcs, write_fcs
from neuronedit_tf.data.hdf5check import check_hdf5
from neuronedit_tf.data.tables import Table, as_table, is_anndata, names_of
from neuronedit_tf.errors import NeuronEditError, foreign_errors
from neuronedit_tf.validation import check_unique

EXTENSIONS = {
    ".fcs": "fcs", ".lmd": "fcs", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv",
    ".parquet": "parquet", ".pq": "parquet", ".npy": "npy", ".npz": "npz",
    ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5", ".h5ad": "h5ad",
}
FORMATS = ("fcs", "csv", "tsv", "parquet", "npy", "npz", "hdf5", "h5ad")
#: Leading bytes of each binary format (CSV/TSV have none).
_MAGIC = {
    b"FCS": "fcs", b"\x89HDF\r\n\x1a\n": "hdf5", b"\x93NUMPY": "npy",
    b"PK\x03\x04": "npz", b"PK\x05\x06": "npz", b"PAR1": "parquet",
}
#: Formats that share a container (an .h5ad file is an HDF5 file).
_CONTAINER = {"h5ad": "hdf5"}
_DEFAULT_DATASET = "data"


def split_dataset(path, dataset=None):
    """``("cells.h5", "/events")`` from ``"cells.h5:/events"``; an explicit ``dataset`` wins.

    Only HDF5 and NPZ paths are split (so ``C:\\data.csv`` stays whole).
    """
    text = os.fspath(path)
    head, sep, tail = text.rpartition(":")
    if sep and Path(head).suffix.lower() in (".h5", ".hdf5", ".hdf", ".npz") and tail:
        return Path(head), dataset if dataset is not None else tail
    return Path(text), dataset


def infer_format(path, format=None) -> str:
    """The format name for ``path``: ``format`` if given, else from the extension."""
    if format is not None:
        if format not in FORMATS:
            raise NeuronEditError(f"Unknown format {format!r}; choose one of {FORMATS}.")
        return format
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        raise NeuronEditError(
            f"Cannot tell the format of {path} from its extension {suffix!r}; use one of "
            f"{sorted(EXTENSIONS)} or pass format= (one of {FORMATS})."
        )
    return EXTENSIONS[suffix]


def sniff(path):
    """The binary format ``path``'s first bytes announce, or None (text or unknown)."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def _check_content(path, format, dataset=None):
    """Refuse a missing, empty or mislabelled file, and an HDF5 file that crashes or hangs HDF5."""
    if not path.exists():
        raise NeuronEditError(f"No such file: {path}.")
    if path.is_dir():
        raise NeuronEditError(f"{path} is a folder, not a data file.")
    if path.stat().st_size == 0:
        raise NeuronEditError(f"{path} is empty (0 bytes).")
    found = sniff(path)
    expected = _CONTAINER.get(format, format)
    if found is not None and found != expected:
        raise NeuronEditError(
            f"{path} looks like a {found.upper()} file, not {format.upper()} as its name says; "
            f"rename it or pass format={found!r}."
        )
    if found is None and format not in ("csv", "tsv"):
        raise NeuronEditError(
            f"{path} is not a {format.upper()} file (its first bytes are not a {format.upper()} "
            "signature); check that the file is complete and of the right kind."
        )
    if found == "hdf5":
        check_hdf5(path, dataset if format == "hdf5" else None)


def read(path, format=None, *, dataset=None, mmap=True):
    """Read a data file in its natural in-memory form (see the module's table).

    Args:
        path: the file; HDF5/NPZ may name an array as ``"file.h5:/group/array"``.
        format: override the extension (one of :data:`FORMATS`).
        dataset: the HDF5 dataset / NPZ array to read, or the number (from 0) of
            the data set in an FCS file that holds several (default the first).
        mmap: memory-map ``.npy`` files (read-only) instead of loading them.

    Returns:
        FCSData, DataFrame, ndarray or AnnData.

    Raises:
        NeuronEditError: a missing, empty, truncated, corrupt or mislabelled
            file, a missing dataset, or duplicate column names.

    Example:
        >>> import numpy as np, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
        >>> write(path, np.eye(3, dtype="float32"))  # doctest: +ELLIPSIS
        PosixPath('...x.npy')
        >>> read(path).shape
        (3, 3)
    """
    path, dataset = split_dataset(path, dataset)
    format = infer_format(path, format)
    _check_content(path, format, dataset)
    reader = _READERS[format]
    with foreign_errors(f"{path} is not a readable {format.upper()} file ({{kind}}: {{error}}). "
                        "Check that it is complete and of the right kind."):
        return reader(path, dataset=dataset, mmap=mmap)


def read_table(path, format=None, *, dataset=None):
    """Read a file of any :data:`FORMATS` into a checked :class:`~neuronedit_tf.data.tables.Table`.

    Raises:
        NeuronEditError: the file cannot be read (see :func:`read`), or its
            content is not a valid table (see :func:`~neuronedit_tf.data.tables.as_table`).
    """
    return as_table(read(path, format, dataset=dataset), name=str(path))


def channel_names(path, format=None, *, dataset=None):
    """A data file's channel (column) names, read from its header where the format has one
    (FCS TEXT, a CSV/TSV header row, the Parquet schema, h5ad ``var_names``), or None for a
    file without names (NPY, unnamed arrays).

    Raises:
        NeuronEditError: the file is missing, empty, mislabelled or unreadable.

    Example:
        >>> import pandas as pd, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x.csv")
        >>> _ = write(path, pd.DataFrame({"CD3": [1.0], "CD4": [2.0]}))
        >>> channel_names(path)
        ['CD3', 'CD4']
    """
    path, dataset = split_dataset(path, dataset)
    format = infer_format(path, format)
    _check_content(path, format, dataset)
    with foreign_errors(f"{path} is not a readable {format.upper()} file ({{kind}}: {{error}}). "
                        "Check that it is complete and of the right kind."):
        if format == "fcs" and dataset is None:
            import flowio

            try:
                flow = flowio.FlowData(os.fspath(path), only_text=True)
            except Exception:  # an odd file: the full reader knows its workarounds
                return list(read_fcs(path).channels)
            return [str(flow.channels[k]["pnn"]) for k in sorted(flow.channels, key=int)]
        if format in ("csv", "tsv"):
            import csv

            separator = "," if format == "csv" else "\t"
            _check_header(path, separator)
            with open(path, newline="", encoding="utf-8-sig") as handle:
                return [c.strip() for c in next(csv.reader(handle, delimiter=separator))]
        if format == "parquet":
            _require_pyarrow()
            import pyarrow.parquet as pq

            return [str(c) for c in pq.read_schema(path).names if not c.startswith("__")]
        if format == "h5ad":
            anndata = require_anndata()
            adata = anndata.read_h5ad(path, backed="r")
            try:
                return [str(c) for c in adata.var_names]
            finally:
                adata.file.close()
        if format == "npy":
            return None
        if format == "hdf5":
            import h5py

            key = resolve_dataset(path, dataset)
            with h5py.File(path, "r") as handle:
                columns = handle[key].attrs.get("columns")
            if columns is None:
                return None
            return [c.decode() if isinstance(c, bytes) else str(c) for c in np.atleast_1d(columns)]
        return names_of(read(path, format, dataset=dataset))


def _read_fcs(path, dataset=None, **_):
    return read_fcs(path, dataset=dataset)


def _check_header(path, separator):
    """Refuse a missing header or repeated column names (pandas would rename a repeat "a.1")."""
    import csv

    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle, delimiter=separator), None)
    if not header:
        raise NeuronEditError(f"{path} has no header row of column names.")
    check_unique(header, str(path))


def _read_text(path, separator):
    import pandas as pd

    _check_header(path, separator)
    return pd.read_csv(path, sep=separator, encoding="utf-8-sig")


def _read_csv(path, **_):
    return _read_text(path, ",")


def _read_tsv(path, **_):
    return _read_text(path, "\t")


def _require_pyarrow():
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise NeuronEditError(
            'Parquet needs the pyarrow package: pip install "neuronedit_tf[parquet]".'
        ) from None


def _read_parquet(path, **_):
    import pandas as pd

    _require_pyarrow()
    import pyarrow.parquet as pq

    check_unique(pq.read_schema(path).names, str(path))
    return pd.read_parquet(path, engine="pyarrow")


def _read_npy(path, mmap=True, **_):
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def _read_npz(path, dataset=None, **_):
    import pandas as pd

    with np.load(path, allow_pickle=False) as archive:
        keys = list(archive.keys())
        if dataset is not None:
            if dataset not in keys:
                raise NeuronEditError(f"{path} has no array {dataset!r}; it has {keys}.")
            return archive[dataset]
        if sorted(keys) == ["columns", "values"]:  # written by write(): values with names
            columns = check_unique(archive["columns"].tolist(), str(path))
            return pd.DataFrame(archive["values"], columns=columns)
        if len(keys) != 1:
            raise NeuronEditError(
                f"{path} holds several arrays {keys}; choose one with dataset=... "
                f"or {path}:NAME."
            )
        return archive[keys[0]]


def _hdf5_datasets(handle):
    import h5py

    found = []
    handle.visititems(lambda name, item: found.append("/" + name)
                      if isinstance(item, h5py.Dataset) else None)
    return found


def resolve_dataset(path, dataset=None):
    """The dataset to use in HDF5 file ``path``: ``dataset``, else its only dataset.

    Raises:
        NeuronEditError: the dataset does not exist (the message lists those
            that do), there are several and none was named, or the file is damaged.
    """
    import h5py

    path, dataset = split_dataset(path, dataset)
    check_hdf5(path, dataset)
    with h5py.File(path, "r") as handle:
        available = _hdf5_datasets(handle)
        if dataset is None:
            if len(available) != 1:
                raise NeuronEditError(
                    f"{path} holds {len(available)} datasets {available}; name one as "
                    f"dataset=... or {path}:/PATH."
                )
            return available[0]
        key = "/" + dataset.lstrip("/")
        if key not in available:
            raise NeuronEditError(
                f"{path} has no dataset {key!r}; its datasets are {available}."
            )
        return key


def _read_hdf5(path, dataset=None, **_):
    import h5py
    import pandas as pd

    key = resolve_dataset(path, dataset)
    with h5py.File(path, "r") as handle:
        values = handle[key][()]
        columns = handle[key].attrs.get("columns")
    if columns is None:
        return values
    columns = [c.decode() if isinstance(c, bytes) else str(c) for c in np.atleast_1d(columns)]
    return pd.DataFrame(values, columns=check_unique(columns, f"{path}:{key}"))


def _read_h5ad(path, **_):
    return read_h5ad(path)


_READERS = {
    "fcs": _read_fcs, "csv": _read_csv, "tsv": _read_tsv, "parquet": _read_parquet,
    "npy": _read_npy, "npz": _read_npz, "hdf5": _read_hdf5, "h5ad": _read_h5ad,
}


# --------------------------------------------------------------------------- writing
def _as_frame(data):
    """``data`` as a DataFrame (column names kept; arrays get 0..d-1)."""
    import pandas as pd

    if isinstance(data, FCSData):
        return data.to_frame()
    if is_anndata(data):
        return pd.DataFrame(dense_matrix(data), columns=[str(c) for c in data.var_names],
                            index=[str(i) for i in data.obs_names])
    if isinstance(data, Table):
        return pd.DataFrame(data.values, columns=data.columns, index=data.index)
    if hasattr(data, "to_numpy") and hasattr(data, "columns"):
        return data
    values = np.asarray(data)
    if values.ndim != 2:
        raise NeuronEditError(f"Only 2-D tables can be written; got shape {values.shape}.")
    return pd.DataFrame(values)


def _names_and_values(data):
    """``(names or None, 2-D values)`` of anything writable."""
    if isinstance(data, FCSData):
        return list(data.channels), np.asarray(data.values)
    if isinstance(data, Table):
        return data.columns, data.values
    if is_anndata(data):
        return [str(c) for c in data.var_names], dense_matrix(data)
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):
        return [str(c) for c in data.columns], data.to_numpy()
    values = np.asarray(data)
    if values.ndim != 2:
        raise NeuronEditError(f"Only 2-D tables can be written; got shape {values.shape}.")
    return None, values


def write(path, data, format=None, *, dataset=None, note=None):
    """Write ``data`` atomically in the format of ``path`` (or ``format``).

    Args:
        path: the destination (its folder is created); ``"file.h5:/group/array"``
            names the HDF5 dataset.
        data: FCSData, DataFrame, AnnData, Table or 2-D array. Converted as
            needed: a DataFrame written as FCS gets its columns as $PnN; an
            array written as FCS or h5ad needs names, so pass a DataFrame.
        format: override the extension (one of :data:`FORMATS`).
        dataset: the HDF5 dataset to write (default ``/data``). If ``path``
            exists, the new file is a copy of it with that dataset replaced.
        note: what was done, kept where the format has room for it: FCS
            ``$COM``, h5ad ``uns["history"]``, an HDF5 attribute, Parquet
            metadata (CSV, TSV, NPY and NPZ have no place for it).

    Returns:
        The written path.
    """
    path, dataset = split_dataset(path, dataset)
    format = infer_format(path, format)
    try:
        _WRITERS[format](path, data, dataset=dataset, note=note)
    except NeuronEditError:
        raise
    except Exception as error:  # nothing was left behind: every writer is atomic
        raise NeuronEditError(
            f"Could not write {path} as {format.upper()} ({type(error).__name__}: {error})."
        ) from None
    return path


def _write_fcs(path, data, note=None, **_):
    if not isinstance(data, FCSData):
        names, _values = _names_and_values(data)
        if names is None:
            raise NeuronEditError(
                "An FCS file needs channel names; pass a DataFrame (columns become $PnN)."
            )
        markers = None
        if is_anndata(data) and "marker" in data.var:
            markers = [str(m) for m in data.var["marker"]]
        data = FCSData.from_frame(_as_frame(data), markers=markers)
    write_fcs(path, data, note=note)


def _write_text(path, data, separator):
    frame = _as_frame(data)
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False, sep=separator)


def _write_csv(path, data, **_):
    _write_text(path, data, ",")


def _write_tsv(path, data, **_):
    _write_text(path, data, "\t")


def _write_parquet(path, data, note=None, **_):
    _require_pyarrow()
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = _as_frame(data)
    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    table = pa.Table.from_pandas(frame)
    if note:
        metadata = dict(table.schema.metadata or {})
        metadata[b"neuronedit"] = note.encode()
        table = table.replace_schema_metadata(metadata)
    with atomic_path(path) as temporary:
        pq.write_table(table, temporary)


def _write_npy(path, data, **_):
    _names, values = _names_and_values(data)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:  # a handle: np.save would append ".npy"
            np.save(handle, np.asarray(values), allow_pickle=False)


def _write_npz(path, data, **_):
    names, values = _names_and_values(data)
    arrays = {"values": np.asarray(values)}
    if names is not None:
        arrays["columns"] = np.asarray(names, dtype=str)  # a unicode array: no pickle needed
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)


def _write_hdf5(path, data, dataset=None, note=None, **_):
    import h5py

    names, values = _names_and_values(data)
    key = "/" + (dataset or _DEFAULT_DATASET).lstrip("/")
    with atomic_path(path) as temporary:
        if path.exists():  # keep the file's other datasets; replace only this one
            shutil.copyfile(path, temporary)
        with h5py.File(temporary, "a") as handle:
            if key in handle:
                del handle[key]
            written = handle.create_dataset(key, data=np.asarray(values))
            if names is not None:
                written.attrs["columns"] = np.asarray(names, dtype=h5py.string_dtype())
            if note:
                written.attrs["neuronedit"] = note
    return path


def _write_h5ad(path, data, note=None, **_):
    if not is_anndata(data):
        names, values = _names_and_values(data)
        frame = _as_frame(data)
        if names is None:
            raise NeuronEditError(
                "An h5ad file needs feature names; pass a DataFrame or an AnnData."
            )
        adata = from_table(values, names, frame.index)
        if isinstance(data, FCSData):
            adata.var["marker"] = list(data.markers)
        data = adata
    write_h5ad(path, data, note=note)


_WRITERS = {
    "fcs": _write_fcs, "csv": _write_csv, "tsv": _write_tsv, "parquet": _write_parquet,
    "npy": _write_npy, "npz": _write_npz, "hdf5": _write_hdf5, "h5ad": _write_h5ad,
}


def output_paths(files, out_dir, out_format=None, names=None):
    """Where each input's edited copy goes: ``out_dir / name`` (``names``: each one's path
    under ``out_dir``, default the input's file name), with ``out_format``'s extension if
    given.

    Raises:
        NeuronEditError: an unknown ``out_format``, two inputs that would be written to the
            same file, or an output that would overwrite its input.

    Example:
        >>> [str(p) for p in output_paths(["a/x.fcs", "b/y.fcs"], "out", "csv")]
        ['out/x.csv', 'out/y.csv']
    """
    suffix = {"hdf5": ".h5", "tsv": ".tsv"}.get(out_format, f".{out_format}") if out_format else None
    if out_format is not None and out_format not in FORMATS:
        raise NeuronEditError(f"Unknown --out-format {out_format!r}; choose one of {FORMATS}.")
    inputs = [split_dataset(f)[0] for f in files]
    relative = [Path(n) for n in names] if names else [Path(p.name) for p in inputs]
    destinations = [Path(out_dir) / (r.with_suffix(suffix) if suffix else r) for r in relative]
    written = [str(d.relative_to(out_dir)) for d in destinations]
    repeated = sorted({n for n in written if written.count(n) > 1})
    if repeated:
        raise NeuronEditError(
            f"Several inputs would be written to the same file(s) {repeated} in {out_dir}; "
            "rename them or edit them in separate runs."
        )
    for source, destination in zip(inputs, destinations):
        if destination.resolve() == source.resolve():
            raise NeuronEditError(
                f"{destination} would overwrite its input; choose another --out-dir "
                "(inputs are never modified)."
            )
    return destinations


# --------------------------------------------------------------------------- chunks
def iter_chunks(path, chunk_size=65536, format=None, *, dataset=None):
    """Yield a file's rows as checked :class:`~neuronedit_tf.data.tables.Table` chunks.

    CSV/TSV, Parquet, NPY (memory-mapped), HDF5 and h5ad (backed) are read
    ``chunk_size`` rows at a time; FCS and NPZ are read whole and then sliced
    (their libraries have no partial reads). Each chunk is validated like any
    input (finite numbers, unique names).

    Example:
        >>> import numpy as np, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
        >>> _ = write(path, np.ones((10, 2), "float32"))
        >>> [len(chunk) for chunk in iter_chunks(path, chunk_size=4)]
        [4, 4, 2]
    """
    with foreign_errors(f"{path} is not a readable file ({{kind}}: {{error}}). "
                        "Check that it is complete and of the right kind."):
        yield from _iter_chunks(path, chunk_size, format, dataset)


def _iter_chunks(path, chunk_size, format, dataset):
    if int(chunk_size) < 1:
        raise NeuronEditError(f"chunk_size must be a positive integer; got {chunk_size}.")
    chunk_size = int(chunk_size)
    path, dataset = split_dataset(path, dataset)
    format = infer_format(path, format)
    _check_content(path, format, dataset)
    label = str(path)
    if format in ("csv", "tsv"):
        import pandas as pd

        separator = "," if format == "csv" else "\t"
        _check_header(path, separator)
        with pd.read_csv(path, sep=separator, chunksize=chunk_size,
                         encoding="utf-8-sig") as reader:
            for frame in reader:
                yield as_table(frame, label)
        return
    if format == "parquet":
        _require_pyarrow()
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        check_unique(parquet.schema_arrow.names, label)
        for batch in parquet.iter_batches(batch_size=chunk_size):
            yield as_table(batch.to_pandas(), label)
        return
    if format == "hdf5":
        import h5py

        key = resolve_dataset(path, dataset)
        with h5py.File(path, "r") as handle:
            source = handle[key]
            columns = source.attrs.get("columns")
            if columns is not None:
                columns = check_unique(
                    [c.decode() if isinstance(c, bytes) else str(c) for c in columns], label)
            for start in range(0, source.shape[0], chunk_size):
                yield as_table(Table(source[start:start + chunk_size], columns), label)
        return
    if format == "h5ad":
        anndata = require_anndata()
        adata = anndata.read_h5ad(path, backed="r")
        try:
            columns = check_unique(adata.var_names, label)
            for start in range(0, adata.n_obs, chunk_size):
                part = adata[start:start + chunk_size]
                yield as_table(Table(dense_matrix(part), columns, part.obs_names), label)
        finally:
            adata.file.close()
        return
    whole = read_table(path, format, dataset=dataset)
    for start in range(0, len(whole), chunk_size):
        index = None if whole.index is None else whole.index[start:start + chunk_size]
        yield Table(whole.values[start:start + chunk_size], whole.columns, index)
