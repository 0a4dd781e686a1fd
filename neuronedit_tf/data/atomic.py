"""Atomic writes: write to a temporary name beside the target (a file or a folder), then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in ``path``'s folder; rename it to ``path`` on success.

    On any error the temporary file is removed and an existing ``path`` is left
    untouched, so a failure never leaves a partial or truncated file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(handle)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def atomic_folder(path, overwrite=False):
    """Yield a temporary folder beside ``path``; on success it replaces ``path``.

    An existing ``path`` is refused unless ``overwrite``. On any error the
    temporary folder is removed and ``path`` is left as it was.
    """
    import shutil

    from neuronedit_tf.errors import NeuronEditError

    path = Path(path)
    if path.exists() and not overwrite:
        raise NeuronEditError(f"{path} exists; pass overwrite=True or choose another path.")
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield scratch
        if path.exists():
            shutil.rmtree(path)
        os.replace(scratch, path)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
