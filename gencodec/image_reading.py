"""Reading any image into the one form the codec sees: a uint8 RGB array of shape (H, W, 3).

It imports no torch, so that the command line can decode an input in full,
and refuse a broken one, before any model loads; the decoded array is what
the codec then compresses (gencodec.imageio re-exports load_image). Bad input
raises :class:`~gencodec.errors.InvalidImageError` with a one-line message.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import InvalidImageError
from .image_checks import (
    check_pixel_budget,
    check_single_frame,
    check_size,
    failure_reason,
)
from .image_truncation import check_not_truncated

_FLOAT_DTYPES = (np.float16, np.float32, np.float64)


def _composite_over_white(rgba: np.ndarray) -> np.ndarray:
    """Flatten uint8 (H, W, 4) onto a white background; integer maths keeps memory low."""
    rgb = rgba[..., :3].astype(np.uint32)
    alpha = rgba[..., 3:].astype(np.uint32)
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255  # +127: round to nearest
    return out.astype(np.uint8)


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    """Validate a numpy image and convert it to uint8 RGB (see load_image for the rules)."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise InvalidImageError(
            "expected an array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
            f"got shape {tuple(arr.shape)}"
        )
    check_size(arr.shape[0], arr.shape[1])

    if arr.dtype == np.uint8:
        out = arr
    elif arr.dtype == np.bool_:
        out = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        # x/257 maps 0..65535 exactly onto 0..255 (65535 = 255 * 257); never a tie, 257 is odd.
        out = np.round(arr / 257.0).astype(np.uint8)
    elif arr.dtype in _FLOAT_DTYPES:
        if not np.isfinite(arr).all():
            raise InvalidImageError("image array contains NaN or infinite values")
        out = np.round(np.clip(arr.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    else:
        raise InvalidImageError(
            f"unsupported array dtype {arr.dtype} (expected uint8, uint16, bool or float in [0, 1])"
        )

    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    elif out.shape[2] == 4:
        out = _composite_over_white(out)
    return np.ascontiguousarray(out)


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    """Convert a loaded PIL image of any mode to uint8 RGB, handling modes Pillow's convert gets wrong."""
    mode = img.mode
    if mode.startswith("I;16"):
        # Pillow's convert("RGB") clips 16-bit values at 255 instead of scaling them.
        return _array_to_rgb(np.asarray(img).astype(np.uint16))
    if mode == "I":
        # 32-bit integers; older Pillow opens 16-bit PNGs like this, so read them as 0..65535.
        return _array_to_rgb(np.clip(np.asarray(img), 0, 65535).astype(np.uint16))
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise InvalidImageError("image contains NaN or infinite values")
        if arr.max() > 1.0:
            arr = arr / 255.0  # treat as 0..255; clipping happens in _array_to_rgb
        return _array_to_rgb(arr)
    if mode == "La":
        img = img.convert("LA")  # Pillow cannot convert premultiplied 'La' straight to RGBA
    if _has_transparency(img):
        return _array_to_rgb(np.asarray(img.convert("RGBA")))
    return _array_to_rgb(np.asarray(img.convert("RGB")))


def _has_transparency(img: Image.Image) -> bool:
    """Alpha band, RGBA palette, or 'transparency' info (palette index or tRNS colour in L/RGB).

    Same test as Image.has_transparency_data, which needs Pillow >= 10.1.
    """
    if img.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in img.info:
        return True
    return img.mode == "P" and img.palette is not None and img.palette.mode.endswith("A")


def _decode(opener, label: str, max_pixels: int | None = None) -> np.ndarray:
    """Open, fully decode, orient and convert a PIL image; any decode failure becomes InvalidImageError."""
    try:
        with opener() as img:
            check_size(img.height, img.width, max_pixels)  # from the header, before decoding a huge image
            check_single_frame(img, label)
            img.load()  # force a full decode so truncated files fail here, not later
            img = ImageOps.exif_transpose(img)
            return _pil_to_rgb(img)
    except InvalidImageError:
        raise
    except Exception as exc:  # Pillow's decoders raise many types (OSError, SyntaxError, struct.error, ...)
        raise InvalidImageError(f"cannot read image {label}: {failure_reason(exc)}") from exc


def load_image(source, max_pixels: int | None = None) -> np.ndarray:
    """Load an image as a uint8 RGB array of shape (H, W, 3).

    ``source`` may be a path (str or Path), encoded image bytes, a binary file
    object, a ``PIL.Image.Image`` or a numpy array. EXIF orientation is applied
    to files, bytes and PIL images. Any Pillow mode is converted to RGB;
    16-bit data ('I;16*', and 'I' clipped to 0..65535, uint16 arrays) is scaled
    by x/257, float data ('F' and float arrays) is taken as 0..1 (or 0..255 for
    'F' images whose maximum exceeds 1) and clipped.

    Images with an alpha channel or transparency are composited over WHITE.

    Numpy arrays may have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) and
    dtype uint8, uint16, bool or float16/32/64 in [0, 1].

    Raises InvalidImageError (one-line message) for anything unreadable, empty,
    larger than MAX_SIDE on either side, of more pixels than `max_pixels`
    (None: no budget; checked from a file's header, before it is decoded), or
    of more than one frame (an animation or a multi-page file).
    """
    if isinstance(source, np.ndarray):
        if source.ndim >= 2:
            check_pixel_budget(source.shape[0], source.shape[1], max_pixels)
        return _array_to_rgb(source)
    if isinstance(source, Image.Image):
        return _decode(lambda: contextlib.nullcontext(source), "<PIL image>", max_pixels)  # not ours to close
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = repr(str(source))  # repr keeps odd characters (even newlines) on one line
        if not path.exists():
            raise InvalidImageError(f"no such file: {label}")
        try:
            file = open(path, "rb")
        except OSError as exc:
            raise InvalidImageError(f"cannot read image {label}: {failure_reason(exc)}") from exc
        with file:
            check_not_truncated(file, label)  # in milliseconds, where decoding a large file takes seconds
            return _decode(lambda: Image.open(file), label, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_bytes(bytes(source), "<bytes>", max_pixels)
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        label = repr(str(name)) if isinstance(name, (str, os.PathLike)) else "<stream>"
        try:
            data = source.read()  # read it all: stdin and pipes cannot seek, Pillow needs to
        except OSError as exc:
            raise InvalidImageError(f"cannot read image {label}: {failure_reason(exc)}") from exc
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidImageError(f"cannot read image {label}: file object is not opened in binary mode")
        return decode_bytes(bytes(data), label, max_pixels)
    raise InvalidImageError(f"unsupported image source of type {type(source).__name__}")


def decode_bytes(data: bytes, label: str, max_pixels: int | None = None) -> np.ndarray:
    """load_image of an encoded image's bytes, named `label` in its errors ('<stdin>', say)."""
    if not data:
        raise InvalidImageError(f"cannot read image {label}: no data")
    stream = io.BytesIO(data)
    check_not_truncated(stream, label)
    return _decode(lambda: Image.open(stream), label, max_pixels)
