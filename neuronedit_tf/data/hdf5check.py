"""Read an HDF5 file (``.h5``, ``.h5ad``) in a throw-away process first, so a damaged one
cannot crash or hang ours.

A few flipped bytes in an HDF5 file's metadata can make the HDF5 C library (under h5py
and anndata) read outside its buffers and kill the whole Python process with a
segmentation fault, or loop forever: no exception, nothing to catch, and a CLI run or a
notebook loses everything in progress. Neither h5py nor HDF5 has an option that turns
this into an error (HDF5 fixes such crashes one by one as fuzzers find them). So before
this process opens an HDF5 file, :func:`check_hdf5` opens it in a short-lived child
process (plain Python importing only h5py, not TensorFlow) that walks every group and
reads every attribute and dataset the way a reader would. If the child dies by a signal,
or stops making progress, the file is refused with a
:class:`~neuronedit_tf.errors.NeuronEditError`; otherwise the caller reads it as usual (a
file HDF5 refuses cleanly gives the caller's own error).

A file that passed is remembered for the life of the process by its path, size,
modification time and inode, so reading it again (its channel names, then its rows,
then its chunks) costs nothing more.

Example:
    >>> import h5py, numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.h5")
    >>> with h5py.File(path, "w") as handle:
    ...     _ = handle.create_dataset("data", data=np.eye(3))
    >>> check_hdf5(path)   # a sound file passes silently (and is not checked again)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from neuronedit_tf.errors import NeuronEditError

#: Signals by which a library crash kills a process (the child's exit code is -signal).
CRASH_SIGNALS = ("SIGSEGV", "SIGBUS", "SIGABRT", "SIGFPE", "SIGILL")
#: Seconds the child may go without reading another object or block before the file is
#: taken to make HDF5 loop (a sound file's steps take well under a second each).
STALL_SECONDS = 60.0
#: Bytes of a chunked, compressed or variable-length dataset decoded per step in the child.
_BLOCK_BYTES = 16 * 2**20
#: Checks that passed: ((real path, size, mtime_ns, inode), dataset or None for all).
_PASSED: set = set()

# The child: stdin holds {"path", "dataset", "sys_path", "plugins"}; it prints one byte per
# step (the parent's sign of progress). Every group, attribute and dataset is visited, each
# in its own try, so a clean HDF5 error in one object does not hide a crash in the next.
# Contiguous datasets of fixed-size types are raw bytes at one offset (nothing to decode):
# their first and last rows exercise the layout. Chunked, compressed and variable-length
# ones (strings live in a heap) are decoded whole, block by block.
_CHILD = r"""
import json, sys
request = json.loads(sys.stdin.read())
sys.path[:] = request["sys_path"]
import h5py
for plugin in request["plugins"]:
    __import__(plugin)


def step(call):
    try:
        return call()
    except Exception:
        return None
    finally:
        sys.stdout.write(".")
        sys.stdout.flush()


def attributes(item):
    for name in step(lambda: list(item.attrs)) or []:
        step(lambda: item.attrs[name])


