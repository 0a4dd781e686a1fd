"""FCS files through ``flowio``: channels by $PnN, marker names from $PnS, keywords kept.

Reading gives an :class:`FCSData` (events as stored, every TEXT keyword);
writing puts every keyword back except the ones that describe the file's own
layout (offsets, byte order, data type, bits per value), which the writer
derives from the data. Per-channel keywords ($PnR, $PnG, $PnV, ...,
``flowCore_$PnRmax``) follow their channel when channels are selected or
reordered. A note about the edit is appended to ``$COM`` (the history).
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from neuronedit_tf.data.atomic import atomic_path
from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.validation import float32_values, numeric_frame

#: Keywords that describe the file layout; the writer sets them from the data.
_LAYOUT = frozenset({
    "beginanalysis", "endanalysis", "begindata", "enddata", "beginstext", "endstext",
    "byteord", "datatype", "mode", "nextdata", "par", "tot",
})
#: Per-channel keywords the writer rebuilds: bits ($PnB), amplification ($PnE, 0,0 for
#: float data), name ($PnN, from ``channels``) and marker ($PnS, from ``markers``).
_CHANNEL_REBUILT = frozenset({"b", "e", "n", "s"})
#: A per-channel keyword: ``p12r``, ``p2display``, ``flowcore_p10rmax`` (flowio lower-cases
#: keywords and drops the leading ``$``).
_CHANNEL_KEYWORD = re.compile(r"^(?P<prefix>(?:flowcore_)?p)(?P<number>\d+)(?P<suffix>[a-z][a-z _]*)$")


def _channel_keyword(key):
    """``(prefix, channel number, suffix)`` of a per-channel keyword, or None."""
    match = _CHANNEL_KEYWORD.match(key.lower())
    if match is None:
        return None
    return match["prefix"], int(match["number"]), match["suffix"]


@dataclass
class FCSData:
    """Events of one FCS file.

    Attributes:
        values: ``(events, channels)`` float32, as stored (linear scale).
        channels: $PnN of each channel (detector names, e.g. ``"Nd142Di"``).
        markers: $PnS of each channel (e.g. ``"CD19"``; ``""`` when absent).
        text: the TEXT segment's keywords (lower-case, without ``$``, as flowio gives them).

    Example:
        >>> import numpy as np
        >>> data = FCSData(np.ones((2, 2), "float32"), ["FSC-A", "CD3"], ["", "CD3 FITC"])
        >>> data.select(["CD3"]).values.shape
        (2, 1)
    """

    values: np.ndarray
    channels: list[str]
    markers: list[str]
    text: dict = field(default_factory=dict)

    def select(self, channels):
        """A copy with only ``channels`` (by $PnN), in that order; per-channel keywords follow."""
        missing = [c for c in channels if c not in self.channels]
        if missing:
            raise NeuronEditError(
                f"Channels not in the file: {missing}. The file has: {self.channels}."
            )
        index = [self.channels.index(c) for c in channels]
        renumber = {old + 1: new + 1 for new, old in enumerate(index)}
        text = {}
        for key, value in self.text.items():
            parts = _channel_keyword(key)
            if parts is None:
                text[key] = value
            elif parts[1] in renumber:
                text[f"{parts[0]}{renumber[parts[1]]}{parts[2]}"] = value
        return FCSData(
            self.values[:, index], list(channels), [self.markers[i] for i in index], text,
        )

    def with_values(self, values):
        """A copy with new ``(events, channels)`` values; channels, markers and keywords kept."""
        values = np.asarray(values, np.float32)
        if values.ndim != 2 or values.shape[1] != len(self.channels):
            raise NeuronEditError(
                f"New values have shape {values.shape}; expected (events, {len(self.channels)})."
            )
        return FCSData(values, list(self.channels), list(self.markers), dict(self.text))

    def to_frame(self):
        """A pandas DataFrame with one column per channel ($PnN)."""
        import pandas as pd

        return pd.DataFrame(self.values, columns=self.channels)

    @classmethod
    def from_frame(cls, frame, markers=None, text=None):
        """An FCSData from a DataFrame: columns become $PnN, ``markers`` the $PnS."""
        values, names = frame, None
        if hasattr(frame, "dtypes"):
            values, names = numeric_frame(frame, "data")
        values = float32_values(values, "data", names)
        names = names or [f"P{i + 1}" for i in range(values.shape[1])]
        markers = list(markers) if markers is not None else [""] * len(names)
        return cls(values, list(names), markers, dict(text or {}))


class FCSWarning(UserWarning):
    """An FCS file breaks the standard in a way the reader works around; the message says how."""


def read_fcs(source, dataset=None) -> FCSData:
    """Read an FCS 2.0/3.0/3.1 file (a path or its bytes).

    flowio parses the HEADER and TEXT; the DATA segment is decoded here (integers of
    any whole-byte width, masked to $PnR as the standard says; 32/64-bit floats), so
    files flowio refuses are read like fcsparser reads them. Each oddity worked around
    (blank HEADER offsets, a DATA segment of the wrong size, bits above $PnR, several
    data sets) is an :class:`FCSWarning` naming it.

    Args:
        source: a path, or the file's bytes.
        dataset: which data set of a file that holds several ($NEXTDATA), from 0.
            None reads the first and warns when there are others.

    Raises:
        NeuronEditError: the file is missing, truncated, not FCS, has no such data
            set, or has duplicate channel names.
    """
    label = "<bytes>" if isinstance(source, (bytes, bytearray)) else os.fspath(source)
    name = os.path.basename(label)
    try:
        content, options = _fill_blank_data_offsets(
            source if isinstance(source, (bytes, bytearray)) else label, name)
        offset, flow = _choose_data_set(_data_sets(content, options, name), dataset, name)
        values = _read_events(content, offset, flow, name)
    except FileNotFoundError:
        raise NeuronEditError(f"No such FCS file: {label}.") from None
    except NeuronEditError:
        raise
    except Exception as error:  # flowio raises many types for damaged files
        raise NeuronEditError(
            f"{label} is not a readable FCS file ({type(error).__name__}: {error}). "
            "Check that it is a complete FCS 2.0/3.0/3.1 file."
        ) from None
    order = sorted(flow.channels, key=int)
    channels = [flow.channels[k]["pnn"] for k in order]
    markers = [flow.channels[k].get("pns", "") or "" for k in order]
    duplicates = sorted({c for c in channels if channels.count(c) > 1})
    if duplicates:
        raise NeuronEditError(
            f"{label} has duplicate channel names ($PnN): {duplicates}. Rename them in the "
            "acquisition software or with flowio so that every channel has one name."
        )
    return FCSData(values, channels, markers, dict(flow.text))


def _flow_text(content, offset, options):
    """flowio's HEADER, TEXT and channels of the data set at byte ``offset`` (no DATA)."""
    import flowio

    handle = io.BytesIO(content) if isinstance(content, (bytes, bytearray)) else content
    return flowio.FlowData(handle, only_text=True, nextdata_offset=offset, **options)


