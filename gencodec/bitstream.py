"""The gencodec file container: a fixed header, the ANS payload, a checksum.

Layout of a compressed file (all fields big-endian, bits packed most
significant first):

=============  ==========  ==================================================
field          size        meaning
=============  ==========  ==================================================
magic          8 bits      ``MAGIC`` = 0xC5
version        4 bits      ``FORMAT_VERSION`` = 2
level          4 bits      rate level, 0..15
fingerprint    16 bits     low 16 bits of the model fingerprint
width - 1      14 bits     image width, 1..16384
height - 1     14 bits     image height, 1..16384
flags          4 bits      reserved, must be 0
payload        4*k bytes   the ANS stream, k >= 1 whole 32-bit words, sealed
                           with width and height (gencodec.entropy.ans)
checksum       16 bits     CRC-16 of length + header + payload (see crc16)
=============  ==========  ==================================================

The header is ``HEADER_BYTES`` = 8 bytes (64 bits); the checksum is
``CHECKSUM_BYTES`` = 2 bytes, computed by :func:`crc16` over header + payload
and stored big-endian.  A valid
file is therefore at least 14 bytes long and its length minus 10 is a multiple
of 4.

:func:`unpack_file` (and :func:`peek_header`) check, in this order:

1. the first byte is ``MAGIC`` (else :class:`NotAGencodecFileError`);
2. the length is valid (else :class:`CorruptFileError`);
3. the checksum matches (else :class:`CorruptFileError`);
4. the version is ``FORMAT_VERSION`` (else :class:`UnsupportedVersionError`);
5. the reserved flags are 0 (else :class:`CorruptFileError`).

A CRC-16 detects every error burst of up to 16 bits, so any single changed
byte is always caught.
"""

from __future__ import annotations

import binascii
import operator
from dataclasses import dataclass

from .constants import MAX_SIDE
from .errors import CorruptFileError, NotAGencodecFileError, UnsupportedVersionError

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "HEADER_BYTES",
    "CHECKSUM_BYTES",
    "MAX_SIDE",
    "MAX_LEVEL",
    "MIN_PAYLOAD_BYTES",
    "Header",
    "pack_file",
    "unpack_file",
    "peek_header",
    "crc16",
]

MAGIC = 0xC5
FORMAT_VERSION = 2
# Version 1 streams had no seal (gencodec.entropy.ans): an empty or forged one could decode.
_RETIRED_VERSIONS = {1: "an older gencodec made it, before streams were sealed; compress the image again"}
HEADER_BYTES = 8
CHECKSUM_BYTES = 2
MAX_LEVEL = 15
MIN_PAYLOAD_BYTES = 4  # one word: an empty stream is never valid (gencodec.entropy.ans)
_WORD_BYTES = 4

# Bit positions within the 64-bit header word (shift of each field's LSB).
_SHIFT_MAGIC = 56
_SHIFT_VERSION = 52
_SHIFT_LEVEL = 48
_SHIFT_FINGERPRINT = 32
_SHIFT_WIDTH = 18
_SHIFT_HEIGHT = 4
_SHIFT_FLAGS = 0

_MAX_VERSION = 0xF
_MAX_FINGERPRINT = 0xFFFF
_SIDE_MASK = 0x3FFF
_FLAGS_MASK = 0xF


def crc16(data: bytes) -> int:
    """The file checksum: CRC-16/CCITT (poly 0x1021) over the length, then ``data``, inverted.

    Folding the length in first and inverting the result closes a hole of the
    plain CRC: crc(M + crc(M)) is 0 and zero bytes keep it there, so a file with
    zero words appended would otherwise still pass.
    """
    seed = binascii.crc_hqx(len(data).to_bytes(4, "big"), 0xFFFF)
    return binascii.crc_hqx(data, seed) ^ 0xFFFF


def _as_int(name: str, value) -> int:
    if isinstance(value, bool):
        raise ValueError(f"Header.{name} must be an integer, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(
            f"Header.{name} must be an integer, got {type(value).__name__}"
        ) from None