def read_data(dataset):
    shape = dataset.shape
    if shape is None:
        return
    if not shape or shape[0] == 0:
        step(lambda: dataset[()])
        return
    kind = dataset.dtype.kind
    fixed = kind in "biufc" or (kind == "V" and not dataset.dtype.hasobject)
    if dataset.chunks is None and fixed and dataset.compression is None:
        step(lambda: dataset[:1])
        step(lambda: dataset[shape[0] - 1:])
        return
    row = max(1, dataset.dtype.itemsize * (dataset.size // shape[0]))
    rows = max(1, %(block_bytes)d // row)
    for start in range(0, shape[0], rows):
        step(lambda: dataset[start:start + rows])


def visit(group, wanted, seen):
    attributes(group)
    for name in step(lambda: list(group)) or []:
        item = step(lambda: group[name])
        if isinstance(item, h5py.Group):
            address = step(lambda: h5py.h5o.get_info(item.id).addr)
            if address not in seen:  # a damaged file can link a group into itself
                seen.add(address)
                visit(item, wanted, seen)
        elif isinstance(item, h5py.Dataset):
            attributes(item)
            step(lambda: (item.shape, item.dtype, item.chunks, item.compression))
            if wanted is None or item.name == wanted:
                step(lambda: read_data(item))


handle = step(lambda: h5py.File(request["path"], "r"))
if handle is not None:
    wanted = request["dataset"]
    visit(handle, None if wanted is None else "/" + wanted.lstrip("/"), set())
    step(handle.close)
""" % {"block_bytes": _BLOCK_BYTES}


def check_hdf5(path, dataset=None, *, stall_seconds=STALL_SECONDS):
    """Refuse an HDF5 file whose reading crashes or hangs the HDF5 library, without
    crashing or hanging here.

    Args:
        path: an HDF5 file (``.h5``, ``.hdf5``, ``.h5ad``, a Keras ``.weights.h5``).
        dataset: decode only this dataset's values (every group, attribute and dataset
            header is still read); default every dataset's.
        stall_seconds: how long the child may read without progress before the file is
            taken to make HDF5 loop.

    Raises:
        NeuronEditError: reading the file killed the child process (SIGSEGV and the
            like) or made no progress: the file is damaged. Clean HDF5 errors are left to
            the caller's reader (it raises its own NeuronEditError).
    """
    if not isinstance(path, (str, os.PathLike)):
        return  # an open file object (anndata reads those too): nothing to hand a child
    path = Path(path)
    try:
        status = path.stat()
    except OSError:
        return  # the caller's reader says what is wrong (missing, a folder, no permission)
    if getattr(sys, "frozen", False):
        return  # a bundled app: sys.executable is the app itself, not a Python to run -c
    file = (os.path.realpath(path), status.st_size, status.st_mtime_ns, status.st_ino)
    if (file, None) in _PASSED or (file, dataset) in _PASSED:
        return
    request = {"path": os.fspath(path), "dataset": dataset, "sys_path": sys.path,
               "plugins": [p for p in ("hdf5plugin",) if p in sys.modules]}
    try:
        # -S: no site initialisation (the parent's sys.path is handed over instead)
        child = subprocess.Popen([sys.executable, "-S", "-c", _CHILD], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return  # no Python to start (an embedded interpreter): read as before, unchecked
    try:
        code = _wait(child, json.dumps(request).encode(), stall_seconds)
    finally:
        if child.poll() is None:  # stalled, or this process was interrupted (Ctrl-C)
            child.kill()
            child.wait()
    if code is None:
        raise NeuronEditError(
            f"{path} is damaged: reading it made the HDF5 library stop making progress (no "
            f"step finished in {stall_seconds:g} s), so it was refused before it could hang "
            f"this process. {_HOW_TO_CHECK.format(path=path)}"
        )
    if code == 0:
        _PASSED.add((file, dataset))
    elif code < 0 or code > 255:  # a POSIX signal, or a Windows exception (0xC0000005)
        raise NeuronEditError(_refusal(path, code))
    # else the child could not run its check (no h5py where it looked): read as before


_HOW_TO_CHECK = ("Check it with 'h5ls -r {path}' (HDF5 tools) or compare its size and "
                 "checksum with the original, then copy, download or export it again.")


def _wait(child, request, stall_seconds):
    """The child's exit code, or None if it went ``stall_seconds`` without printing."""
    child.stdin.write(request)
    child.stdin.close()
    progress = threading.Event()

    def drain():
        while child.stdout.read1(4096):
            progress.set()

    threading.Thread(target=drain, daemon=True).start()
    stalled, tick = 0.0, time.monotonic()
    while True:
        try:
            return child.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        # Count at most 1 s per wake-up: a pause of this whole process (a suspended
        # laptop, a stopped job) is not time the child spent without progress.
        stalled = 0.0 if progress.is_set() else stalled + min(now - tick, 1.0)
        progress.clear()
        tick = now
        if stalled > stall_seconds:
            return None


def _refusal(path, code):
    try:
        how = signal.Signals(-code).name if code < 0 else f"exit code {code:#x}"
    except ValueError:
        how = f"signal {-code}"
    if code < 0 and how not in CRASH_SIGNALS:
        return (f"Checking {path} was stopped by {how} (out of memory, or killed) before it "
                "finished; free some memory and try again.")
    return (f"{path} is damaged: reading it crashes the HDF5 library ({how} in h5py's C "
            "code), so it was refused before it could crash this process. "
            + _HOW_TO_CHECK.format(path=path))
