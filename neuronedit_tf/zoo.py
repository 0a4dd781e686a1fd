"""The preset zoo: fitted editors saved with their provenance, shipped, pulled and loaded safely.

A preset is a folder, modelled on KerasHub presets:

- ``config.json``: what to build (``{"module", "class_name", "config"}``);
- ``neuronedit.json`` and ``model.keras``: the editor itself, written by
  :meth:`NeuronEditor.save` (the whole raw -> edited raw graph, weights included);
- ``percentiles.npz``: the ``NeuronEdit`` tables (``quantiles``, ``source_q``,
  ``target_q``), readable without TensorFlow; checked against the model on load;
- ``metadata.json``: versions, parameter count, training data and provenance,
  features and transform, seed, the metrics reached on its benchmark, and the
  command that trained it;
- ``README.md``: the model card.

The registry is ``zoo/index.json`` at the repository's top level (name,
description, files with sha256 and size, origin URL); the wheel ships the same
index and the small presets as package data (``neuronedit_tf/zoo_presets/``).
``load`` accepts a preset name, a local folder or a URL; downloads go through
``keras.utils.get_file`` with the sha256 checked, into a cache
(``$NEURONEDIT_HOME/zoo``), and a partial or corrupt download never stays there.
Loading never executes code: only the known files are accepted (no pickles),
Keras ``safe_mode`` refuses ``Lambda`` layers, and NumPy files load with
``allow_pickle=False``.

Example:
    >>> from neuronedit_tf import zoo
    >>> [p["name"] for p in zoo.list()]
    ['cytof_spikein', 'digits_thicken']
    >>> editor = zoo.load("cytof_spikein")          # doctest: +SKIP
    >>> edited = editor.transform(load_cytof("021", 2))   # doctest: +SKIP

Retrain a shipped preset (this is the command written into its metadata)::

    python -m neuronedit_tf.zoo train cytof_spikein --out neuronedit_tf/zoo_presets/cytof_spikein --overwrite
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

from neuronedit_tf.data.atomic import atomic_folder, atomic_path
from neuronedit_tf.errors import NeuronEditError

PRESETS_DIR = Path(__file__).resolve().parent / "zoo_presets"
REPO_ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"
INDEX_FILE = "index.json"
ORIGIN = ("https://raw.githubusercontent.com/neuronedit/neuronedit_tf/main/"
          "neuronedit_tf/zoo_presets/{name}/")
EDITOR_FILES = ("neuronedit.json", "model.keras")  # written by NeuronEditor.save
PRESET_FILES = ("config.json",) + EDITOR_FILES + ("percentiles.npz", "metadata.json", "README.md")


# ------------------------------------------------------------------ helpers
def sha256(path) -> str:
    """The sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_text(path, text):
    with atomic_path(path) as temporary:
        Path(temporary).write_text(text)
        os.chmod(temporary, 0o644)  # a registry is public (mkstemp makes 0600)


def _read_json(path, what):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise NeuronEditError(f"{what} {path} does not exist.") from None
    except json.JSONDecodeError as error:
        raise NeuronEditError(f"{what} {path} is not valid JSON: {error}.") from None


def cache_dir() -> Path:
    """Where pulled presets are kept: ``$NEURONEDIT_HOME/zoo`` (default ``~/.keras/datasets/neuronedit/zoo``)."""
    from neuronedit_tf.data.datasets import cache_dir as data_cache

    return data_cache() / "zoo"


def _is_url(text) -> bool:
    return isinstance(text, str) and text.split(":", 1)[0] in ("http", "https", "file")


# ------------------------------------------------------------------ registry
def read_index(index=None) -> dict:
    """The registry ``{"format": 1, "presets": [...]}``: the shipped one by default,
    or a local ``index.json`` path, or an ``http(s)://``/``file://`` URL."""
    if index is None:
        index = PRESETS_DIR / INDEX_FILE
    if _is_url(str(index)):
        try:
            with urllib.request.urlopen(str(index), timeout=30) as response:
                return json.loads(response.read().decode())
        except (OSError, ValueError) as error:
            raise NeuronEditError(f"Could not read the registry {index}: {error}.") from None
    return _read_json(index, "The registry")


