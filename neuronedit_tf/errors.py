"""The package's own error type."""


class NeuronEditError(ValueError):
    """Bad input or a misuse of the API. The message names the problem and the fix.

    A subclass of ``ValueError``, so callers that catch ``ValueError`` keep working.
    """
