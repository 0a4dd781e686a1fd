"""The preset zoo: fitted editors saved with their provenance, shipped, pulled and loaded safely.

A preset is a folder, modelled on KerasHub presets:

- ``config.json``: what to build (``{"module", "class_name", "config"}``), read back on
  load: the class must be the editor and the config the one the model was saved with;
- ``neuronedit.json`` and ``model.keras``: the editor itself, written by
  :meth:`NeuronEditor.save` (the whole raw -> edited raw graph, weights included);
- ``percentiles.npz``: the ``NeuronEdit`` tables (``quantiles``, ``source_q``,
  ``target_q``), readable without TensorFlow; checked against the model on load;
- ``metadata.json``: versions, parameter count, training data and provenance,
  features and transform, seed, the metrics reached on its benchmark, and the
  command that trained it;
- ``README.md``: the model card.

The registry is ``zoo/index.json`` at the repository's top level (name,
description, files with sha256 and size, origin); the wheel ships the same
index and the small presets as package data (``neuronedit_tf/zoo_presets/``).
An entry's ``origin`` is the folder its files are fetched from, relative to the
index (the shipped index: the package's own folders) or an absolute URL; a lab
serves its own presets by publishing an ``index.json`` beside them and passing
its URL or folder as ``index=`` (``--index`` on the command line).
``load`` accepts a preset name, a local folder or a URL; downloads go through
``keras.utils.get_file`` with the sha256 checked, into a cache
(``$NEURONEDIT_HOME/zoo``), and a partial or corrupt download never stays there.
Loading never executes code: only the known files are accepted (no pickles),
Keras ``safe_mode`` refuses ``Lambda`` layers, and NumPy files load with
``allow_pickle=False``.

Example:
    >>> from neuronedit_tf import zoo
    >>> [p["name"] for p in zoo.list_presets()]
    ['cytof_spikein', 'digits_thicken']
    >>> editor = zoo.load("cytof_spikein")          # doctest: +SKIP
    >>> edited = editor.transform(load_cytof("021", 2))   # doctest: +SKIP

The recipes that trained the shipped presets are in :mod:`neuronedit_tf.bench.presets`
(``neuronedit zoo train NAME --out FOLDER``); this module holds no training code.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

import numpy as np

from neuronedit_tf.data.atomic import atomic_folder, atomic_path
from neuronedit_tf.errors import NeuronEditError

PRESETS_DIR = Path(__file__).resolve().parent / "zoo_presets"
REPO_ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"
INDEX_FILE = "index.json"
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
TABLES_FILE = "percentiles.npz"
CARD_FILE = "README.md"
EDITOR_FILES = ("neuronedit.json", "model.keras")  # written by NeuronEditor.save
PRESET_FILES = (CONFIG_FILE,) + EDITOR_FILES + (TABLES_FILE, METADATA_FILE, CARD_FILE)
#: The one class a preset's ``config.json`` may name (nothing else is imported or built).
PRESET_CLASS = {"module": "neuronedit_tf", "class_name": "NeuronEditor"}


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
def _index_location(index) -> str:
    """``index`` as a path or URL of an ``index.json`` (a folder means its ``index.json``)."""
    if index is None:
        return str(PRESETS_DIR / INDEX_FILE)
    if not _is_url(str(index)) and Path(index).is_dir():
        return str(Path(index) / INDEX_FILE)
    return str(index)


def read_index(index=None) -> dict:
    """The registry ``{"format": 1, "presets": [...]}``: the shipped one by default,
    or a local ``index.json`` (or the folder holding it), or an ``http(s)://``/``file://`` URL."""
    index = _index_location(index)
    if _is_url(index):
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


def list_presets(index=None):
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


def list(index=None):  # noqa: A001  (deprecated: shadowed the builtin)
    """Deprecated alias of :func:`list_presets` (removed in the next release)."""
    warnings.warn("neuronedit_tf.zoo.list is deprecated; use zoo.list_presets.",
                  DeprecationWarning, stacklevel=2)
    return list_presets(index)