def _check_range(name: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise ValueError(f"Header.{name} must be in {lo}..{hi}, got {value}")


@dataclass(frozen=True)
class Header:
    """The fixed 8-byte header of a gencodec file.

    Out-of-range fields raise :class:`ValueError` (a programming error, not a
    file error).  ``version`` may be any 4-bit value so that headers of other
    format versions can be represented; :func:`unpack_file` rejects those.
    """

    level: int
    fingerprint: int
    width: int
    height: int
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        for name in ("level", "fingerprint", "width", "height", "version"):
            object.__setattr__(self, name, _as_int(name, getattr(self, name)))
        _check_range("level", self.level, 0, MAX_LEVEL)
        _check_range("fingerprint", self.fingerprint, 0, _MAX_FINGERPRINT)
        _check_range("width", self.width, 1, MAX_SIDE)
        _check_range("height", self.height, 1, MAX_SIDE)
        _check_range("version", self.version, 0, _MAX_VERSION)

    def pack(self) -> bytes:
        """The header as exactly ``HEADER_BYTES`` bytes (flags are 0)."""
        word = (
            (MAGIC << _SHIFT_MAGIC)
            | (self.version << _SHIFT_VERSION)
            | (self.level << _SHIFT_LEVEL)
            | (self.fingerprint << _SHIFT_FINGERPRINT)
            | ((self.width - 1) << _SHIFT_WIDTH)
            | ((self.height - 1) << _SHIFT_HEIGHT)
            | (0 << _SHIFT_FLAGS)
        )
        return word.to_bytes(HEADER_BYTES, "big")

    @classmethod
    def unpack(cls, b: bytes) -> "Header":
        """Parse ``HEADER_BYTES`` bytes.

        Checks the length, magic byte and reserved flags; does not check the
        version (see :func:`unpack_file`).
        """
        b = bytes(b)
        if len(b) != HEADER_BYTES:
            raise CorruptFileError(
                f"file is truncated or damaged (header is {len(b)} bytes, expected {HEADER_BYTES})"
            )
        word = int.from_bytes(b, "big")
        if (word >> _SHIFT_MAGIC) & 0xFF != MAGIC:
            raise NotAGencodecFileError("not a gencodec file (bad magic byte)")
        flags = (word >> _SHIFT_FLAGS) & _FLAGS_MASK
        if flags != 0:
            raise CorruptFileError(
                f"file is corrupted (reserved header flags are {flags:#x}, expected 0)"
            )
        return cls(
            level=(word >> _SHIFT_LEVEL) & 0xF,
            fingerprint=(word >> _SHIFT_FINGERPRINT) & 0xFFFF,
            width=((word >> _SHIFT_WIDTH) & _SIDE_MASK) + 1,
            height=((word >> _SHIFT_HEIGHT) & _SIDE_MASK) + 1,
            version=(word >> _SHIFT_VERSION) & 0xF,
        )


def pack_file(header: Header, payload: bytes) -> bytes:
    """Assemble header + payload + CRC-16 into the bytes of a file."""
    if not isinstance(header, Header):
        raise TypeError(f"header must be a Header, got {type(header).__name__}")
    payload = bytes(payload)
    if len(payload) < MIN_PAYLOAD_BYTES or len(payload) % _WORD_BYTES != 0:
        raise ValueError(
            f"payload must be one or more whole {_WORD_BYTES}-byte words, "
            f"got {len(payload)} bytes"
        )
    body = header.pack() + payload
    return body + crc16(body).to_bytes(CHECKSUM_BYTES, "big")


def _check(data: bytes) -> Header:
    """Run every check on ``data`` in the documented order; return its header."""
    if len(data) == 0 or data[0] != MAGIC:
        raise NotAGencodecFileError("not a gencodec file (bad magic byte)")
    n = len(data)
    overhead = HEADER_BYTES + CHECKSUM_BYTES
    if n < overhead + MIN_PAYLOAD_BYTES or (n - overhead) % _WORD_BYTES != 0:
        raise CorruptFileError(
            f"file is truncated or damaged ({n} bytes is not a valid length)"
        )
    body = data[:-CHECKSUM_BYTES]
    stored = int.from_bytes(data[-CHECKSUM_BYTES:], "big")
    if crc16(body) != stored:
        raise CorruptFileError("file is corrupted (checksum mismatch)")
    version = data[1] >> 4
    if version in _RETIRED_VERSIONS:
        raise UnsupportedVersionError(f"file format version {version} is no longer read: "
                                      f"{_RETIRED_VERSIONS[version]}")
    if version != FORMAT_VERSION:
        raise UnsupportedVersionError(
            f"file format version {version} is not supported by this gencodec "
            f"(reads version {FORMAT_VERSION})"
        )
    return Header.unpack(data[:HEADER_BYTES])


def unpack_file(data: bytes) -> tuple[Header, bytes]:
    """Check ``data`` and split it into its header and ANS payload.

    Raises :class:`NotAGencodecFileError`, :class:`CorruptFileError` or
    :class:`UnsupportedVersionError` (see the module docstring for the order).
    """
    data = bytes(data)
    header = _check(data)
    return header, data[HEADER_BYTES:-CHECKSUM_BYTES]


def peek_header(data: bytes) -> Header:
    """The header of a file (for ``gencodec info``), after the same checks."""
    return _check(bytes(data))
