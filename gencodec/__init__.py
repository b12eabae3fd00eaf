"""gencodec: generative image compression at extreme low bitrates.

    import gencodec
    codec = gencodec.load("path/to/model")
    data = codec.compress("photo.jpg", level=3)
    image = codec.decompress(data)

torch and diffusers load on first use, so `gencodec --help` and `gencodec info`
start quickly.
"""

from __future__ import annotations

import importlib
import os

from .constants import DEFAULT_MAX_PIXELS, DEFAULT_MODEL, UNTRAINED
from .errors import (
    CorruptFileError,
    GencodecError,
    InvalidImageError,
    ModelMismatchError,
    ModelNotFoundError,
    NotAGencodecFileError,
    UnsupportedVersionError,
)

__version__ = "0.1.0"

_LAZY = {"Codec": ".codec", "FileInfo": ".codec", "GenCodecModel": ".model",
         "LatentCodecModel": ".latent_model", "load_model": ".pretrained"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'gencodec' has no attribute {name!r}")


def load(name_or_path: str | os.PathLike = DEFAULT_MODEL, device: str | None = None,
         max_pixels: int | None = DEFAULT_MAX_PIXELS, search_steps: int | None = None):
    """A Codec for a model folder, a shipped model's name, or 'untrained'; `max_pixels` is its pixel
    budget (None: none) and `search_steps` its encoder search's steps (None: the model's), see Codec."""
    from .codec import Codec
    from .pretrained import load_model
    return Codec(load_model(name_or_path), device=device, max_pixels=max_pixels, search_steps=search_steps)


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "Codec", "FileInfo", "GenCodecModel", "LatentCodecModel", "load", "load_model", "DEFAULT_MODEL", "UNTRAINED",
    "GencodecError", "InvalidImageError", "CorruptFileError", "NotAGencodecFileError",
    "UnsupportedVersionError", "ModelMismatchError", "ModelNotFoundError", "__version__",
]
