"""Checks on an image that read its header only: they import no torch, so the command line can refuse a
wrong input within a second, before any model loads (gencodec.imageio reads the pixels)."""

from __future__ import annotations

import contextlib
import io
import os

from PIL import Image, UnidentifiedImageError

from .constants import MAX_SIDE
from .errors import InvalidImageError
from .image_truncation import check_not_truncated


def _one_line(text: str) -> str:
    """Collapse whitespace so a message never spans lines."""
    return " ".join(str(text).split())


def failure_reason(exc: BaseException) -> str:
    """A short, one-line description of why Pillow or the OS failed."""
    if isinstance(exc, UnidentifiedImageError):
        return "not a recognised image format"  # Pillow's own message repeats the path
    if isinstance(exc, OSError) and exc.strerror:
        return _one_line(exc.strerror)  # drop "[Errno 2]" and the repeated path
    return _one_line(str(exc)) or type(exc).__name__


def check_pixel_budget(height: int, width: int, max_pixels: int | None, what: str = "image") -> None:
    """Refuse more than `max_pixels` pixels (None: no budget)."""
    if max_pixels is not None and height * width > max_pixels:
        raise InvalidImageError(f"{what} is too large ({width}x{height} = {height * width:,} pixels; the pixel "
                                f"budget is {max_pixels:,}: raise it with max_pixels / --max-pixels)")


def check_size(height: int, width: int, max_pixels: int | None = None) -> None:
    """Reject empty images, images with a side above MAX_SIDE, and images over the pixel budget."""
    if height < 1 or width < 1:
        raise InvalidImageError(f"image is empty ({width}x{height} pixels)")
    if max(height, width) > MAX_SIDE:
        raise InvalidImageError(
            f"image is too large ({width}x{height} pixels; the largest side allowed is {MAX_SIDE})"
        )
    check_pixel_budget(height, width, max_pixels)


def check_single_frame(img: Image.Image, label: str) -> None:
    """Refuse animations and multi-page files rather than code their first frame in silence.

    A camera's MPO file counts as one picture: its first frame is the photo, by the
    format's definition, and the others are previews or the second view of a pair.
    """
    frames = getattr(img, "n_frames", 1)
    if frames > 1 and img.format != "MPO":
        raise InvalidImageError(f"image {label} has {frames} frames (an animation or a multi-page file); "
                                "gencodec codes one still picture: save the frame you want on its own first")


def check_image_file(path: str | os.PathLike | io.BytesIO, max_pixels: int | None = None) -> None:
    """Read only the header of an image file (a path or a BytesIO) and its container's structure:
    InvalidImageError if it is not one, or is empty, too large, over `max_pixels`, of many frames or cut short
    (gencodec.image_truncation). Cheap (nothing is decoded), so that the command line can fail before loading
    a model."""
    label = "<stdin>" if isinstance(path, io.BytesIO) else repr(str(path))
    if isinstance(path, io.BytesIO) and not path.getbuffer().nbytes:
        raise InvalidImageError(f"cannot read image {label}: no data")
    try:
        with open(path, "rb") if not isinstance(path, io.BytesIO) else contextlib.nullcontext(path) as file:
            check_not_truncated(file, label)
            with Image.open(file) as img:
                check_size(img.height, img.width, max_pixels)
                check_single_frame(img, label)
    except InvalidImageError:
        raise
    except Exception as exc:
        raise InvalidImageError(f"cannot read image {label}: {failure_reason(exc)}") from exc
