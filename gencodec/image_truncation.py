"""Whether an image file is cut short, seen from its container before its pixels are decoded.

Decoding finds a cut too, but only once it reaches it: seconds into a large
PNG. A PNG's chunks, a JPEG's segments and a WebP's RIFF header say where the
image data ends, so a cut shows in a few small reads (a JPEG's coded data is
scanned for its end marker, from the end). Only what decoding refuses anyway
is refused here: a file cut after its image data (a PNG without its IEND
chunk, which Pillow decodes) is left to the decoder, as is anything whose
structure this does not follow.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

from .errors import InvalidImageError

#: How much of a JPEG is read at a time while looking for its end marker.
_SCAN_BLOCK = 1 << 20
_JPEG_END = b"\xff\xd9"
_JPEG_SCAN_START = 0xDA
#: JPEG markers without a length field: TEM and the restart markers.
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def _png_is_cut(fp: BinaryIO, size: int) -> bool:
    """A chunk up to the last image data (IDAT) runs past the end of the file."""
    position, seen_data = 8, False  # after the signature
    while position + 8 <= size:
        fp.seek(position)
        length, kind = struct.unpack(">I4s", fp.read(8))
        if kind == b"IEND":
            return False
        end = position + 12 + length  # length and type, data, CRC
        if end > size:
            return kind == b"IDAT" or not seen_data
        seen_data = seen_data or kind == b"IDAT"
        position = end
    return not seen_data


def _jpeg_scan_start(fp: BinaryIO, size: int) -> int | None:
    """Where the first scan's coded data starts, after the segments before it; None where the structure is
    not one followed here."""
    position = 2  # after SOI
    while position + 4 <= size:
        fp.seek(position)
        fill, marker, length = struct.unpack(">BBH", fp.read(4))
        if fill != 0xFF or marker == 0xD9:  # not a marker, or the end before any scan
            return None
        if marker == 0xFF:  # a fill byte before a marker
            position += 1
        elif marker in _JPEG_STANDALONE:
            position += 2
        elif marker == _JPEG_SCAN_START:
            return position + 2 + length
        else:
            position += 2 + length
    return size  # cut among the segments before the first scan


def _has_end_marker(fp: BinaryIO, start: int, size: int) -> bool:
    """Whether EOI (FF D9) lies between `start` and the end. In coded data an FF byte is followed only by 00
    or a restart marker, so FF D9 there is the end marker. Read from the end back: a whole file has it last."""
    stop = size
    while stop > start:
        begin = max(start, stop - _SCAN_BLOCK)
        fp.seek(begin)
        if _JPEG_END in fp.read(stop - begin + (1 if stop < size else 0)):  # +1: a marker across two blocks
            return True
        stop = begin
    return False


def _jpeg_is_cut(fp: BinaryIO, size: int) -> bool:
    """No end marker after the first scan's coded data (Pillow refuses such a file too)."""
    start = _jpeg_scan_start(fp, size)
    return start is not None and not _has_end_marker(fp, start, size)


def _webp_is_cut(fp: BinaryIO, size: int) -> bool:
    """The RIFF header claims more bytes than the file has."""
    fp.seek(0)
    riff, length, kind = struct.unpack("<4sI4s", fp.read(12))
    return riff == b"RIFF" and kind == b"WEBP" and 8 + length > size


def _format(fp: BinaryIO) -> str | None:
    """PNG, JPEG or WebP from the file's first bytes; None for any other."""
    fp.seek(0)
    head = fp.read(12)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return None


_CUT = {"PNG": _png_is_cut, "JPEG": _jpeg_is_cut, "WebP": _webp_is_cut}


def check_not_truncated(fp: BinaryIO, label: str) -> None:
    """InvalidImageError if the image file open in `fp` (seekable, binary, the image starting at its first
    byte) is a PNG, JPEG or WebP cut short in its image data. Its position is kept; a structure that cannot
    be read is left to the decoder."""
    position = fp.tell()
    try:
        fmt = _format(fp)
        cut = fmt is not None and _CUT[fmt](fp, fp.seek(0, os.SEEK_END))
    except (OSError, ValueError, struct.error):
        cut = False
    finally:
        fp.seek(position)
    if cut:
        raise InvalidImageError(f"cannot read image {label}: the file is truncated (its {fmt} image data ends "
                                "early)")
