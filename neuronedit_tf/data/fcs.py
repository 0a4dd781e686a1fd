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
from dataclasses import dataclass, field

import numpy as np

from neuronedit_tf.data.atomic import atomic_path
from neuronedit_tf.errors import NeuronEditError

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
        from neuronedit_tf.data.tables import as_table

        table = as_table(frame, "data")
        names = table.columns or [f"P{i + 1}" for i in range(table.values.shape[1])]
        markers = list(markers) if markers is not None else [""] * len(names)
        return cls(table.values, list(names), markers, dict(text or {}))


def read_fcs(source) -> FCSData:
    """Read an FCS 2.0/3.0/3.1 file (a path or its bytes).

    Raises:
        NeuronEditError: the file is missing, truncated, not FCS, or has
            duplicate channel names.
    """
    import flowio

    label = "<bytes>" if isinstance(source, (bytes, bytearray)) else os.fspath(source)
    try:
        handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else label
        flow = flowio.FlowData(handle)
        values = np.asarray(flow.events, dtype=np.float32).reshape(-1, flow.channel_count)
    except FileNotFoundError:
        raise NeuronEditError(f"No such FCS file: {label}.") from None
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
