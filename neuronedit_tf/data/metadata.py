"""A study's files: cytonormpy's (and CytoNorm's) metadata table.

One row per file, three columns (others, such as cytonormpy's ``sample_ID``, are kept and
ignored)::

    file_name,reference,batch
    Gates_PTLG021_Unstim_Control_1.fcs,ref,1
    Gates_PTLG021_Unstim_Control_2.fcs,other,1
    Gates_PTLG028_Unstim_Control_1.fcs,ref,2
    ...

``file_name`` is a path relative to the table's folder (or absolute), ``reference`` is
``ref`` for an anchor file (the control aliquot run on every batch) and ``other`` for a
sample, and ``batch`` names the batch (plate); batch names are kept as written (``1`` is the
batch ``"1"``). A batch may have several anchor files: they are pooled (their cells
concatenated) into that batch's one anchor, as CytoNorm pools a batch's reference files
before it takes their quantiles. A batch with samples needs at least one anchor file; a
batch with an anchor and no sample is fine.

:func:`read_metadata` checks the table (columns, values, a batch without an anchor, files
listed twice, files that do not exist) and gives a :class:`StudyTable`;
:meth:`StudyTable.check_channels` reads only each file's header (its channel names) and
lists what each file lacks; :meth:`StudyTable.anchors` and :meth:`StudyTable.samples` read
the files for ``NeuronEditor.fit_study``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuronedit_tf.data.fcs import FCSData
from neuronedit_tf.data.formats import channel_names, read, split_dataset
from neuronedit_tf.data.tables import is_anndata, names_of
from neuronedit_tf.errors import NeuronEditError

#: The columns every metadata table needs (cytonormpy's names).
COLUMNS = ("file_name", "reference", "batch")
#: ``reference`` values: an anchor file and a sample file (compared case-insensitively).
ANCHOR, SAMPLE = "ref", "other"


@dataclass(frozen=True)
class StudyFile:
    """One row of a metadata table.

    Attributes:
        path: the file (``file_name`` resolved against the table's folder).
        name: ``file_name`` as written in the table.
        batch: the batch's name.
        anchor: True for an anchor file (``reference == "ref"``), False for a sample.
    """

    path: Path
    name: str
    batch: str
    anchor: bool

    @property
    def output_name(self):
        """Where the file's corrected copy goes under an output folder: ``name`` with its
        subfolders, or the file's own name when ``name`` is absolute or leaves the table's
        folder (``..``)."""
        from pathlib import PurePath

        name = PurePath(split_dataset(self.name)[0])
        if name.is_absolute() or ".." in name.parts:
            return split_dataset(self.path)[0].name
        return str(name)


class StudyTable:
    """A checked metadata table: every file with its batch and role.

    Attributes:
        files: the :class:`StudyFile` rows, in the table's order.
        source: the table's path (None for a DataFrame).
    """

    def __init__(self, files, source=None):
        self.files = list(files)
        self.source = source

    @property
    def batches(self):
        """The batch names, in order of first appearance."""
        return tuple(dict.fromkeys(f.batch for f in self.files))

    def anchor_files(self, batch):
        """The anchor files of ``batch`` (one or more)."""
        return [f for f in self.files if f.batch == batch and f.anchor]

    def sample_files(self, batch):
        """The sample files of ``batch`` (maybe none)."""
        return [f for f in self.files if f.batch == batch and not f.anchor]

    def check_channels(self, format=None):
        """Read each file's channel names (its header only) and refuse files that differ.

        Returns:
            The channels of the first file, in its order (None if the files have no names).

        Raises:
            NeuronEditError: files whose channels differ; the message lists what each
                file lacks (reordered channels are fine).
        """
        named = [(f, channel_names(f.path, format)) for f in self.files]
        known = [(f, names) for f, names in named if names is not None]
        union = list(dict.fromkeys(c for _, names in known for c in names))
        lacking = [(f.name, [c for c in union if c not in names]) for f, names in known]
        lacking = [(name, missing) for name, missing in lacking if missing]
        if lacking:
            listed = "; ".join(f"{name} lacks {missing}" for name, missing in lacking[:20])
            more = f" (and {len(lacking) - 20} more files)" if len(lacking) > 20 else ""
            raise NeuronEditError(
                f"The study's files differ in their channels: {listed}{more}. Every file of a "
                "study needs the same channels (their order may differ); rename or drop "
                "channels so that they agree.")
        return known[0][1] if known else None

    def anchors(self, format=None):
        """``{batch: anchor}``: each batch's anchor file read, several pooled into one."""
        return {b: pool([read(f.path, format) for f in self.anchor_files(b)],
                        [f.name for f in self.anchor_files(b)])
                for b in self.batches}

    def samples(self, format=None):
        """``{batch: [sample, ...]}``: the sample files read, for the batches that have any."""
        return {b: [read(f.path, format) for f in self.sample_files(b)]
                for b in self.batches if self.sample_files(b)}

    def __repr__(self):
        anchors = sum(f.anchor for f in self.files)
        return (f"StudyTable({len(self.files)} files: {anchors} anchors, "
                f"{len(self.files) - anchors} samples; batches {list(self.batches)})")


def read_metadata(table, root=None, check_files=True):
    """Read and check a study's metadata table (cytonormpy's ``file_name,reference,batch``).

    Args:
        table: a CSV file (``.tsv``/``.txt``: tab-separated), or a pandas DataFrame.
        root: the folder ``file_name`` is relative to (default: the table's folder; for
            a DataFrame, the working directory).
        check_files: refuse files that do not exist (all of them are listed).

    Returns:
        A :class:`StudyTable`.

    Raises:
        NeuronEditError: a missing column, an empty table or cell, a ``reference`` that is
            neither ``ref`` nor ``other``, a batch with samples but no anchor, a file listed
            twice, files that do not exist.

    Example:
        >>> import pandas as pd
        >>> study = read_metadata(pd.DataFrame({
        ...     "file_name": ["p1_ctrl.fcs", "p1_a.fcs", "p2_ctrl.fcs", "p2_a.fcs"],
        ...     "reference": ["ref", "other", "ref", "other"],
        ...     "batch": [1, 1, 2, 2]}), check_files=False)
        >>> study.batches, [f.name for f in study.anchor_files("2")]
        (('1', '2'), ['p2_ctrl.fcs'])
    """
    frame, source = _frame(table)
    where = str(source) if source is not None else "the metadata table"
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise NeuronEditError(
            f"{where} has no column(s) {missing}; it has {list(frame.columns)}. A study's "
            "metadata table needs file_name (the file, relative to the table's folder), "
            "reference ('ref' for an anchor file, 'other' for a sample) and batch.")
    if len(frame) == 0:
        raise NeuronEditError(f"{where} lists no files; give one row per file.")
    base = Path(root) if root is not None else (source.parent if source is not None
                                                 else Path.cwd())
    line = {i: i + 2 for i in range(len(frame))}  # the header is line 1
    blank = [f"line {line[i]} ({c})" for c in COLUMNS
             for i, value in enumerate(frame[c]) if value == ""]
    if blank:
        raise NeuronEditError(f"{where} has empty cells: {', '.join(blank[:10])}; every row "
                              "needs a file_name, a reference and a batch.")
    roles = [value.lower() for value in frame["reference"]]
    unknown = [f"line {line[i]}: {frame['reference'].iloc[i]!r}" for i, role in enumerate(roles)
               if role not in (ANCHOR, SAMPLE)]
    if unknown:
        raise NeuronEditError(
            f"{where} has reference values other than {ANCHOR!r} and {SAMPLE!r}: "
            f"{', '.join(unknown[:10])}. Write {ANCHOR!r} for an anchor file (the control "
            f"run on every batch) and {SAMPLE!r} for a sample.")
    files = [StudyFile(_resolve(name, base), name, batch, role == ANCHOR)
             for name, batch, role in zip(frame["file_name"], frame["batch"], roles)]
    paths = [os.path.normcase(os.path.abspath(f.path)) for f in files]
    repeated = sorted({f.name for f, p in zip(files, paths) if paths.count(p) > 1})
    if repeated:
        raise NeuronEditError(f"{where} lists file(s) {repeated} more than once; each file "
                              "belongs to one batch, as an anchor or a sample.")
    batches = list(dict.fromkeys(f.batch for f in files))
    orphans = [b for b in batches if not any(f.anchor for f in files if f.batch == b)]
    if orphans:
        raise NeuronEditError(
            f"{where}: batch(es) {orphans} have samples but no anchor file (reference "
            f"{ANCHOR!r}); every batch needs its anchor, the control sample run on it. Add "
            "its anchor file or drop that batch's rows.")
    if check_files:
        absent = [f.name for f in files if not f.path.is_file()]
        if absent:
            raise NeuronEditError(
                f"{len(absent)} file(s) of {where} do not exist (paths are relative to "
                f"{base}): {absent[:20]}{' ...' if len(absent) > 20 else ''}.")
    return StudyTable(files, source)


def _frame(table):
    """The table as a DataFrame of stripped strings, and its path (or None)."""
    import pandas as pd

    if hasattr(table, "columns") and hasattr(table, "iloc"):
        frame, source = table.copy(), None
        frame.columns = [str(c).strip() for c in frame.columns]
        frame = frame.astype(object).where(frame.notna(), "")
    else:
        source = Path(table)
        if not source.is_file():
            raise NeuronEditError(f"No such metadata table: {source}.")
        separator = "\t" if source.suffix.lower() in (".tsv", ".tab", ".txt") else ","
        try:
            frame = pd.read_csv(source, sep=separator, dtype=str, keep_default_na=False,
                                encoding="utf-8-sig", skipinitialspace=True)
        except (ValueError, UnicodeDecodeError) as error:
            raise NeuronEditError(f"{source} is not a readable CSV table ({error}); a study's "
                                  "metadata is a CSV file with a header row.") from None
        frame.columns = [str(c).strip() for c in frame.columns]
    for column in COLUMNS:
        if column in frame.columns:
            frame[column] = [_text(v) for v in frame[column]]
    return frame, source


def _text(value):
    """A cell as text: integers (also ``1.0`` from a numeric column) as their digits."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return str(value).strip()


def _resolve(name, base):
    path = Path(name).expanduser()
    return path if path.is_absolute() else base / path


def pool(parts, labels=None):
    """Several tables of one kind pooled into one: the rows of each, the first one's
    columns (the others matched by name, any order). One part comes back as it is.

    FCS data keep the first file's channels, markers and keywords; DataFrames and AnnData
    give a DataFrame; unnamed arrays are stacked (same width).

    Example:
        >>> import pandas as pd
        >>> pool([pd.DataFrame({"a": [1.0], "b": [2.0]}), pd.DataFrame({"b": [4.0], "a": [3.0]})])
             a    b
        0  1.0  2.0
        1  3.0  4.0
    """
    import pandas as pd

    parts = list(parts)
    labels = list(labels) if labels is not None else [f"part {i}" for i in range(len(parts))]
    if len(parts) == 1:
        return parts[0]
    names = [names_of(p) for p in parts]
    if any(n is None for n in names):
        if not all(n is None for n in names):
            raise NeuronEditError(f"Cannot pool named and unnamed data ({labels}).")
        widths = {np.shape(p)[1] for p in parts}
        if len(widths) != 1:
            raise NeuronEditError(f"Cannot pool {labels}: their widths differ ({widths}).")
        return np.concatenate([np.asarray(p, np.float32) for p in parts])
    first = names[0]
    for label, n in zip(labels[1:], names[1:]):
        if sorted(n) != sorted(first):
            raise NeuronEditError(
                f"{label} and {labels[0]} differ in their channels: {label} lacks "
                f"{[c for c in first if c not in n]}, {labels[0]} lacks "
                f"{[c for c in n if c not in first]}; pooled files need the same channels.")
    if all(isinstance(p, FCSData) for p in parts):
        values = np.concatenate([np.asarray(p.values if p.channels == first else
                                            p.select(first).values, np.float32) for p in parts])
        head = parts[0]
        return FCSData(values, list(first), list(head.markers), dict(head.text))
    frames = []
    for p in parts:
        if isinstance(p, FCSData):
            frame = p.to_frame()
        elif is_anndata(p):
            from neuronedit_tf.data.annotated import dense_matrix

            frame = pd.DataFrame(dense_matrix(p), columns=[str(c) for c in p.var_names])
        else:
            frame = p
        frames.append(frame[first])
    return pd.concat(frames, ignore_index=True)
