"""Classical baselines: round trips, downscaled files, byte matching, no metadata, errors."""

from __future__ import annotations


import numpy as np
import pytest

from gencodec.evaluation import baselines
from gencodec.evaluation.metrics import psnr
from gencodec.evaluation.baselines import (CODECS, QUALITY_RANGE, SCALES, available_codecs, decode, encode,
                                           match_bytes)
from gencodec.errors import GencodecError

from .conftest import smooth_image

AVAILABLE = available_codecs()
WIDTH, HEIGHT = 128, 96


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [smooth_image(HEIGHT, WIDTH, seed=s) for s in (0, 1)]


@pytest.fixture(scope="module")
def matched(images) -> dict:
    """match_bytes results by (codec, target), computed once for the tests that read them."""
    return {(c, t): match_bytes(images[0], c, t) for c in AVAILABLE for t in (300, 800, 2000)}


def test_available_codecs():
    assert {"jpeg", "webp"} <= set(AVAILABLE)
    assert AVAILABLE == [c for c in CODECS if c in AVAILABLE]  # the documented order
    assert set(QUALITY_RANGE) == set(CODECS)


@pytest.mark.parametrize("codec", AVAILABLE)
def test_round_trip(images, codec):
    for image in images:
        data = encode(image, codec, 90)
        decoded = decode(data, codec, (WIDTH, HEIGHT))
        assert decoded.shape == image.shape and decoded.dtype == np.uint8
        assert psnr(decoded, image) > 25


@pytest.mark.parametrize("codec", AVAILABLE)
def test_quality_range_is_enforced(images, codec):
    """Both ends of a codec's QUALITY_RANGE encode (the top one to a larger file); one step beyond is refused."""
    low, high = QUALITY_RANGE[codec]
    assert len(encode(images[0], codec, low)) < len(encode(images[0], codec, high))
    for quality in (low - 1, high + 1):
        with pytest.raises(GencodecError, match="quality"):
            encode(images[0], codec, quality)


@pytest.mark.parametrize("codec", AVAILABLE)
def test_downscaled_file_decodes_to_original_size(images, codec):
    image = images[0]
    small = encode(image, codec, 50, scale=0.5)
    assert len(small) < len(encode(image, codec, 50))
    decoded = decode(small, codec, (WIDTH, HEIGHT))
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert psnr(decoded, image) > 20  # the same picture, softened


@pytest.mark.parametrize("codec", AVAILABLE)
def test_match_bytes_fits_the_budget(images, matched, codec):
    for target in (300, 800, 2000):
        found = matched[codec, target]
        if found is None:
            # Only the smallest budget may be below a format's headers (avif, hevc).
            assert target == 300
            continue
        assert found.codec == codec and found.bytes == len(found.data) <= target
        assert found.scale in SCALES
        assert QUALITY_RANGE[codec][0] <= found.quality <= QUALITY_RANGE[codec][1]
        assert found.decoded.shape == images[0].shape and found.decoded.dtype == np.uint8
        assert np.array_equal(found.decoded, decode(found.data, codec, (WIDTH, HEIGHT)))


@pytest.mark.parametrize("codec", AVAILABLE)
def test_match_bytes_larger_budget_is_better(images, matched, codec):
    small, large = matched[codec, 800], matched[codec, 2000]
    assert large.bytes > small.bytes
    assert psnr(large.decoded, images[0]) > psnr(small.decoded, images[0])


@pytest.mark.parametrize("codec", AVAILABLE)
def test_match_bytes_impossible_budget(images, codec):
    assert match_bytes(images[0], codec, 10) is None


def test_match_bytes_ranks_by_score(images):
    image = images[0]
    seen = []

    def worst_psnr(decoded: np.ndarray) -> float:
        seen.append(decoded.shape)
        return -psnr(decoded, image)

    best = match_bytes(image, "jpeg", 2000)
    worst = match_bytes(image, "jpeg", 2000, score=worst_psnr)
    assert len(seen) > 1 and set(seen) == {image.shape}  # every candidate, at full size
    assert worst.bytes <= 2000
    assert psnr(worst.decoded, image) < psnr(best.decoded, image)


@pytest.mark.parametrize("codec", AVAILABLE)
def test_no_metadata(images, codec):
    data = encode(images[0], codec, 75)
    for marker in (b"Exif", b"ICC_PROFILE", b"ICCP", b"xmpmeta"):
        assert marker not in data


def test_jpeg_is_huffman_optimised_420(images):
    data = encode(images[0], "jpeg", 75)
    assert data[:2] == b"\xff\xd8" and b"JFIF" in data
    # SOF0 (baseline): 3 components, luma sampled 2x2 and chroma 1x1, i.e. 4:2:0.
    sof = data.index(b"\xff\xc0")
    assert data[sof + 9] == 3 and data[sof + 11] == 0x22 and data[sof + 14] == 0x11


def test_errors(images):
    with pytest.raises(GencodecError, match="unknown classical codec 'bpg'"):
        encode(images[0], "bpg", 50)
    with pytest.raises(GencodecError, match="unknown classical codec"):
        decode(b"", "png", (WIDTH, HEIGHT))
    with pytest.raises(GencodecError, match="unknown classical codec"):
        match_bytes(images[0], "JPEG2000", 1000)
    with pytest.raises(GencodecError, match="quality"):
        encode(images[0], "jpeg", 0)
    with pytest.raises(GencodecError, match="uint8"):
        encode(images[0].astype(np.float32), "jpeg", 50)


def test_tiny_scales_are_skipped(monkeypatch):
    """Scales that would make a side shorter than MIN_SIDE pixels are never encoded."""
    sizes = []
    save = baselines._save

    def recording_save(img, codec, quality):
        sizes.append(img.size)
        return save(img, codec, quality)

    monkeypatch.setattr(baselines, "_save", recording_save)
    match_bytes(smooth_image(40, 64), "jpeg", 400)
    assert sizes and min(min(s) for s in sizes) >= baselines.MIN_SIDE


def test_best_of_takes_the_best_codec_under_the_budget(images):
    image, budget = images[0], 1500
    each = {c: match_bytes(image, c, budget) for c in ("jpeg", "webp")}
    best = baselines.best_of(image, budget, codecs=("jpeg", "webp"))
    assert best is not None and best.bytes <= budget
    winner = max((r for r in each.values() if r is not None), key=lambda r: psnr(r.decoded, image))
    assert (best.codec, best.bytes) == (winner.codec, winner.bytes)
    # A score decides instead of PSNR when given; ties keep the first codec.
    tied = baselines.best_of(image, budget, codecs=("jpeg", "webp"), score=lambda decoded: 0.0)
    assert tied.codec == "jpeg"
    assert baselines.best_of(image, 10, codecs=("jpeg", "webp")) is None


def test_best_of_skips_codecs_this_machine_lacks(images, monkeypatch):
    monkeypatch.setattr(baselines, "available_codecs", lambda: ["webp"])
    assert baselines.best_of(images[0], 1500).codec == "webp"
