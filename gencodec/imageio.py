"""Reading and writing images, and moving them to and from torch tensors.

Everything the codec sees goes through :func:`load_image`, which turns any
supported input (file, bytes, stream, PIL image, numpy array) into one
canonical form: a uint8 RGB array of shape (H, W, 3). Bad input raises
:class:`~gencodec.errors.InvalidImageError` with a one-line message, so the
CLI can print it without a traceback.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from .collection import find_files
from .constants import IMAGE_SUFFIXES
from .errors import GencodecError, InvalidImageError
from .image_checks import (
    check_pixel_budget,
    check_single_frame,
    check_size,
    failure_reason,
)

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
        return _decode(lambda: Image.open(path), label, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode_bytes(bytes(source), "<bytes>", max_pixels)
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        label = repr(str(name)) if isinstance(name, (str, os.PathLike)) else "<stream>"
        try:
            data = source.read()  # read it all: stdin and pipes cannot seek, Pillow needs to
        except OSError as exc:
            raise InvalidImageError(f"cannot read image {label}: {failure_reason(exc)}") from exc
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidImageError(f"cannot read image {label}: file object is not opened in binary mode")
        return _decode_bytes(bytes(data), label, max_pixels)
    raise InvalidImageError(f"unsupported image source of type {type(source).__name__}")


def _decode_bytes(data: bytes, label: str, max_pixels: int | None = None) -> np.ndarray:
    if not data:
        raise InvalidImageError(f"cannot read image {label}: no data")
    return _decode(lambda: Image.open(io.BytesIO(data)), label, max_pixels)


def image_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) array -> float32 (1, 3, H, W) tensor in [0, 1], the layout the models take."""
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise InvalidImageError(f"expected a uint8 array of shape (H, W, 3), got {_describe(arr)}")
    x = torch.tensor(arr)  # copies: the array may be read-only (e.g. np.asarray of a PIL image)
    return x.permute(2, 0, 1).unsqueeze(0).to(torch.float32).div_(255.0).contiguous()


def tensor_to_image(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) float tensor in [0, 1] -> uint8 (H, W, 3), clamping and rounding."""
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3 or x.shape[0] != 3:
        raise InvalidImageError(f"expected a tensor of shape (1, 3, H, W) or (3, H, W), got {tuple(x.shape)}")
    x = torch.nan_to_num(x.detach().to("cpu", torch.float32), nan=0.0)  # NaN would cast to garbage
    x = torch.round(x.clamp(0.0, 1.0) * 255.0).to(torch.uint8)
    return x.permute(1, 2, 0).contiguous().numpy()


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (N, C, H, W) on the bottom and right so H and W divide by ``multiple``.

    Replicate padding keeps edge statistics natural for the codec and, unlike
    reflect padding, works when H or W is 1. Undo with :func:`crop_to`.
    """
    if x.ndim != 4:
        raise InvalidImageError(f"expected a tensor of shape (N, C, H, W), got {tuple(x.shape)}")
    if multiple < 1:
        raise InvalidImageError(f"multiple must be at least 1, got {multiple}")
    height, width = x.shape[-2:]
    pad_h = -height % multiple
    pad_w = -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


def crop_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Crop the top-left (height, width) region of (..., H, W): the inverse of pad_to_multiple."""
    if height > x.shape[-2] or width > x.shape[-1]:
        raise InvalidImageError(
            f"cannot crop a {x.shape[-1]}x{x.shape[-2]} tensor to {width}x{height}"
        )
    return x[..., :height, :width]


def save_image(arr: np.ndarray, target, format: str | None = None) -> None:
    """Write a uint8 (H, W, 3) array to a path or binary file object.

    The format comes from ``format``, else the path's suffix; file objects
    default to PNG (lossless, so a decoded image is saved exactly).
    """
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise InvalidImageError(f"expected a uint8 array of shape (H, W, 3), got {_describe(arr)}")
    img = Image.fromarray(np.ascontiguousarray(arr))
    if isinstance(target, (str, os.PathLike)):
        label = repr(str(target))
    else:
        label = "<stream>"
        format = format or "PNG"
    try:
        img.save(target, format=format)
    except (OSError, ValueError, KeyError) as exc:  # unwritable path, unknown suffix or format
        reason = "unknown image format" if isinstance(exc, KeyError) else failure_reason(exc)
        raise InvalidImageError(f"cannot write image {label}: {reason}") from exc


def _describe(obj) -> str:
    """Short description of a wrong argument for error messages."""
    if isinstance(obj, np.ndarray):
        return f"{obj.dtype} array of shape {tuple(obj.shape)}"
    return type(obj).__name__


def find_images(root) -> list[Path]:
    """Every image file under ``root``, recursively, sorted by relative path (gencodec.collection.find_files);
    GencodecError if there is none."""
    found = find_files(root, IMAGE_SUFFIXES)
    if not found:
        raise GencodecError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {str(root)!r}")
    return found
