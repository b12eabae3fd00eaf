"""Errors that gencodec raises on bad input.

Every error carries a one-line message meant for a person; the CLI prints it
as ``gencodec: error: <message>`` and exits non-zero, without a traceback.
"""


class GencodecError(Exception):
    """Base class of every error gencodec raises on purpose."""


class InvalidImageError(GencodecError):
    """The input is not an image gencodec can read (missing, unreadable, wrong shape)."""


class CorruptFileError(GencodecError):
    """A compressed file failed an integrity check (truncated, altered, or not ours)."""


class NotAGencodecFileError(CorruptFileError):
    """The data does not start with the gencodec magic byte."""


class UnsupportedVersionError(GencodecError):
    """The file was written by a format version this build cannot read."""


class ModelMismatchError(GencodecError):
    """The file was encoded with a different model than the one decoding it."""


class ModelNotFoundError(GencodecError):
    """A model name or folder could not be resolved to a saved model."""
