"""Tests of the gencodec file container (gencodec.bitstream)."""

from __future__ import annotations

import binascii
import random

import pytest

from gencodec.bitstream import (
    CHECKSUM_BYTES,
    FORMAT_VERSION,
    HEADER_BYTES,
    MAGIC,
    MAX_LEVEL,
    MAX_SIDE,
    Header,
    crc16,
    pack_file,
    peek_header,
    unpack_file,
)
from gencodec.errors import (
    CorruptFileError,
    NotAGencodecFileError,
    UnsupportedVersionError,
)


def _payload(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def _with_crc(body: bytes) -> bytes:
    """Append a correct CRC to a hand-made header + payload."""
    return body + crc16(body).to_bytes(2, "big")


def _sample_file(seed: int = 0, payload_len: int = 40) -> bytes:
    rng = random.Random(seed)
    header = Header(level=7, fingerprint=0xBEEF, width=768, height=512)
    return pack_file(header, _payload(rng, payload_len))


def _expect_error(exc_type, data: bytes) -> BaseException:
    """Both unpack_file and peek_header must raise ``exc_type``; return the error."""
    with pytest.raises(exc_type) as info:
        unpack_file(data)
    with pytest.raises(exc_type):
        peek_header(data)
    _assert_one_line(info.value)
    return info.value


def _assert_one_line(err: BaseException) -> None:
    msg = str(err)
    assert msg
    assert "\n" not in msg and "\r" not in msg


# --- constants and header ----------------------------------------------------


EXTREMES = [
    Header(level=0, fingerprint=0, width=1, height=1),
    Header(level=15, fingerprint=0xFFFF, width=16384, height=16384),
    Header(level=0, fingerprint=0xFFFF, width=1, height=16384),
    Header(level=15, fingerprint=0, width=16384, height=1),
    Header(level=8, fingerprint=0x8001, width=8192, height=8193),
]


def _random_headers(n: int, seed: int = 1) -> list[Header]:
    rng = random.Random(seed)
    return [
        Header(
            level=rng.randint(0, MAX_LEVEL),
            fingerprint=rng.randint(0, 0xFFFF),
            width=rng.randint(1, MAX_SIDE),
            height=rng.randint(1, MAX_SIDE),
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("header", EXTREMES + _random_headers(200))
def test_header_round_trip(header):
    packed = header.pack()
    assert isinstance(packed, bytes)
    assert len(packed) == HEADER_BYTES == 8
    assert packed[0] == MAGIC
    assert packed[1] >> 4 == FORMAT_VERSION
    assert packed[-1] & 0xF == 0  # flags
    assert Header.unpack(packed) == header


def test_header_bit_layout():
    h = Header(level=0xA, fingerprint=0x1234, width=0x1ABC + 1, height=0x2DEF + 1)
    word = int.from_bytes(h.pack(), "big")
    assert word >> 56 == 0xC5
    assert (word >> 52) & 0xF == FORMAT_VERSION == 2
    assert (word >> 48) & 0xF == 0xA
    assert (word >> 32) & 0xFFFF == 0x1234
    assert (word >> 18) & 0x3FFF == 0x1ABC
    assert (word >> 4) & 0x3FFF == 0x2DEF
    assert word & 0xF == 0


def test_file_round_trip():
    rng = random.Random(2)
    for header in EXTREMES + _random_headers(50, seed=3):
        for n in (4, 8, 40, 1024):
            payload = _payload(rng, n)
            data = pack_file(header, payload)
            assert len(data) == 8 + n + 2  # header, payload, CRC-16
            assert data[:HEADER_BYTES] == header.pack()
            got_header, got_payload = unpack_file(data)
            assert got_header == header
            assert got_payload == payload
            assert peek_header(data) == header
            # bytearray / memoryview input works too
            assert unpack_file(bytearray(data)) == (header, payload)
            assert peek_header(memoryview(data)) == header


def test_file_checksum_covers_length_and_body():
    data = _sample_file()
    body = data[:-2]
    seed = binascii.crc_hqx(len(body).to_bytes(4, "big"), 0xFFFF)
    assert int.from_bytes(data[-2:], "big") == binascii.crc_hqx(body, seed) ^ 0xFFFF


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(level=-1, fingerprint=0, width=1, height=1),
        dict(level=16, fingerprint=0, width=1, height=1),
        dict(level=0, fingerprint=-1, width=1, height=1),
        dict(level=0, fingerprint=0x10000, width=1, height=1),
        dict(level=0, fingerprint=0, width=0, height=1),
        dict(level=0, fingerprint=0, width=16385, height=1),
        dict(level=0, fingerprint=0, width=1, height=0),
        dict(level=0, fingerprint=0, width=1, height=16385),
        dict(level=0, fingerprint=0, width=1, height=1, version=16),
        dict(level=0, fingerprint=0, width=1, height=1, version=-1),
        dict(level=1.5, fingerprint=0, width=1, height=1),
        dict(level=True, fingerprint=0, width=1, height=1),
        dict(level=0, fingerprint="1", width=1, height=1),
    ],
)
def test_header_validation(kwargs):
    with pytest.raises(ValueError):
        Header(**kwargs)


def test_header_is_frozen():
    h = Header(level=1, fingerprint=2, width=3, height=4)
    with pytest.raises(Exception):
        h.level = 5  # type: ignore[misc]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7, 41])
def test_pack_file_rejects_bad_payload_length(n):
    h = Header(level=1, fingerprint=2, width=3, height=4)
    with pytest.raises(ValueError):
        pack_file(h, b"\x00" * n)


def test_header_unpack_rejects_bad_input():
    good = Header(level=1, fingerprint=2, width=3, height=4).pack()
    with pytest.raises(CorruptFileError):
        Header.unpack(good[:7])
    with pytest.raises(NotAGencodecFileError):
        Header.unpack(b"\x00" + good[1:])
    with pytest.raises(CorruptFileError):
        Header.unpack(good[:7] + bytes([good[7] | 0x1]))


# --- corruption detection ----------------------------------------------------


def test_every_truncation_is_detected():
    data = _sample_file(seed=4, payload_len=40)
    for n in range(len(data)):
        err = _expect_error(CorruptFileError, data[:n])
        if n == 0:
            assert isinstance(err, NotAGencodecFileError)


def test_truncation_messages():
    data = _sample_file(seed=5, payload_len=40)
    err = _expect_error(CorruptFileError, data[:13])
    assert str(err) == "file is truncated or damaged (13 bytes is not a valid length)"
    err = _expect_error(CorruptFileError, data[:-1])
    assert "is not a valid length" in str(err)
    # a length that is valid but cut off: caught by the checksum
    err = _expect_error(CorruptFileError, data[:-4])
    assert str(err) == "file is corrupted (checksum mismatch)"


def test_appended_bytes_are_detected():
    data = _sample_file(seed=6)
    extras = (b"\x00", b"\x00" * 2, b"\xff" * 4, b"\xff" * 8, data[-4:], b"\x01\x00\x00\x00")
    for extra in extras:
        _expect_error(CorruptFileError, data + extra)


def test_appended_zero_words_are_detected():
    """A plain CRC-16 would accept a valid file followed by zero words, since
    crc(M + crc(M)) == 0; the length-seeded, inverted checksum must not."""
    data = _sample_file(seed=6)
    for words in (1, 2, 3):
        with pytest.raises(CorruptFileError):
            unpack_file(data + b"\x00" * (4 * words))


def test_every_single_byte_change_is_detected():
    rng = random.Random(7)
    cases = 0
    for seed in range(4):
        data = _sample_file(seed=100 + seed, payload_len=40)
        unpack_file(data)  # sanity: the original is accepted
        for pos in range(len(data)):
            old = data[pos]
            deltas = {0x01, 0x80, 0xFF} | {rng.randint(1, 255) for _ in range(3)}
            for delta in deltas:
                bad = bytearray(data)
                bad[pos] = old ^ delta
                exc = NotAGencodecFileError if pos == 0 else CorruptFileError
                with pytest.raises(exc) as info:
                    unpack_file(bytes(bad))
                _assert_one_line(info.value)
                cases += 1
    assert cases >= 1000


def test_wrong_magic():
    data = _sample_file()
    for first in (0x00, 0xC4, 0xC6, 0xFF, 0x89):
        err = _expect_error(NotAGencodecFileError, bytes([first]) + data[1:])
        assert str(err) == "not a gencodec file (bad magic byte)"
    # bad magic wins over a bad length
    _expect_error(NotAGencodecFileError, b"\x89PNG\r\n\x1a\n")
    _expect_error(NotAGencodecFileError, b"")
    _expect_error(NotAGencodecFileError, b"\x00")


def test_unsupported_version():
    rng = random.Random(8)
    header = Header(level=3, fingerprint=0x1234, width=64, height=48, version=3)
    data = _with_crc(header.pack() + _payload(rng, 16))
    err = _expect_error(UnsupportedVersionError, data)
    assert not isinstance(err, CorruptFileError)
    assert str(err) == (
        "file format version 3 is not supported by this gencodec (reads version 2)"
    )
    retired = Header(level=3, fingerprint=0x1234, width=64, height=48, version=1)
    err = _expect_error(UnsupportedVersionError, pack_file(retired, b"abcd"))
    assert str(err).startswith("file format version 1 is no longer read: an older gencodec made it")
    # pack_file itself also happily writes other versions; the reader refuses them
    _expect_error(UnsupportedVersionError, pack_file(header, b"abcd"))
    for version in (0, 15):
        h = Header(level=0, fingerprint=0, width=1, height=1, version=version)
        _expect_error(UnsupportedVersionError, pack_file(h, b"abcd"))


def test_version_checked_after_checksum():
    header = Header(level=3, fingerprint=0x1234, width=64, height=48, version=3)
    data = bytearray(_with_crc(header.pack() + b"\x00" * 8))
    data[-1] ^= 0x01
    err = _expect_error(CorruptFileError, bytes(data))
    assert "checksum" in str(err)


@pytest.mark.parametrize("flags", [1, 2, 8, 15])
def test_nonzero_flags(flags):
    header = Header(level=3, fingerprint=0x1234, width=64, height=48)
    raw = bytearray(header.pack())
    raw[7] |= flags
    data = _with_crc(bytes(raw) + b"\x01\x02\x03\x04")
    err = _expect_error(CorruptFileError, data)
    assert not isinstance(err, NotAGencodecFileError)
    assert "flags" in str(err)


def test_an_empty_payload_is_never_a_file():
    """A sealed ANS stream is never empty (gencodec.entropy.ans): a header and checksum alone are refused,
    even with the checksum right."""
    h = Header(level=0, fingerprint=7, width=5, height=9)
    with pytest.raises(ValueError, match="one or more whole 4-byte words, got 0 bytes"):
        pack_file(h, b"")
    err = _expect_error(CorruptFileError, _with_crc(h.pack()))
    assert "10 bytes is not a valid length" in str(err)