def info(name_or_path, index=None) -> dict:
    """A preset's registry entry (if any) and its ``metadata.json``."""
    path = Path(str(name_or_path))
    if path.is_dir():
        return {"path": str(path), "metadata": _read_json(path / METADATA_FILE, "Metadata")}
    entry = _entry(name_or_path, index)
    shipped = PRESETS_DIR / entry["name"]
    result = {"entry": entry}
    if shipped.is_dir():
        result["path"] = str(shipped)
        result["metadata"] = _read_json(shipped / METADATA_FILE, "Metadata")
    return result


def index_entry(path, name=None, description=None, origin=None) -> dict:
    """A registry entry for the preset folder ``path``: its files with sha256 and size.

    ``origin`` is where the files are fetched from: a URL, or a folder relative to
    the index (default ``NAME/``, the layout of ``zoo_presets/`` beside its index).
    """
    path = Path(path)
    metadata = _read_json(path / METADATA_FILE, "Metadata")
    name = name or metadata["name"]
    return {
        "name": name,
        "description": description or metadata["description"],
        "origin": origin or f"{name}/",
        "files": [{"name": f, "sha256": sha256(path / f), "size": (path / f).stat().st_size}
                  for f in PRESET_FILES],
    }


def write_index(folders=None, destinations=None) -> dict:
    """Rewrite the registry from the shipped preset folders; returns the shipped copy.

    Writes ``neuronedit_tf/zoo_presets/index.json`` (the copy the wheel ships) and
    ``zoo/index.json`` (the repository's registry). Each entry's ``origin`` is the
    preset's folder relative to that index, so both copies name folders that exist.
    """
    if folders is None:
        folders = sorted(p for p in PRESETS_DIR.iterdir() if (p / METADATA_FILE).exists())
    if destinations is None:
        destinations = [PRESETS_DIR / INDEX_FILE]
        if REPO_ZOO_DIR.is_dir():
            destinations.append(REPO_ZOO_DIR / INDEX_FILE)
    entries = [index_entry(p) for p in folders]
    registries = []
    for destination in destinations:
        presets = [dict(entry, origin=_relative_origin(folder, destination))
                   for entry, folder in zip(entries, folders)]
        registries.append({"format": 1, "presets": presets})
        _write_text(destination, json.dumps(registries[-1], indent=2) + "\n")
    return registries[0]


