"""The colour offset: three integers per file that put the decoded picture's mean colour on the photo's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gencodec import codec as codec_module
from gencodec import colour_offset
from gencodec.codec import Codec
from gencodec.errors import CorruptFileError
from gencodec.pretrained import untrained_model

from .conftest import SMALL, TINY_DECODER, load_script, smooth_image


def _codec(offset: bool) -> Codec:
    return Codec(untrained_model(**SMALL, generative_decoder=TINY_DECODER, colour_offset=offset), device="cpu")


@pytest.fixture(scope="module")
def plain():
    return _codec(False)


@pytest.fixture(scope="module")
def offset():
    return _codec(True)


@pytest.fixture(scope="module")
def photo():
    # A strong colour far from an untrained model's grey: a cast of tens of levels to correct.
    image = smooth_image(128, 192, seed=5).astype(np.int16)
    image[..., 0] = np.clip(image[..., 0] + 60, 0, 255)
    return image.astype(np.uint8)


def _mean(image) -> np.ndarray:
    return colour_offset.mean_colour(np.asarray(image))


def test_offsets_round_trip_through_symbols_and_are_clipped_to_their_range():
    decoded = np.full((4, 4, 3), 100, np.uint8)
    offset = colour_offset.measure(decoded, np.array([100.4, 300.0, -80.0]))
    assert offset.tolist() == [0, colour_offset.HALF_RANGE - 1, -colour_offset.HALF_RANGE]
    symbols = colour_offset.to_symbols(offset)
    assert symbols.min() >= 0 and symbols.max() < 1 << colour_offset.BITS
    assert colour_offset.from_symbols(symbols).tolist() == offset.tolist()
    assert colour_offset.apply(decoded, np.array([200, -150, 5]))[0, 0].tolist() == [255, 0, 105]
    assert colour_offset.apply(decoded, None) is decoded


def test_a_model_without_it_keeps_its_fingerprint():
    model = untrained_model(**SMALL, generative_decoder=TINY_DECODER)
    before = model.fingerprint()
    model.register_to_config(colour_offset=True)
    assert model.fingerprint() != before  # files of one cannot be read as the other's
    model.register_to_config(colour_offset=False)
    assert model.fingerprint() == before


def test_the_same_code_plus_an_offset_that_puts_the_mean_colour_right(plain, offset, photo):
    code_plain, _, _ = plain.analyse(photo, level=2)
    code, _, _ = offset.analyse(photo, level=2)
    assert torch.equal(code.symbols, code_plain.symbols) and torch.equal(code.z_hat, code_plain.z_hat)
    assert code_plain.colour_offset is None and np.abs(code.colour_offset).max() > 5
    data = offset.compress(photo, level=2)
    assert len(data) - len(plain.compress(photo, level=2)) in (0, 4)  # 21 bits: a word at most
    before = np.abs(_mean(plain.decompress(plain.compress(photo, level=2), realism=0)) - _mean(photo))
    for realism in (0.0, 1.0):
        after = np.abs(_mean(offset.decompress(data, realism=realism)) - _mean(photo))
        assert after.max() < 1.0 < before.max()  # generated detail does not move it either
    assert offset.decode_code(data)[0].colour_offset.tolist() == code.colour_offset.tolist()


def test_every_way_to_compress_writes_the_same_file(offset, photo):
    data = offset.compress(photo, level=3)
    assert offset.compress_batch([photo, photo], level=3) == [data, data]
    assert offset.compress_to_target(photo, max_bytes=len(data)) in (data, *[offset.compress(photo, level=lv)
                                                                            for lv in range(3, offset.n_levels)])
    assert offset.sizes_by_level(photo)[3] == len(data)
    assert np.array_equal(np.asarray(offset.decompress_batch([data])[0]), np.asarray(offset.decompress(data)))


def test_tiled_decoding_applies_the_offset_too(offset, photo, monkeypatch):
    data = offset.compress(photo, level=2)
    whole = _mean(offset.decompress(data, realism=0))
    monkeypatch.setattr(codec_module, "DECODE_TILE", 64)
    monkeypatch.setattr(codec_module, "DECODE_OVERLAP", 32)
    assert np.abs(_mean(offset.decompress(data, realism=0)) - whole).max() < 2.0


def test_a_stream_too_short_for_its_offset_is_refused(offset, photo):
    from gencodec import bitstream
    header, payload = bitstream.unpack_file(offset.compress(photo, level=0))
    short = bitstream.pack_file(header, payload[:4])
    with pytest.raises(CorruptFileError):
        offset.decompress(short)


def test_export_turns_it_on_for_a_trained_model_and_keeps_its_licences(tmp_path):
    from gencodec.training.export import export_model
    source = tmp_path / "source"
    export_model(untrained_model(**SMALL, generative_decoder=TINY_DECODER), source, trained_steps=3)
    (source / "LICENSE-TEST").write_text("licence\n")
    export = load_script("export")
    assert export.main(["--model", str(source), "--colour-offset", "on", "--out", str(tmp_path / "on")]) == 0
    assert json.loads((tmp_path / "on" / "config.json").read_text())["colour_offset"] is True
    assert (tmp_path / "on" / "LICENSE-TEST").read_text() == "licence\n"


@pytest.mark.parametrize("name", ["latent", "pixel"])
def test_the_shipped_models_with_it_get_a_real_photos_mean_colour_within_two_levels(name):
    """On a trained model the encoder's measurement (for the latent family, on a half-size render)
    leaves the decoded mean colour within two levels or so of the photo's, at both realisms."""
    skimage_data = pytest.importorskip("skimage.data", reason="the sample photos come with scikit-image")
    import gencodec
    photo = skimage_data.coffee()[100:356, 150:534]
    model = gencodec.load(name, device="cpu").model
    model.register_to_config(colour_offset=True)
    codec = Codec(model, device="cpu")
    data = codec.compress(photo, level=1)
    for realism in (0.0, 1.0):
        error = _mean(codec.decompress(data, realism=realism)) - _mean(photo)
        assert np.abs(error).max() <= 2.5, (realism, error)
    model.register_to_config(colour_offset=False)  # the shipped model is cached: leave it as it was
