"""Shared fixtures: the real CyTOF files (pinned artifact, cached) and one small fitted editor."""

import json
import os
import subprocess

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def cytof():
    """Real CyTOF files: spike-in donor 1 in batches 021 -> 028, sample donor 2 (021), truth (028)."""
    from neuronedit_tf.data import load_cytof

    return {
        "source": load_cytof("021", 1),
        "target": load_cytof("028", 1),
        "sample": load_cytof("021", 2),
        "truth": load_cytof("028", 2),
    }


@pytest.fixture(scope="session")
def small_editor(cytof):
    """A small, quickly trained editor on the real spike-in pair (arcsinh, cofactor 5)."""
    from neuronedit_tf import NeuronEditor

    editor = NeuronEditor(transform="arcsinh", cofactor=5.0, hidden=(64, 32, 16), seed=0)
    return editor.fit(cytof["source"], cytof["target"], extra=cytof["sample"], epochs=15,
                      verbose=0)


def arcsinh(values):
    return np.arcsinh(np.asarray(values, np.float64) / 5.0)


def working_error(study, served, expected):
    """The study export's parity figure, ``max_error`` exactly as ``export`` verifies it
    (float32 in another runtime: a tolerance, not bits): the difference in standardised units,
    relative to max(|value|, 1) and divided per feature by the steepest slope of the last
    percentile map (``study_output_gain``: a steep map multiplies its input's rounding by its
    slope)."""
    from neuronedit_tf.export import _difference, study_output_gain

    pre = study.part("preprocessing")
    return _difference(served, expected, expected, working=lambda values: pre(values).numpy(),
                       gain=study_output_gain(study))["max_error"]


#: Keywords that describe an FCS file's own layout; a writer derives them from the data.
LAYOUT = {"beginanalysis", "endanalysis", "begindata", "enddata", "beginstext", "endstext",
          "byteord", "nextdata", "tot", "par", "datatype", "mode"}

FCSPARSER_SCRIPT = """
import json, sys, hashlib, numpy as np, fcsparser
meta, data = fcsparser.parse(sys.argv[1], reformat_meta=True, data_set=int(sys.argv[2]))
print(json.dumps({
    "shape": list(data.shape), "columns": [str(c) for c in data.columns],
    "sha": hashlib.sha256(np.ascontiguousarray(data.to_numpy(np.float32)).tobytes()).hexdigest(),
    "meta": {k: str(v) for k, v in meta.items() if not k.startswith("_")},
    "channels": {c: [str(v) for v in meta["_channels_"][c]] for c in ("$PnN", "$PnS", "$PnR")
                 if c in meta["_channels_"]},
}))
"""

#: fcsparser 0.2.8 (the newest) calls ndarray.newbyteorder, removed in numpy 2, so it cannot
#: share the project's environment. These checks run it in its own small virtual environment,
#: built once from pinned packages of the package index and cached beside the data artifacts
#: (or in the Python named by NEURONEDIT_FCSPARSER_PYTHON).
FCSPARSER_PINS = ("fcsparser==0.2.8", "numpy==1.26.4", "pandas==2.2.3", "six==1.17.0")


def _fcsparser_python():
    given = os.environ.get("NEURONEDIT_FCSPARSER_PYTHON")
    if given:
        return given
    import sys

    from neuronedit_tf.data.datasets import cache_dir

    home = cache_dir() / ("fcsparser-venv-" + "-".join(p.split("==")[1] for p in FCSPARSER_PINS))
    python = home / "bin" / "python"
    ready = home / "ready"
    if not ready.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *FCSPARSER_PINS], check=True)
        ready.write_text("ok")
    return str(python)


def fcsparser_parse(path, data_set=0):
    """What fcsparser reads from ``path`` (data set ``data_set``, from 0): shape, columns,
    values' sha256, keywords, channels."""
    command = [_fcsparser_python(), "-c", FCSPARSER_SCRIPT, str(path), str(data_set)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def fcs_keywords(meta):
    """fcsparser keywords minus the layout ones and $COM, names normalised.

    FCS keywords are case-insensitive; flowio writes them upper-case and drops a '$' inside
    non-standard names (flowCore_$P10Rmax -> FLOWCORE_P10RMAX)."""
    layout = {k.upper() for k in LAYOUT} | {"COM"}
    normal = {k.upper().replace("$", ""): v for k, v in meta.items()}
    return {k: v for k, v in normal.items() if k not in layout}
