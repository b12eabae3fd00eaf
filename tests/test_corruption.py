"""Damaged files are refused with a clear error, never decoded into a wrong image."""

from __future__ import annotations

import random

import pytest

import gencodec
from gencodec import bitstream
from gencodec.errors import GencodecError

from .conftest import smooth_image


def _decode_outcome(codec, data) -> str:
    """'ok' if the data decodes, else the error's class name; any other exception fails the test."""
    try:
        codec.decompress(data)
    except GencodecError as exc:
        assert "\n" not in str(exc)
        return type(exc).__name__
    return "ok"


@pytest.fixture(scope="module")
def sample_files(rich_codec):
    files = [rich_codec.compress(smooth_image(64, 64, seed=s), level=s % 3) for s in range(3)]
    assert all(_decode_outcome(rich_codec, f) == "ok" for f in files)
    return files


def test_every_truncation_is_detected(rich_codec, sample_files):
    cases = 0
    for data in sample_files:
        for n in range(len(data)):
            assert _decode_outcome(rich_codec, data[:n]) != "ok", f"truncation to {n} bytes decoded"
            cases += 1
    assert cases >= 300


def test_random_single_byte_changes_are_detected(rich_codec, sample_files, monkeypatch):
    """1,500 random one-byte changes (position and new value), each refused by the container's
    checks (magic byte, CRC-16) before any of them reaches the entropy decoder."""
    latent_codec = rich_codec.model.latent_codec
    entropy_decodes = []
    original = latent_codec.decode

    def counted(*args, **kwargs):
        entropy_decodes.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(latent_codec, "decode", counted)
    assert _decode_outcome(rich_codec, sample_files[0]) == "ok" and len(entropy_decodes) == 1  # counted
    entropy_decodes.clear()
    rng = random.Random(0)
    missed = 0
    for i in range(1500):
        data = bytearray(sample_files[i % len(sample_files)])
        pos = rng.randrange(len(data))
        data[pos] = (data[pos] + rng.randrange(1, 256)) % 256
        missed += _decode_outcome(rich_codec, bytes(data)) == "ok"
    assert missed == 0
    assert entropy_decodes == []


def test_damage_behind_a_valid_checksum_is_mostly_caught_by_the_ans_stream(rich_codec, sample_files):
    """Defence in depth: with the checksum recomputed (as if it had collided), the
    entropy decoder's end-of-stream check alone still refuses most damaged payloads."""
    rng = random.Random(1)
    caught = total = 0
    for i in range(300):
        data = bytearray(sample_files[i % len(sample_files)])
        body = data[: -bitstream.CHECKSUM_BYTES]
        pos = rng.randrange(bitstream.HEADER_BYTES, len(body))
        body[pos] ^= 1 << rng.randrange(8)
        forged = bytes(body) + bitstream.crc16(bytes(body)).to_bytes(2, "big")
        caught += _decode_outcome(rich_codec, forged) != "ok"
        total += 1
    assert caught / total > 0.9


@pytest.fixture(scope="module", params=["latent", "pixel"])  # the pixel model codes z^ with its context
def shipped(request):
    return gencodec.load(request.param, device="cpu", max_pixels=None)  # no pixel budget: the stream's own bound


def _payloads(rng: random.Random):
    """Hostile payloads of 4 to 88 bytes: random words, words of all ones, zeros but for a last word."""
    for words in (1, 2, 5, 10, 22):
        yield bytes(rng.getrandbits(8) for _ in range(4 * words))
        yield b"\xff" * (4 * words)
        yield b"\x00" * (4 * words - 1) + b"\x01"


@pytest.mark.parametrize("width, height", [(16384, 16384), (8192, 4096), (2048, 2048), (768, 512), (64, 64), (1, 1)])
def test_forged_small_files_are_refused_before_the_image_networks_run(shipped, monkeypatch, request, width,
                                                                     height):
    """A file of at most 100 bytes with a valid header (right fingerprint, recomputed checksum) that
    claims any size is refused; the image networks never run, and for a large claim nothing runs at all:
    the payload is below what any real stream of that size holds (gencodec.entropy.ans)."""
    ran = []
    for name in ("synthesis", "denoiser"):
        hook = getattr(shipped.model, name).register_forward_pre_hook(lambda *_, name=name: ran.append(name))
        request.addfinalizer(hook.remove)
    scale_net = shipped.model.latent_codec.scale_net
    monkeypatch.setattr(scale_net, "indexes", lambda *a, **k: ran.append("scale_net") or type(scale_net).indexes(
        scale_net, *a, **k))
    rng = random.Random(width * height)
    for payload in _payloads(rng):
        header = bitstream.Header(level=rng.randrange(shipped.n_levels), fingerprint=shipped.fingerprint16,
                                  width=width, height=height)
        data = bitstream.pack_file(header, payload)
        assert len(data) <= 100
        assert _decode_outcome(shipped, data) == "CorruptFileError"
    assert "synthesis" not in ran and "denoiser" not in ran
    if width * height >= 2048 * 2048:
        assert ran == []
