"""FCS files through ``flowio``: channels by $PnN, marker names from $PnS, keywords kept."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import numpy as np

from neuronedit_tf.data.atomic import atomic_path
from neuronedit_tf.errors import NeuronEditError

#: Keywords flowio sets itself from the data when it writes a file.
_STRUCTURAL = ("$BEGIN", "$END", "$BYTEORD", "$DATATYPE", "$MODE", "$NEXTDATA", "$PAR", "$TOT")


@dataclass
class FCSData:
    """Events of one FCS file.

    Attributes:
        values: ``(events, channels)`` float32, as stored (linear scale).
        channels: $PnN of each channel (detector names, e.g. ``"Nd142Di"``).
        markers: $PnS of each channel (e.g. ``"CD19"``; ``""`` when absent).
        text: the TEXT segment's keywords (lower-case, without ``$``, as flowio gives them).
    """

    values: np.ndarray
    channels: list[str]
    markers: list[str]
    text: dict = field(default_factory=dict)

    def select(self, channels):
        """A copy with only ``channels`` (by $PnN), in that order."""
        missing = [c for c in channels if c not in self.channels]
        if missing:
            raise NeuronEditError(
                f"Channels not in the file: {missing}. The file has: {self.channels}."
            )
        index = [self.channels.index(c) for c in channels]
        return FCSData(
            self.values[:, index], list(channels), [self.markers[i] for i in index],
            dict(self.text),
        )

    def to_frame(self):
        """A pandas DataFrame with one column per channel ($PnN)."""
        import pandas as pd

        return pd.DataFrame(self.values, columns=self.channels)


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
        raise NeuronEditError(f"{label} has duplicate channel names ($PnN): {duplicates}.")
    return FCSData(values, channels, markers, dict(flow.text))


def write_fcs(path, data: FCSData, note: str | None = None):
    """Write ``data`` as FCS 3.1 (float32), atomically (temporary file, then rename).

    Keywords of ``data.text`` are written back, except the structural ones flowio
    derives from the data and the per-channel ones rebuilt from
    ``channels``/``markers``; ``note`` is appended to ``$COM``.
    """
    import flowio

    metadata = {}
    for key, value in data.text.items():
        upper = "$" + key.upper() if not key.startswith("$") else key.upper()
        bare = upper.lstrip("$")
        if upper in _STRUCTURAL or (bare[:1] == "P" and bare[1:2].isdigit()):
            continue
        if key.lower() in ("begindata", "enddata", "beginanalysis", "endanalysis",
                           "beginstext", "endstext", "par", "tot", "nextdata"):
            continue
        metadata[key] = str(value)
    if note:
        previous = metadata.get("com", "")
        metadata["com"] = f"{previous} | {note}" if previous else note
    values = np.ascontiguousarray(data.values, dtype=np.float32)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            flowio.create_fcs(
                handle, values.ravel(), list(data.channels),
                opt_channel_names=list(data.markers), metadata_dict=metadata,
            )