def _fill_blank_data_offsets(content, name):
    """``(content, flowio options)``; blank HEADER DATA offsets become 0 (use TEXT's).

    The standard puts 0 there when the DATA segment ends past byte 99,999,999 and the
    TEXT's $BEGINDATA/$ENDDATA hold the offsets; some writers leave blanks instead,
    which flowio cannot parse. Only such files are read into memory to patch them.
    """
    if isinstance(content, (bytes, bytearray)):
        head = bytes(content[:42])
    else:
        with open(content, "rb") as handle:
            head = handle.read(42)
    fields = (head[26:34], head[34:42])
    if len(head) < 42 or all(field.strip() for field in fields):
        return content, {}
    if not isinstance(content, (bytes, bytearray)):
        with open(content, "rb") as handle:
            content = handle.read()
    zeros = b"".join(field if field.strip() else b"0".rjust(8) for field in fields)
    warnings.warn(
        f"{name}: the HEADER's DATA offsets are blank; read them from $BEGINDATA/$ENDDATA "
        "in TEXT (the standard wants 0 there, or the offsets).", FCSWarning, stacklevel=3)
    return bytes(content[:26]) + zeros + bytes(content[42:]), {"ignore_offset_discrepancy": True}


def _data_sets(content, options, name):
    """``[(byte offset, flowio text-only FlowData)]`` of each data set, following $NEXTDATA."""
    found = [(0, _flow_text(content, 0, options))]
    while (step := int(found[-1][1].text.get("nextdata", "0").strip() or 0)) > 0:
        offset = found[-1][0] + step  # $NEXTDATA counts from the current data set's start
        try:
            found.append((offset, _flow_text(content, offset, options)))
        except Exception as error:  # flowio raises many types for damaged files
            raise NeuronEditError(
                f"{name}: data set {len(found)} ($NEXTDATA, byte {offset}) is unreadable "
                f"({type(error).__name__}: {error}). Check that the file is complete."
            ) from None
    return found


