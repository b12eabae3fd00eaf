"""Rungs (gencodec.rungs): file levels that code the photo made smaller, and a decoder that brings it back
to full size, at realism 0 by upsampling, above it by drawing on the upsampled picture."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gencodec.codec import Codec
from gencodec.errors import GencodecError
from gencodec.rungs import Rung, coded_size, downscale_image, rungs_of

from .conftest import SMALL, TINY_DECODER, load_script, smooth_image

LADDER = [[2, 4, 7], [5, 2, 7], [3, 1, None], [7, 1, None]]


@pytest.fixture(scope="module")
def codecs():
    """The same small generative model with the identity ladder and with LADDER."""
    from gencodec.pretrained import untrained_model
    plain = untrained_model(**SMALL, generative_decoder=TINY_DECODER)
    laddered = untrained_model(**SMALL, generative_decoder=TINY_DECODER, rungs=LADDER)
    return Codec(plain, device="cpu"), Codec(laddered, device="cpu")


@pytest.fixture(scope="module")
def photo():
    return smooth_image(150, 230, seed=4)  # neither side a multiple of the downscale or the padding


def test_a_config_without_rungs_has_one_full_size_rung_per_level():
    assert rungs_of({}, 8) == [Rung(level) for level in range(8)]


@pytest.mark.parametrize("rungs, message", [
    ([[8, 1, None]], "coding level 0..7"),
    ([[1, 3, 2]], "downscale must be one of"),
    ([[1, 1, 2]], "full-size rung has no regenerate"),
    ([[1, 2, None]], "needs a regenerate level"),
    ([[1, 2]], r"\[level, downscale, regenerate\]"),
    ([[0, 1, None]] * 17, "1 to 16"),
])
def test_a_wrong_ladder_is_refused(rungs, message):
    from gencodec.pretrained import untrained_model
    with pytest.raises(ValueError, match=message):
        rungs_of({"rungs": rungs}, 8)
    with pytest.raises(ValueError, match=message):
        untrained_model(**SMALL, generative_decoder=None, rungs=rungs)


def test_the_ladder_is_part_of_the_fingerprint(codecs):
    plain, laddered = codecs
    assert plain.fingerprint != laddered.fingerprint
    assert laddered.n_levels == len(LADDER) and plain.n_levels == 8


def test_a_downscaled_rung_codes_the_smaller_picture_and_gives_back_the_full_size(codecs, photo):
    plain, laddered = codecs
    height, width = photo.shape[:2]
    small = downscale_image(photo, 4)
    assert small.shape[:2] == (38, 58) and coded_size(width, height, 4) == (58, 38)
    data = laddered.compress(photo, level=0)
    info = laddered.info(data)
    assert (info.width, info.height, info.downscale, info.level) == (width, height, 4, 0)
    # The stream is the plain model's at the coding level, for the smaller picture.
    code, _, _ = laddered.analyse(photo, 0)
    assert code.symbols.equal(plain.analyse(small, 2)[0].symbols)
    assert len(data) < len(plain.compress(photo, level=2))
    r0 = np.asarray(laddered.decompress(data, realism=0))
    expected = np.asarray(plain.decompress(plain.compress(small, level=2), realism=0))
    from gencodec.rungs import upscale_image
    assert np.array_equal(r0, upscale_image(expected, width, height))
    r1 = np.asarray(laddered.decompress(data, realism=1, seed=3))
    half = np.asarray(laddered.decompress(data, realism=0.5, seed=3))
    assert r1.shape == r0.shape == half.shape == (height, width, 3)
    assert not np.array_equal(r1, r0)
    assert np.abs(half.astype(int) - (r0.astype(int) + r1) / 2).max() <= 1  # the knob blends linearly
    assert np.array_equal(r1, np.asarray(laddered.decompress(data, realism=1, seed=3)))  # seeded


def test_a_full_size_rung_is_the_plain_models_file(codecs, photo):
    plain, laddered = codecs
    a, b = plain.compress(photo, level=3), laddered.compress(photo, level=2)
    assert a[8:-2] == b[8:-2]  # the payload; the header differs in level and fingerprint
    assert np.array_equal(np.asarray(plain.decompress(a, seed=1)), np.asarray(laddered.decompress(b, seed=1)))


def test_targets_and_batches_go_through_the_rungs(codecs, photo):
    _, laddered = codecs
    sizes = laddered.sizes_by_level(photo)
    assert sizes == [len(laddered.compress(photo, level=level)) for level in range(laddered.n_levels)]
    assert sizes == sorted(sizes)
    data = laddered.compress_to_target(photo, max_bytes=sizes[1])
    assert laddered.info(data).level == 1
    files = laddered.compress_batch([photo, photo[:64]], level=0)
    assert files[0] == laddered.compress(photo, level=0)
    decoded = laddered.decompress_batch(files, realism=1)
    assert np.array_equal(np.asarray(decoded[0]), np.asarray(laddered.decompress(files[0], realism=1)))
    assert decoded[1].size == (230, 64)


def test_a_level_beyond_the_rungs_is_refused(codecs, photo):
    from gencodec import bitstream
    _, laddered = codecs
    data = laddered.compress(photo, level=0)
    header, payload = bitstream.unpack_file(data)
    forged = bitstream.pack_file(bitstream.Header(level=len(LADDER), fingerprint=header.fingerprint,
                                                  width=header.width, height=header.height), payload)
    with pytest.raises(GencodecError, match="level 4 does not exist"):
        laddered.decompress(forged)
    with pytest.raises(GencodecError, match="levels 0..3"):
        laddered.compress(photo, level=4)


def test_export_sets_and_checks_the_rungs(tmp_path, capsys):
    import json

    from gencodec.pretrained import untrained_model
    source = tmp_path / "plain"
    untrained_model(**SMALL, generative_decoder=None).save_pretrained(source)
    export = load_script("export")
    assert export.main(["--model", str(source), "--rungs", json.dumps(LADDER), "--out", str(tmp_path / "ladder")]) == 0
    assert json.loads((tmp_path / "ladder" / "config.json").read_text())["rungs"] == LADDER
    with pytest.raises(GencodecError, match="--rungs"):
        export.main(["--model", str(source), "--rungs", "[[9, 1, null]]", "--out", str(tmp_path / "bad")])


def test_realism_1_keeps_the_layout_and_colours_the_file_carries(codecs, photo):
    """What the generative decoder draws on a downscaled rung keeps the upsampled picture's low
    frequencies: its blurred picture and its thumbnail are realism 0's, within a few levels."""
    from PIL import ImageFilter

    from gencodec.evaluation.metrics import area_downsample
    from gencodec.rungs import LOW_PASS_SIGMA, keep_low_frequencies
    _, laddered = codecs
    data = laddered.compress(photo, level=0)
    r0 = np.asarray(laddered.decompress(data, realism=0))
    r1 = np.asarray(laddered.decompress(data, realism=1))
    blur = lambda a: np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(LOW_PASS_SIGMA)), float)  # noqa: E731
    assert np.abs(blur(r1) - blur(r0)).mean() < 1.5
    assert np.abs(area_downsample(r1) - area_downsample(r0)).mean() < 2.0
    # A picture drawn with a colour cast and a grain of its own: the cast goes, the grain stays.
    grain = np.random.default_rng(0).integers(-20, 21, photo.shape)
    drawn = np.clip(photo.astype(int) + 25 + grain, 0, 255).astype(np.uint8)
    kept = keep_low_frequencies(drawn, photo)
    assert np.abs(blur(kept) - blur(photo)).mean() < 1.5 < 10 < np.abs(blur(drawn) - blur(photo)).mean()
    assert np.abs((kept.astype(int) - photo) - grain).mean() < 5


def test_the_command_line_says_when_a_file_was_coded_smaller(codecs, photo, tmp_path, capsys):
    from gencodec.cli import main
    _, laddered = codecs
    folder = tmp_path / "model"
    laddered.model.save_pretrained(folder)
    png, gcz = tmp_path / "photo.png", tmp_path / "photo.gcz"
    Image.fromarray(photo).save(png)
    assert main(["compress", str(png), "-o", str(gcz), "--level", "0", "--model", str(folder)]) == 0
    assert "(coded at 1/4 size)" in capsys.readouterr().err
    assert main(["info", str(gcz), "--model", str(folder)]) == 0
    assert "coded at:    1/4 size (58x38)" in capsys.readouterr().out
    assert main(["compress", str(png), "-o", str(tmp_path / "full.gcz"), "--level", "2", "--model", str(folder)]) == 0
    assert "coded at" not in capsys.readouterr().err
