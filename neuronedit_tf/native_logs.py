"""Hiding TensorFlow's C++ log lines (oneDNN, CUDA, CPU features) from a command's stderr.

TensorFlow 2.21 logs through absl before absl's logging is initialised, and those lines
ignore ``TF_CPP_MIN_LOG_LEVEL``: every ``import tensorflow`` prints the absl banner, the
oneDNN and "Could not find cuda drivers" notes, and the first device adds the CPU-feature
note and "failed call to cuInit". They are written by C++ straight to file descriptor 2,
so :func:`hidden_native_logs` sends descriptor 2 through a filter that drops exactly
those lines; Python's own ``sys.stderr`` (errors, warnings, progress bars) is untouched.

    >>> with hidden_native_logs():   # doctest: +SKIP
    ...     import tensorflow
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading

#: A C++ log line (severity I/W/E, date, time, thread, ``file:line]``), absl's banner before its
#: logging is initialised, or the second line of the CPU-feature note. Fatal (F) lines pass.
NATIVE_LOG_LINE = re.compile(
    rb"[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.-]+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler"
)
#: How a native log line can begin: other text without a line end yet passes on at once.
FIRST_BYTES = b"IWET"


@contextlib.contextmanager
def hidden_native_logs():
    """Drop TensorFlow's C++ log lines from file descriptor 2 while the block runs.

    Every other line written to descriptor 2 passes on unchanged (in order), and
    ``sys.stderr``, when it writes to descriptor 2, writes straight to the original
    stream meanwhile, so Python's errors, warnings and progress bars are not delayed.
    """
    sys.stderr.flush()
    try:
        original = os.dup(2)
    except OSError:  # no descriptor 2 (a detached process): nothing to filter
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    forwarder = threading.Thread(target=_forward, args=(read_end, os.dup(original)),
                                 name="native-log-filter", daemon=True)
    forwarder.start()
    python_stderr = sys.stderr
    if _fileno(python_stderr) == 2:
        sys.stderr = open(os.dup(original), "w", buffering=1, encoding=python_stderr.encoding,
                          errors=python_stderr.errors)
    try:
        yield
    finally:
        if sys.stderr is not python_stderr:
            sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(original, 2)  # closes the pipe's last write end: the forwarder reads its end
        os.close(original)
        forwarder.join(timeout=5)  # a child process still holding the pipe must not hang us


def _fileno(stream):
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # pytest's capture, closed or in-memory streams
        return None


def _forward(read_end, destination):
    """Copy ``read_end`` to ``destination`` line by line, without :data:`NATIVE_LOG_LINE` lines."""
    pending = b""
    with open(read_end, "rb", buffering=0) as source, open(destination, "wb") as out:
        while chunk := source.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            kept = [line + b"\n" for line in lines if not NATIVE_LOG_LINE.match(line)]
            if pending and pending[:1] not in FIRST_BYTES:
                kept.append(pending)
                pending = b""
            _write(out, b"".join(kept))
        if pending and not NATIVE_LOG_LINE.match(pending):
            _write(out, pending)


def _write(out, data):
    try:
        out.write(data)
        out.flush()
    except OSError:  # the reader went away: keep draining, or writers to the pipe would block
        pass