def _choose_data_set(data_sets, dataset, name):
    """The ``(offset, flow)`` the user asked for; the first (with a warning) when not told."""
    events = [int(flow.text.get("tot", 0)) for _offset, flow in data_sets]
    if dataset is None:
        if len(data_sets) > 1:
            warnings.warn(
                f"{name} holds {len(data_sets)} data sets (events: {events}); read the first. "
                f"Pass dataset=0..{len(data_sets) - 1} to choose another.", FCSWarning,
                stacklevel=3)
        return data_sets[0]
    if isinstance(dataset, bool) or not isinstance(dataset, (int, np.integer)) or not (
            0 <= dataset < len(data_sets)):
        raise NeuronEditError(
            f"{name} has no data set {dataset!r}: it holds {len(data_sets)} (events: {events}); "
            f"pass dataset=0..{len(data_sets) - 1}."
        )
    return data_sets[int(dataset)]


def _byte_order(text, name):
    order = text.get("byteord", "").replace(" ", "")
    if order in ("1,2,3,4", "1,2", "1,2,3,4,5,6,7,8", "1"):
        return "<"
    if order in ("4,3,2,1", "2,1", "8,7,6,5,4,3,2,1"):
        return ">"
    raise NeuronEditError(
        f"{name} has byte order $BYTEORD={order!r}, which is not supported; only little- "
        "(1,2,3,4) and big-endian (4,3,2,1) files can be read. Export the file again as FCS 3.1."
    )


