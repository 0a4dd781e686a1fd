"""The package's own error type."""

import contextlib


class NeuronEditError(ValueError):
    """Bad input or a misuse of the API. The message names the problem and the fix.

    A subclass of ``ValueError``, so callers that catch ``ValueError`` keep working.
    """


@contextlib.contextmanager
def foreign_errors(message):
    """Turn any other library's exception raised inside the block into one NeuronEditError.

    ``message`` is formatted with ``kind`` (the exception's type name) and ``error`` (its
    text, at most 300 characters). NeuronEditErrors pass through unchanged; used where
    readers and loaders hand damaged files to libraries that each raise their own types.

    Example:
        >>> try:
        ...     with foreign_errors("bad file ({kind}: {error})"):
        ...         int("x")
        ... except NeuronEditError as error:
        ...     print(error)
        bad file (ValueError: invalid literal for int() with base 10: 'x')
    """
    try:
        yield
    except NeuronEditError:
        raise
    except Exception as error:  # each library raises its own types
        raise NeuronEditError(message.format(kind=type(error).__name__,
                                             error=str(error)[:300])) from None
