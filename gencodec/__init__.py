"""gencodec: generative image compression at extreme low bitrates.

    import gencodec
    codec = gencodec.load("path/to/model")
    data = codec.compress("photo.jpg", level=3)
    image = codec.decompress(data)
"""

from __future__ import annotations

import os

from .codec import Codec, FileInfo
from .errors import (
    CorruptFileError,
    GencodecError,
    InvalidImageError,
    ModelMismatchError,
    ModelNotFoundError,
    NotAGencodecFileError,
    UnsupportedVersionError,
)
from .model import GenCodecModel
from .pretrained import DEFAULT_MODEL, UNTRAINED, load_model

__version__ = "0.1.0"


def load(name_or_path: str | os.PathLike = DEFAULT_MODEL, device: str | None = None) -> Codec:
    """A Codec for a model folder, a shipped model's name, or 'untrained'."""
    return Codec(load_model(name_or_path), device=device)


__all__ = [
    "Codec", "FileInfo", "GenCodecModel", "load", "load_model", "DEFAULT_MODEL", "UNTRAINED",
    "GencodecError", "InvalidImageError", "CorruptFileError", "NotAGencodecFileError",
    "UnsupportedVersionError", "ModelMismatchError", "ModelNotFoundError", "__version__",
]