def _read_events(content, offset, flow, name):
    """``(events, channels)`` float32 of the DATA segment, decoded as fcsparser does.

    Reads $TOT x record bytes from the DATA start (the HEADER's, or $BEGINDATA when the
    HEADER says 0). Integers of any whole-byte width ($PnB 8, 16, 24, 32, ...) are
    masked to the next power of two of $PnR, as the standard says.
    """
    text, header = flow.text, flow.header
    datatype, mode = text.get("datatype", "").upper(), text.get("mode", "l").lower()
    events, width = int(text["tot"]), int(text["par"])
    bits = [int(text[f"p{i}b"]) for i in range(1, width + 1)] if width > 0 else []
    if mode != "l" or datatype not in ("I", "F", "D") or events < 0 or not bits or any(
            b <= 0 or b % 8 for b in bits):
        raise NeuronEditError(
            f"{name} stores $MODE={mode.upper()}, $DATATYPE={datatype}, $PnB={sorted(set(bits))}; "
            "only list mode (L) with integer (I, whole bytes), float (F) or double (D) values "
            "can be read. Export the file again as FCS 3.1 list mode."
        )
    sizes = [b // 8 for b in bits]
    if datatype in "FD" and set(sizes) != {4 if datatype == "F" else 8}:
        raise NeuronEditError(f"{name}: $DATATYPE={datatype} with $PnB={bits} is not valid FCS.")
    start = header["data_start"] or int(text.get("begindata", 0) or 0)
    stop = header["data_stop"] or int(text.get("enddata", 0) or 0)
    size, available = events * sum(sizes), max(flow.file_size - offset - start, 0)
    if size > available:  # checked before reading, so a damaged $TOT allocates nothing
        raise NeuronEditError(
            f"{name} is truncated: its DATA segment should hold {events} events x {len(sizes)} "
            f"channels ({size} bytes) but has {available}. Copy the file again."
        )
    block = _read_block(content, offset + start, size)
    if stop and stop - start + 1 != size:
        warnings.warn(
            f"{name}: the DATA segment runs from byte {start} to {stop} ({stop - start + 1} "
            f"bytes) but $TOT={events} events need {size}; read {size} bytes from its start.",
            FCSWarning, stacklevel=3)
    order = _byte_order(text, name)
    if datatype in "FD":
        return np.frombuffer(block, f"{order}f{sizes[0]}").reshape(events, width).astype(
            np.float32)
    return _decode_integers(block, sizes, order, text, name)


def _read_block(content, start, size):
    if isinstance(content, (bytes, bytearray)):
        return bytes(content[start:start + size])
    with open(content, "rb") as handle:
        handle.seek(start)
        return handle.read(size)


def _decode_integers(block, sizes, order, text, name):
    """Unsigned integers of ``sizes`` bytes per channel, masked to $PnR, as float32."""
    uncommon = "/".join(str(b) for b in sorted({8 * size for size in sizes} - {8, 16, 32, 64}))
    if uncommon:  # e.g. the Cytek xP5's 24-bit integers
        warnings.warn(
            f"{name} stores {uncommon}-bit integers ($PnB), a width most readers refuse; "
            "decoded them byte by byte.", FCSWarning, stacklevel=4)
    records = np.frombuffer(block, np.uint8).reshape(-1, sum(sizes))
    values = np.empty((len(records), len(sizes)), np.float32)
    ends = np.cumsum(sizes)
    masked = []
    for channel, (size, end) in enumerate(zip(sizes, ends)):
        part = records[:, end - size:end].astype(np.uint64)
        if order == ">":
            part = part[:, ::-1]
        number = (part << (np.arange(size, dtype=np.uint64) * np.uint64(8))).sum(
            axis=1, dtype=np.uint64)
        limit = 1 << max(int(np.ceil(np.log2(max(float(text[f"p{channel + 1}r"]), 1.0)))), 0)
        if limit < 1 << (8 * size) and (number >= limit).any():
            masked.append(channel + 1)
            number &= np.uint64(limit - 1)
        values[:, channel] = number
    if masked:
        warnings.warn(
            f"{name} has values above $PnR in channels {masked}; dropped the bits above it, "
            "as the FCS standard says (fcsparser and flowio do the same).", FCSWarning,
            stacklevel=4)
    return values


def fcs_keywords(data: FCSData, note: str | None = None) -> dict:
    """The keywords that :func:`write_fcs` passes to flowio (layout keywords removed)."""
    metadata = {}
    for key, value in data.text.items():
        bare = key.lower().lstrip("$")
        parts = _channel_keyword(bare)
        if bare in _LAYOUT:
            continue
        if parts is not None and parts[0] == "p" and (
            parts[2] in _CHANNEL_REBUILT or parts[1] > len(data.channels)
        ):
            continue
        metadata[bare] = str(value)
    if note:
        previous = metadata.get("com", "")
        metadata["com"] = f"{previous} | {note}" if previous else note
    return metadata


def write_fcs(path, data: FCSData, note: str | None = None):
    """Write ``data`` as FCS 3.1 (float32), atomically (temporary file, then rename).

    Every keyword of ``data.text`` is written back except the layout ones that
    flowio derives from the data; ``note`` is appended to ``$COM`` (separated by
    `` | ``), so repeated edits keep their history.

    Raises:
        NeuronEditError: values and channels disagree in shape.
    """
    import flowio

    values = np.ascontiguousarray(data.values, dtype=np.float32)
    if values.ndim != 2 or values.shape[1] != len(data.channels):
        raise NeuronEditError(
            f"Cannot write {values.shape} values with {len(data.channels)} channel names."
        )
    metadata = fcs_keywords(data, note)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            flowio.create_fcs(
                handle, values.ravel(), list(data.channels),
                opt_channel_names=list(data.markers), metadata_dict=metadata,
            )
