"""The Python API: gencodec.load, Codec.compress / decompress, model folders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import gencodec
from gencodec import InvalidImageError, bitstream

from .conftest import smooth_image


@pytest.mark.parametrize("size", [(1, 1), (7, 130), (64, 64), (65, 129), (100, 37)])
def test_any_size_round_trips_to_the_same_size(untrained_codec, size):
    h, w = size
    data = untrained_codec.compress(smooth_image(h, w), level=1)
    out = untrained_codec.decompress(data)
    assert isinstance(out, Image.Image) and out.mode == "RGB"
    assert out.size == (w, h)


def test_paths_arrays_and_pil_images_give_the_same_file(untrained_codec, tmp_path):
    arr = smooth_image(40, 56, seed=2)
    path = tmp_path / "x.png"
    Image.fromarray(arr).save(path)
    files = {untrained_codec.compress(src, level=2) for src in (arr, Image.fromarray(arr), path, str(path),
                                                                  path.read_bytes())}
    assert len(files) == 1


def test_modes_are_converted(untrained_codec):
    gray16 = Image.fromarray((np.arange(48 * 32).reshape(32, 48) * 40).astype(np.uint16))
    for img in (Image.new("L", (48, 32), 90), Image.new("RGBA", (48, 32), (10, 20, 30, 128)),
                Image.new("P", (48, 32)), gray16, Image.new("1", (48, 32))):
        assert untrained_codec.decompress(untrained_codec.compress(img)).size == (48, 32)


def test_exif_orientation_is_honoured(untrained_codec, tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.fromarray(smooth_image(30, 50)).save(path, exif=exif)
    data = untrained_codec.compress(path)
    assert untrained_codec.info(data).width == 30 and untrained_codec.info(data).height == 50


def test_header_records_level_and_size(untrained_codec):
    data = untrained_codec.compress(smooth_image(33, 77), level=5)
    info = untrained_codec.info(data)
    assert (info.width, info.height, info.level) == (77, 33, 5)
    assert info.bytes == len(data)
    assert info.bpp == pytest.approx(8 * len(data) / (33 * 77))
    assert data[: bitstream.HEADER_BYTES] == bitstream.Header(5, untrained_codec.fingerprint16, 77, 33).pack()


@pytest.mark.parametrize("level", [-1, 8, 2.5, "3", True])
def test_bad_levels_are_refused(untrained_codec, level):
    with pytest.raises(gencodec.GencodecError) as info:
        untrained_codec.compress(smooth_image(8, 8), level=level)
    assert "level" in str(info.value)


def test_model_folder_save_and_load(untrained_codec, tmp_path, photo):
    untrained_codec.model.save_pretrained(tmp_path / "m")
    loaded = gencodec.load(tmp_path / "m", device="cpu")
    assert loaded.fingerprint == untrained_codec.fingerprint
    data = untrained_codec.compress(photo, level=3)
    assert np.array_equal(np.asarray(loaded.decompress(data)), np.asarray(untrained_codec.decompress(data)))


def test_a_file_from_another_model_is_refused(untrained_codec, tmp_path):
    from gencodec.codec import Codec
    from gencodec.pretrained import untrained_model
    other = Codec(untrained_model(latent_channels=64), device="cpu")
    data = other.compress(smooth_image(16, 16))
    with pytest.raises(gencodec.ModelMismatchError, match="another model"):
        untrained_codec.decompress(data)


def test_unknown_models_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(gencodec.ModelNotFoundError, match="no model folder"):
        gencodec.load("no-such-model")
    with pytest.raises(gencodec.ModelNotFoundError, match="not a model folder"):
        gencodec.load(tmp_path)
    monkeypatch.setattr("gencodec.pretrained.SHIPPED_DIR", tmp_path / "weights")
    with pytest.raises(gencodec.ModelNotFoundError, match="default model is missing"):
        gencodec.load("default")


def test_default_transforms_fit_the_size_budget(untrained_codec):
    model = untrained_codec.model
    assert sum(p.numel() for p in model.analysis.parameters()) <= 5_000_000
    import torch
    with torch.no_grad():
        y = model.analysis(torch.zeros(1, 3, 64, 96))
    assert y.shape[-2:] == (4, 6) and model.analysis.downsampling == 16  # 16x fewer rows and columns
    assert any(type(m).__name__ == "WindowAttention" for m in model.analysis.modules())


def test_the_pixel_budget_refuses_images_and_files_that_claim_more(untrained_codec, tmp_path):
    """Codec.max_pixels: a larger image (array, file or PIL image) or a file claiming one is refused
    before any work; None means no budget."""
    image = smooth_image(40, 48)
    data = untrained_codec.compress(image, level=0)
    small = gencodec.Codec(untrained_codec.model, device="cpu", max_pixels=40 * 48 - 1)
    Image.fromarray(image).save(tmp_path / "x.png")
    for source in (image, tmp_path / "x.png", Image.fromarray(image)):
        with pytest.raises(InvalidImageError, match="48x40 = 1,920 pixels; the pixel budget is 1,919"):
            small.compress(source)
    with pytest.raises(InvalidImageError, match="the file's image is too large"):
        small.decompress(data)
    unlimited = gencodec.Codec(untrained_codec.model, device="cpu", max_pixels=None)
    assert unlimited.decompress(unlimited.compress(image, level=0)).size == (48, 40)
    assert untrained_codec.max_pixels == gencodec.DEFAULT_MAX_PIXELS == 8192 * 8192