def _entry(name, index=None) -> dict:
    registry = read_index(index)
    for entry in registry["presets"]:
        if entry["name"] == name:
            return entry
    names = ", ".join(e["name"] for e in registry["presets"])
    raise NeuronEditError(
        f"No preset named {name!r} in the registry; available: {names}. "
        "A local folder or a URL (INDEX_URL#NAME) works too."
    )


def list(index=None):  # noqa: A001  (the zoo's public verb, like keras_hub's list_presets)
    """The presets of the registry: ``[{"name", "description", "size", "shipped"}, ...]``."""
    rows = []
    for entry in read_index(index)["presets"]:
        rows.append({
            "name": entry["name"],
            "description": entry["description"],
            "size": sum(f["size"] for f in entry["files"]),
            "shipped": (PRESETS_DIR / entry["name"]).is_dir(),
        })
    return rows


def info(name_or_path, index=None) -> dict:
    """A preset's registry entry (if any) and its ``metadata.json``."""
    path = Path(str(name_or_path))
    if path.is_dir():
        return {"path": str(path), "metadata": _read_json(path / "metadata.json", "Metadata")}
    entry = _entry(name_or_path, index)
    shipped = PRESETS_DIR / entry["name"]
    result = {"entry": entry}
    if shipped.is_dir():
        result["path"] = str(shipped)
        result["metadata"] = _read_json(shipped / "metadata.json", "Metadata")
    return result


def index_entry(path, name=None, description=None, origin=None) -> dict:
    """A registry entry for the preset folder ``path``: its files with sha256 and size."""
    path = Path(path)
    metadata = _read_json(path / "metadata.json", "Metadata")
    name = name or metadata["name"]
    return {
        "name": name,
        "description": description or metadata["description"],
        "origin": origin or ORIGIN.format(name=name),
        "files": [{"name": f, "sha256": sha256(path / f), "size": (path / f).stat().st_size}
                  for f in PRESET_FILES],
    }


def write_index(folders=None, destinations=None) -> dict:
    """Rewrite the registry from the shipped preset folders.

    Writes the same bytes to ``zoo/index.json`` (the repository's registry) and
    ``neuronedit_tf/zoo_presets/index.json`` (the copy the wheel ships).
    """
    if folders is None:
        folders = sorted(p for p in PRESETS_DIR.iterdir() if (p / "metadata.json").exists())
    registry = {"format": 1, "presets": [index_entry(p) for p in folders]}
    text = json.dumps(registry, indent=2) + "\n"
    if destinations is None:
        destinations = [PRESETS_DIR / INDEX_FILE]
        if REPO_ZOO_DIR.is_dir():
            destinations.append(REPO_ZOO_DIR / INDEX_FILE)
    for destination in destinations:
        _write_text(destination, text)
    return registry