def _relative_origin(folder, index_file) -> str:
    """``folder`` as a URL path relative to the folder of ``index_file`` (ending in ``/``)."""
    relative = os.path.relpath(Path(folder).resolve(), Path(index_file).resolve().parent)
    return Path(relative).as_posix() + "/"


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
    edit = _tables_layer(editor)
    settings = editor.get_config()
    state = {
        "name": name,
        "description": description,
        "versions": {"neuronedit_tf": neuronedit_tf.__version__, "keras": keras.__version__,
                     "tensorflow": tf.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "parameters": int(editor.model_.count_params()),
        "features": editor.columns_,
        "passthrough": builtins.list(editor.passthrough_),
        "input_shape": builtins.list(editor.model_.input.shape[1:]),
        "transform": {"name": settings["transform"], "cofactor": settings["cofactor"],
                      "logicle": settings["logicle"]},
        "seed": settings["seed"],
        "method": editor.method_,
        "selection": getattr(editor, "selection_", None),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    state.update(metadata or {})
    path = Path(path)
    with atomic_folder(path, overwrite) as scratch:
        editor.save(scratch / "editor")
        for file in EDITOR_FILES:
            os.replace(scratch / "editor" / file, scratch / file)
        (scratch / "editor").rmdir()
        config = dict(PRESET_CLASS, config=settings)
        (scratch / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        with open(scratch / TABLES_FILE, "wb") as handle:
            np.savez(handle, **_tables(editor, edit))
        (scratch / METADATA_FILE).write_text(json.dumps(state, indent=2) + "\n")
        (scratch / CARD_FILE).write_text(model_card(state, card))
    return path


def _tables_layer(editor):
    """The map whose percentiles ``percentiles.npz`` holds: the neuron edit, or for a method
    without an autoencoder its per-feature map (None for the mean shift, which has none)."""
    from neuronedit_tf import methods

    method = methods.get(editor.method_)
    name = "neuron_edit" if method.uses_autoencoder else method.output_map
    return None if name is None else editor.part(name)


def _tables(editor, edit):
    """``percentiles.npz``'s arrays: the knots and the map's source and target percentiles
    (empty when the method has no percentile map)."""
    if edit is None:
        empty = np.zeros((0, 0), np.float32)
        return {"quantiles": np.zeros(0, np.float32), "source_q": empty, "target_q": empty}
    return {"quantiles": np.asarray(edit.quantiles, np.float32),
            "source_q": np.asarray(edit.source_q), "target_q": np.asarray(edit.target_q)}


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
              f"- Method: {metadata.get('method', 'not recorded')}",
              "- Versions: " + ", ".join(f"{k} {v}" for k, v in metadata["versions"].items())]
    chosen = metadata.get("selection")
    if chosen:
        from neuronedit_tf.selection import table

        lines += ["", "## How the method was chosen (method='auto', spike-ins only)", "",
                  "Held-out spike-in EMD after the edit / before it, per split (lower is "
                  "better):", "", table(chosen)]
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


def read_config(path) -> dict:
    """A preset's ``config.json``, refused unless it names :data:`PRESET_CLASS`
    (the class is never looked up by a name the file chooses)."""
    config = _read_json(Path(path) / CONFIG_FILE, "The preset config")
    named = {key: config.get(key) for key in PRESET_CLASS} if isinstance(config, dict) else {}
    if named != PRESET_CLASS or not isinstance(config.get("config"), dict):
        raise NeuronEditError(
            f"{Path(path) / CONFIG_FILE} names {named or config!r}; a preset holds a "
            f"{PRESET_CLASS['module']}.{PRESET_CLASS['class_name']} and its 'config'. "
            "Refusing to load it."
        )
    return config["config"]


def load_folder(path, expected=None):
    """Load a preset folder safely (see :func:`check_files`); returns a NeuronEditor
    with ``.metadata`` set.

    ``config.json`` is read back: it must name the editor class and hold the
    configuration the editor was saved with (``neuronedit.json``).
    """
    from neuronedit_tf.editor import NeuronEditor

    path = Path(path)
    check_files(path, expected)
    config = read_config(path)
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
        with np.load(path / TABLES_FILE, allow_pickle=False) as tables:
            stored = {k: tables[k] for k in ("source_q", "target_q")}
    except (ValueError, KeyError, OSError) as error:
        raise NeuronEditError(
            f"{path / TABLES_FILE} is not a plain array file ({error}); refusing it."
        ) from None
    expected = _tables(editor, _tables_layer(editor))
    for key, values in stored.items():
        if not np.array_equal(values, expected[key]):
            raise NeuronEditError(
                f"{path / TABLES_FILE}'s {key} differs from the model's; the preset "
                "is inconsistent. Pull or save it again."
            )
    if config != _read_json(path / EDITOR_FILES[0], "The editor's settings")["config"]:
        raise NeuronEditError(
            f"{path / CONFIG_FILE} differs from the configuration the editor was saved with "
            f"({EDITOR_FILES[0]}); the preset is inconsistent. Pull or save it again."
        )
    editor.metadata = _read_json(path / METADATA_FILE, "Metadata")
    return editor


def pull(name, index=None, cache=None, force_download=False) -> Path:
    """Download a preset of the registry into the cache and return its folder.

    Each file goes through ``keras.utils.get_file`` with its sha256; the files
    are gathered in a temporary folder and renamed into place only when all are
    complete and checked, so an interrupted or corrupt download leaves nothing
    in the cache. A complete cached copy is reused unless ``force_download``.

    Args:
        name: the preset's name in the registry.
        index: the registry (default: the shipped one), a path, folder or URL; files
            come from each entry's ``origin`` (a URL, or a folder relative to the index).
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
    base = urllib.parse.urljoin(_as_url(_index_location(index)), entry["origin"])
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


if __name__ == "__main__":  # the entry point of earlier releases: the CLI owns the command now
    raise SystemExit("python -m neuronedit_tf.zoo is replaced by the command line: run "
                     "`neuronedit zoo ACTION ...` with the same arguments.")
