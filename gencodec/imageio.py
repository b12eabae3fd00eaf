"""Reading and writing images, and moving them to and from torch tensors.

Everything the codec sees goes through :func:`load_image` (gencodec.image_reading,
which needs no torch), which turns any supported input (file, bytes, stream,
PIL image, numpy array) into one canonical form: a uint8 RGB array of shape
(H, W, 3). Bad input raises :class:`~gencodec.errors.InvalidImageError` with a
one-line message, so the CLI can print it without a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .collection import find_files
from .constants import IMAGE_SUFFIXES
from .errors import GencodecError, InvalidImageError
from .image_checks import failure_reason
from .image_reading import load_image

__all__ = ["load_image", "image_to_tensor", "tensor_to_image", "pad_to_multiple", "crop_to", "save_image",
           "find_images"]


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