# ------------------------------------------------------------------ save
def save(editor, path, name, description, metadata=None, card=None, overwrite=False):
    """Save a fitted :class:`NeuronEditor` as a preset folder (see the module docstring).

    Args:
        editor: a fitted NeuronEditor.
        path: the folder to write (written under a temporary name, then renamed).
        name: the preset's name (lowercase, ``[a-z0-9_]``).
        description: one line.
        metadata: more fields for ``metadata.json`` (e.g. ``data``, ``metrics``,
            ``command``); versions, parameter count, features, transform and
            seed are filled in here.
        card: the model card's body (Markdown); a header with the metadata is added.
        overwrite: replace an existing folder.

    Returns:
        The folder's path.

    Example:
        >>> zoo.save(editor, "my_preset", "my_preset", "CyTOF batch 021 -> 028")  # doctest: +SKIP
    """
    import keras
    import tensorflow as tf

    import neuronedit_tf

    if not name or not all(c.isalnum() or c == "_" for c in name) or name != name.lower():
        raise NeuronEditError(f"A preset name is lowercase letters, digits and _; got {name!r}.")
    editor._require_fitted()
    edit = editor.part("neuron_edit")
    state = {
        "name": name,
        "description": description,
        "versions": {"neuronedit_tf": neuronedit_tf.__version__, "keras": keras.__version__,
                     "tensorflow": tf.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "parameters": int(editor.model.count_params()),
        "features": editor.columns,
        "passthrough": builtins.list(editor.passthrough),
        "input_shape": builtins.list(editor.model.input.shape[1:]),
        "transform": {"name": editor.transform_name, "cofactor": editor.cofactor,
                      "logicle": editor.logicle},
        "seed": editor.seed,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    state.update(metadata or {})
    path = Path(path)
    with atomic_folder(path, overwrite) as scratch:
        editor.save(scratch / "editor")
        for file in EDITOR_FILES:
            os.replace(scratch / "editor" / file, scratch / file)
        (scratch / "editor").rmdir()
        config = {"module": "neuronedit_tf", "class_name": "NeuronEditor",
                  "config": editor.get_config()}
        (scratch / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        with open(scratch / "percentiles.npz", "wb") as handle:
            np.savez(handle, quantiles=np.asarray(editor.quantiles, np.float32),
                     source_q=np.asarray(edit.source_q), target_q=np.asarray(edit.target_q))
        (scratch / "metadata.json").write_text(json.dumps(state, indent=2) + "\n")
        (scratch / "README.md").write_text(model_card(state, card))
    return path


def model_card(metadata, body=None) -> str:
    """The preset's ``README.md``: a summary of ``metadata`` and the card's ``body``."""
    metrics = metadata.get("metrics") or {}
    lines = [f"# {metadata['name']}", "", metadata["description"], ""]
    if body:
        lines += [body.strip(), ""]
    lines += ["## Facts", "",
              f"- Parameters: {metadata['parameters']:,}",
              f"- Input: {metadata['input_shape']} "
              f"(transform {metadata['transform']['name']}, cofactor {metadata['transform']['cofactor']})",
              f"- Seed: {metadata['seed']}",
              "- Versions: " + ", ".join(f"{k} {v}" for k, v in metadata["versions"].items())]
    data = metadata.get("data")
    if data:
        lines += ["", "## Training data", "", "```json", json.dumps(data, indent=2), "```"]
    if metrics:
        lines += ["", "## Metrics (written by the command below)", "", "| metric | value |",
                  "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
                  for k, v in metrics.items()]
    if metadata.get("command"):
        lines += ["", "## Reproduce", "", "```bash", metadata["command"], "```"]
    lines += ["", "## Load", "", "```python", "from neuronedit_tf import zoo",
              f"editor = zoo.load({metadata['name']!r})", "```", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ load
def check_files(path, expected=None):
    """Refuse a preset folder with unknown files (e.g. pickles) or, given the registry's
    ``expected`` file list, any file whose sha256 or size differs."""
    path = Path(path)
    if not path.is_dir():
        raise NeuronEditError(f"{path} is not a preset folder.")
    present = {p.name for p in path.iterdir()}
    unknown = sorted(present - set(PRESET_FILES))
    if unknown:
        raise NeuronEditError(
            f"Preset {path} holds files a preset never has: {unknown}. Presets carry only "
            f"{builtins.list(PRESET_FILES)} (no pickles, no code); refusing to load it."
        )
    missing = [f for f in PRESET_FILES if f not in present]
    if missing:
        raise NeuronEditError(f"Preset {path} is incomplete: missing {missing}.")
    for item in expected or ():
        got = sha256(path / item["name"])
        if got != item["sha256"]:
            raise NeuronEditError(
                f"Checksum mismatch for {path / item['name']}: expected sha256 "
                f"{item['sha256']}, got {got}. The file is corrupt or was changed; "
                "pull it again with force_download=True."
            )


def load_folder(path, expected=None):
    """Load a preset folder safely (see :func:`check_files`); returns a NeuronEditor
    with ``.metadata`` set."""
    from neuronedit_tf.editor import NeuronEditor

    path = Path(path)
    check_files(path, expected)
    try:
        editor = NeuronEditor.load(path)
    except NeuronEditError:
        raise
    except Exception as error:  # Keras safe_mode refusing code (Lambda), a broken archive
        raise NeuronEditError(
            f"Refusing to load the model of preset {path}: {str(error).splitlines()[0]} "
            "Presets must hold plain Keras layers (no Lambda, no custom code)."
        ) from None
    try:
        with np.load(path / "percentiles.npz", allow_pickle=False) as tables:
            stored = {k: tables[k] for k in ("source_q", "target_q")}
    except (ValueError, KeyError, OSError) as error:
        raise NeuronEditError(
            f"{path / 'percentiles.npz'} is not a plain array file ({error}); refusing it."
        ) from None
    edit = editor.part("neuron_edit")
    for key, values in stored.items():
        if not np.array_equal(values, np.asarray(getattr(edit, key))):
            raise NeuronEditError(
                f"{path / 'percentiles.npz'}'s {key} differs from the model's; the preset "
                "is inconsistent. Pull or save it again."
            )
    editor.metadata = _read_json(path / "metadata.json", "Metadata")
    return editor


def pull(name, index=None, cache=None, force_download=False) -> Path:
    """Download a preset of the registry into the cache and return its folder.

    Each file goes through ``keras.utils.get_file`` with its sha256; the files
    are gathered in a temporary folder and renamed into place only when all are
    complete and checked, so an interrupted or corrupt download leaves nothing
    in the cache. A complete cached copy is reused unless ``force_download``.

    Args:
        name: the preset's name in the registry.
        index: the registry (default: the shipped one), a path or URL; files come
            from each entry's ``origin`` (a URL, or a path relative to the index).
        cache: the cache folder (default :func:`cache_dir`).
        force_download: fetch again even when a checked copy is cached.
    """
    import keras

    entry = _entry(name, index)
    root = Path(cache) if cache is not None else cache_dir()
    final = root / entry["name"]
    if final.is_dir() and not force_download:
        with contextlib.suppress(NeuronEditError):
            check_files(final, entry["files"])
            return final
    base = entry["origin"]
    if index is not None and not _is_url(base):
        base = urllib.parse.urljoin(_as_url(index), base)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry['name']}.", suffix=".part", dir=root))
    try:
        for item in entry["files"]:
            origin = urllib.parse.urljoin(base.rstrip("/") + "/", item["name"])
            try:
                keras.utils.get_file(
                    item["name"], origin, file_hash=item["sha256"], hash_algorithm="sha256",
                    cache_dir=str(staging), cache_subdir="files", force_download=True,
                )
            except ValueError:
                got = sha256(staging / "files" / item["name"])
                raise NeuronEditError(
                    f"Checksum mismatch for {item['name']} of preset {entry['name']} from "
                    f"{origin}: expected sha256 {item['sha256']}, got {got}. Refusing it; "
                    "nothing was kept in the cache."
                ) from None
            except Exception as error:  # HTTP errors, dropped connections, timeouts
                raise NeuronEditError(
                    f"Downloading {item['name']} of preset {entry['name']} from {origin} "
                    f"failed: {error}. Nothing was kept in the cache; check the network "
                    "and pull again."
                ) from None
        check_files(staging / "files", entry["files"])
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging / "files", final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _as_url(index) -> str:
    index = str(index)
    return index if _is_url(index) else Path(index).resolve().as_uri()


def load(name_or_path_or_url, index=None, cache=None, force_download=False):
    """Load a preset: a registry name, a local preset folder, or ``INDEX_URL#NAME``.

    Shipped presets load from the package (their sha256 checked against the
    registry); other registry presets are pulled (:func:`pull`) first. Returns a
    fitted :class:`NeuronEditor` whose ``.metadata`` holds the preset's metadata.

    Example:
        >>> editor = load("cytof_spikein")     # doctest: +SKIP
        >>> editor.metadata["metrics"]["r"]    # doctest: +SKIP
    """
    source = str(name_or_path_or_url)
    if _is_url(source):
        index_url, _, name = source.partition("#")
        if not name:
            presets = read_index(index_url)["presets"]
            if len(presets) != 1:
                raise NeuronEditError(
                    f"{index_url} lists {len(presets)} presets; name one as {index_url}#NAME."
                )
            name = presets[0]["name"]
        return load_folder(pull(name, index_url, cache, force_download))
    path = Path(source)
    if path.is_dir():
        return load_folder(path)
    entry = _entry(source, index)
    shipped = PRESETS_DIR / entry["name"]
    if index is None and shipped.is_dir() and not force_download:
        return load_folder(shipped, entry["files"])
    return load_folder(pull(source, index, cache, force_download), entry["files"])


# ------------------------------------------------------------------ recipes
def _command(name, out, epochs, overwrite):
    parts = ["python -m neuronedit_tf.zoo train", name, "--out", str(out)]
    if epochs is not None:
        parts += ["--epochs", str(epochs)]
    if overwrite:
        parts.append("--overwrite")
    return " ".join(parts)


def train_cytof_spikein(epochs=None, seed=0, verbose="auto"):
    """The demo's case: spike-ins donor 1, batch 021 -> 028; sample donor 2 in 021."""
    from neuronedit_tf.data.datasets import CYTONORMPY, load_cytof
    from neuronedit_tf.demo import COFACTOR, run_demo
    from neuronedit_tf.editor import NeuronEditor

    epochs = 200 if epochs is None else epochs
    source, target, sample = load_cytof("021", 1), load_cytof("028", 1), load_cytof("021", 2)
    editor = NeuronEditor(transform="arcsinh", cofactor=COFACTOR, seed=seed)
    editor.fit(source, target, extra=sample, epochs=epochs, verbose=verbose)
    with tempfile.TemporaryDirectory() as scratch:
        result = run_demo(scratch, editor=editor, seed=seed)
    metrics = {k: float(result[k]) for k in ("r", "emd_edited", "emd_uncorrected", "emd_floor")}
    files = {"source": "Gates_PTLG021_Unstim_Control_1.fcs (donor 1, batch 021)",
             "target": "Gates_PTLG028_Unstim_Control_1.fcs (donor 1, batch 028)",
             "extra": "Gates_PTLG021_Unstim_Control_2.fcs (donor 2, batch 021)",
             "truth (scoring only)": "Gates_PTLG028_Unstim_Control_2.fcs (donor 2, batch 028)"}
    data = {"kind": "real mass cytometry (CyTOF), 1000 cells x 37 markers per file",
            "artifact": f"{CYTONORMPY.name}=={CYTONORMPY.version} wheel "
                        f"({CYTONORMPY.filename}, sha256 {CYTONORMPY.sha256}), "
                        "cytonormpy/_resources/*.fcs and coding_detectors.txt",
            "files": files, "epochs_max": epochs,
            "epochs_run": len((editor.history or {}).get("loss", [])) or None}
    card = (
        "A dense neuron editor (the paper's 500-250-50 autoencoder, LeakyReLU) that moves CyTOF "
        "cells from batch 021 to batch 028 of the cytonormpy files: exactly the case of "
        "`neuronedit demo`, which uses it with `--preset` to skip training.\n\n"
        "Metrics are on the arcsinh(x/5) scale: `r` is the paper's Pearson r between the spike-in's "
        "per-marker median change and the change applied to the sample; `emd_*` are mean per-marker "
        "earth mover's distances to the real batch-028 file of donor 2 (edited, uncorrected, and the "
        "sampling floor of two halves of that file).\n\n"
        "Use it on cells of the same panel (the 37 marker channels, by name) measured in batch 021; "
        "it learned one specific plate-to-plate batch effect and knows nothing else.")
    return editor, {"data": data, "metrics": metrics, "benchmark": "neuronedit demo case"}, card


DIGITS_FILTERS = (16, 32, 64)


def train_digits_thicken(epochs=None, seed=0, verbose="auto"):
    """Images: learn 'thicker strokes' on digits 0-4, apply to 5-9 (bench/images.py)."""
    import keras

    from neuronedit_tf.bench import images
    from neuronedit_tf.editor import NeuronEditor
    from neuronedit_tf.models import conv_autoencoder

    epochs = 60 if epochs is None else epochs
    case = images.image_case(seed=seed)
    keras.utils.set_random_seed(seed)
    model = conv_autoencoder((8, 8, 1), filters=DIGITS_FILTERS, seed=seed)
    editor = NeuronEditor(model=model, seed=seed)
    editor.fit(case.source, case.target, extra=case.extra, epochs=epochs, verbose=verbose)
    classifier, features = images.train_classifier(seed=seed)
    metrics = images.score(case, editor.transform(case.extra), classifier, features)
    unedited = images.score(case, case.extra, classifier, features)
    metrics.update({f"{k}_unedited": v for k, v in unedited.items()})
    import sklearn

    data = {"kind": "real handwritten digits, 8x8, values 0-16",
            "artifact": f"scikit-learn {sklearn.__version__} bundled load_digits (1,797 images)",
            "split": "source: a seeded half of digits 0-4; target: the 2x2 grey dilation of the "
                     "other half; extra (X): digits 5-9; truth: the dilation of X",
            "epochs_max": epochs,
            "epochs_run": len((editor.history or {}).get("loss", [])) or None}
    card = (
        "A convolutional neuron editor (stride-2 4x4 convolutions) that thickens handwritten "
        "strokes: learned on digits 0-4 (before/after a 2x2 grey dilation) and applied to "
        f"digits 5-9, which it never saw dilated. To stay small it uses filters {DIGITS_FILTERS} "
        "instead of the paper's (64, 128, 256).\n\n"
        "Metrics: per-image RMSE to the true dilation (0-16 pixel scale), the Fréchet distance on "
        "a small digit classifier's 64-unit features, and the share of edited images that keep "
        "their digit's class; `*_unedited` are the same for the unedited X.")
    return editor, {"data": data, "metrics": metrics, "benchmark": "neuronedit_tf.bench.images"}, card


RECIPES = {
    "cytof_spikein": (train_cytof_spikein,
                      "Dense editor: CyTOF batch 021 -> 028 from donor-1 spike-ins (the demo's case)"),
    "digits_thicken": (train_digits_thicken,
                       "Conv editor: thicker strokes learned on digits 0-4, applied to 5-9"),
}


def train(name, out, epochs=None, seed=0, overwrite=False, verbose="auto"):
    """Retrain a preset from its recipe and save it to ``out``; returns its metadata.

    Training the shipped folder (``out`` = ``neuronedit_tf/zoo_presets/NAME``)
    also rewrites the registry (both copies of ``index.json``).
    """
    if name not in RECIPES:
        raise NeuronEditError(f"No recipe for {name!r}; recipes: {', '.join(RECIPES)}.")
    recipe, description = RECIPES[name]
    started = time.time()
    editor, metadata, card = recipe(epochs=epochs, seed=seed, verbose=verbose)
    metadata["command"] = _command(name, out, epochs, overwrite)
    metadata["train_seconds"] = round(time.time() - started, 1)
    path = save(editor, out, name, description, metadata=metadata, card=card, overwrite=overwrite)
    if Path(out).resolve().parent == PRESETS_DIR:
        write_index()
    return _read_json(Path(path) / "metadata.json", "Metadata")


def main(argv=None):
    """``python -m neuronedit_tf.zoo list|info|pull|train ...`` (same as ``neuronedit zoo``)."""
    from neuronedit_tf.cli import main as cli_main

    return cli_main(["zoo"] + builtins.list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
