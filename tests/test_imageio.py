"""Tests for gencodec.imageio: every input kind and Pillow mode, bad input, tensors, padding."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from gencodec import image_checks
from gencodec.errors import InvalidImageError
from gencodec.imageio import (
    crop_to,
    image_to_tensor,
    load_image,
    pad_to_multiple,
    save_image,
    tensor_to_image,
)


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _raw_png16(arr: np.ndarray, color_type: int) -> bytes:
    """Hand-written 16-bit PNG (Pillow cannot write 16-bit RGB/RGBA itself)."""
    height, width = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(height))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def _assert_one_line_error(excinfo):
    msg = str(excinfo.value)
    assert msg and "\n" not in msg


def _rgb(value):
    return np.array(value, dtype=np.uint8)


# --- PIL modes, through a real PNG file where the format supports the mode ---------------------


def test_16bit_gray_png_scales_not_clips(tmp_path):
    arr = np.array([[0, 257 * 100, 65535, 128]], dtype=np.uint16)  # 128/257 ~ 0.498 -> 0
    path = tmp_path / "g16.png"
    Image.fromarray(arr).save(path)
    out = load_image(path)
    assert out.shape == (1, 4, 3) and out.dtype == np.uint8
    assert out[0, :, 0].tolist() == [0, 100, 255, 0]
    assert (out == out[..., :1]).all()


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L"])
def test_16bit_modes_in_memory(mode):
    img = Image.fromarray(np.array([[257 * 100, 65535]], dtype=np.uint16)).convert(mode) \
        if mode == "I;16" else Image.new(mode, (2, 1), 257 * 100)
    out = load_image(img)
    assert out[0, 0].tolist() == [100, 100, 100]


def test_mode_I_treated_as_16bit_and_clipped():
    img = Image.fromarray(np.array([[-5, 257 * 100, 65535, 10**6]], dtype=np.int32))
    assert img.mode == "I"
    assert load_image(img)[0, :, 0].tolist() == [0, 100, 255, 255]


def test_mode_F_unit_range_and_0_255_range():
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0, -0.2]], dtype=np.float32))
    assert unit.mode == "F"
    assert load_image(unit)[0, :, 0].tolist() == [0, 128, 255, 0]
    big = Image.fromarray(np.array([[0.0, 100.0, 255.0, 300.0]], dtype=np.float32))
    assert load_image(big)[0, :, 0].tolist() == [0, 100, 255, 255]


def test_mode_F_nan_rejected():
    img = Image.fromarray(np.array([[np.nan, 0.5]], dtype=np.float32))
    with pytest.raises(InvalidImageError) as e:
        load_image(img)
    _assert_one_line_error(e)


def test_16bit_rgb_and_rgba_png():
    rgb = np.array([[[65535, 257 * 100, 0]]], dtype=np.uint16)
    assert load_image(_raw_png16(rgb, 2))[0, 0].tolist() == [255, 100, 0]
    rgba = np.array([[[65535, 0, 0, 257 * 128]]], dtype=np.uint16)
    out = load_image(_raw_png16(rgba, 6))[0, 0].astype(int)
    assert np.abs(out - [255, 127, 127]).max() <= 1


@pytest.mark.parametrize(
    "mode, value, expected",
    [
        ("1", 1, (255, 255, 255)),
        ("L", 77, (77, 77, 77)),
        ("RGB", (10, 200, 30), (10, 200, 30)),
        ("RGBA", (255, 0, 0, 128), (255, 127, 127)),  # half-transparent red over white
        ("RGBA", (0, 0, 255, 0), (255, 255, 255)),
        ("RGBA", (0, 0, 255, 255), (0, 0, 255)),
        ("LA", (0, 128), (127, 127, 127)),
        ("CMYK", (0, 255, 0, 0), (255, 0, 255)),
        ("YCbCr", (128, 128, 128), (128, 128, 128)),
        ("RGBX", (1, 2, 3, 0), (1, 2, 3)),
        ("La", (100, 255), (100, 100, 100)),
        ("RGBa", (0, 0, 0, 0), (255, 255, 255)),
    ],
)
def test_modes(tmp_path, mode, value, expected):
    img = Image.new(mode, (3, 2), value)
    out = load_image(img)
    assert out.shape == (2, 3, 3)
    assert np.abs(out.astype(int) - expected).max() <= 1
    if mode in ("1", "L", "RGB", "RGBA", "LA"):  # and through a file
        path = tmp_path / "m.png"
        img.save(path)
        assert np.abs(load_image(path).astype(int) - expected).max() <= 1


def test_palette_with_and_without_transparency(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    path = tmp_path / "p.png"
    img.save(path)
    assert load_image(path).tolist() == [[[255, 0, 0], [0, 255, 0]]]
    img.save(path, transparency=0)  # index 0 (red) fully transparent -> white
    with Image.open(path) as img:
        assert img.mode == "P"
    assert load_image(path).tolist() == [[[255, 255, 255], [0, 255, 0]]]


def test_palette_with_rgba_palette():
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 255, 0, 0, 255, 0, 255] + [0] * 1016, "RGBA")
    img.putpixel((1, 0), 1)
    assert load_image(img).tolist() == [[[255, 255, 255], [0, 255, 0]]]


def test_pa_mode():
    img = Image.new("P", (1, 1))
    img.putpalette([0, 0, 255] + [0] * 765)
    pa = img.convert("PA")
    pa.putalpha(0)
    assert pa.mode == "PA"
    assert load_image(pa).tolist() == [[[255, 255, 255]]]


def test_rgb_with_trns_colour_is_transparent(tmp_path):
    path = tmp_path / "t.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(path, transparency=(10, 20, 30))
    assert load_image(path).tolist() == [[[255, 255, 255]]]


# --- input kinds ---------------------------------------------------------------------------------


def test_str_path_bytes_bytearray_stream_agree(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(arr).save(path)
    data = path.read_bytes()
    for source in (path, str(path), data, bytearray(data), io.BytesIO(data)):
        np.testing.assert_array_equal(load_image(source), arr)
    with Image.open(path) as img:
        np.testing.assert_array_equal(load_image(img), arr)
    with open(path, "rb") as f:
        np.testing.assert_array_equal(load_image(f), arr)


def test_does_not_close_callers_pil_image(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (2, 2), (1, 2, 3)).save(path)
    with Image.open(path) as img:
        load_image(img)
        assert img.getpixel((0, 0)) == (1, 2, 3)


@pytest.mark.parametrize("orientation, source", [(6, "path"), (3, "path"), (8, "bytes"), (6, "pil")])
def test_exif_orientation(tmp_path, orientation, source):
    # 40 wide, 20 tall; left half black, right half white.
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, 20:] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    if source == "pil":
        with Image.open(path) as img:
            out = load_image(img).astype(int)
    else:
        out = load_image(path if source == "path" else path.read_bytes()).astype(int)
    if orientation == 3:  # 180 degrees: shape kept, white moves to the left
        assert out.shape == (20, 40, 3)
        assert out[10, 5].min() > 200 and out[10, 35].max() < 50
    elif orientation == 6:  # rotate 90 clockwise to display: white ends at the bottom
        assert out.shape == (40, 20, 3)
        assert out[35, 10].min() > 200 and out[5, 10].max() < 50
    else:  # 8: rotate 90 counter-clockwise: white ends at the top
        assert out.shape == (40, 20, 3)
        assert out[5, 10].min() > 200 and out[35, 10].max() < 50


# --- numpy inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arr, expected",
    [
        (np.full((2, 3), 7, np.uint8), 7),
        (np.full((2, 3, 1), 7, np.uint8), 7),
        (np.full((2, 3, 3), 7, np.uint8), 7),
        (np.full((2, 3, 4), 7, np.uint8) | np.array([0, 0, 0, 255], np.uint8), 7),
        (np.full((2, 3), 257 * 9, np.uint16), 9),
        (np.full((2, 3, 3), 65535, np.uint16), 255),
        (np.ones((2, 3), bool), 255),
        (np.zeros((2, 3, 1), bool), 0),
        (np.full((2, 3), 0.5, np.float16), 128),
        (np.full((2, 3, 3), 2.0, np.float32), 255),  # clipped
        (np.full((2, 3, 3), -1.0, np.float64), 0),
        (np.full((2, 3, 3), 100 / 255, np.float64), 100),
    ],
)
def test_numpy_inputs(arr, expected):
    out = load_image(arr)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    assert (out == expected).all()


def test_numpy_rgba_over_white():
    arr = np.array([[[255, 0, 0, 128]]], np.uint8)
    assert np.abs(load_image(arr).astype(int) - [255, 127, 127]).max() <= 1
    farr = np.array([[[1.0, 0.0, 0.0, 0.5]]], np.float32)
    assert np.abs(load_image(farr).astype(int) - [255, 127, 127]).max() <= 1


def test_uint8_passthrough_exact():
    arr = np.random.default_rng(1).integers(0, 256, (9, 4, 3), dtype=np.uint8)
    np.testing.assert_array_equal(load_image(arr), arr)
    np.testing.assert_array_equal(load_image(np.asfortranarray(arr)), arr)


# --- bad input -----------------------------------------------------------------------------------


def _truncated(tmp_path, fmt):
    rng = np.random.default_rng(2)
    arr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    path = tmp_path / f"half.{fmt.lower()}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda p: p / "missing.png", "no such file"),
        (lambda p: str(p / "missing.png"), "no such file"),
        (lambda p: (p / "t.txt").write_text("hello\nworld\n") and p / "t.txt", "cannot read image"),
        (lambda p: _truncated(p, "PNG"), "cannot read image"),
        (lambda p: _truncated(p, "JPEG"), "cannot read image"),
        (lambda p: (p / "e.png").write_bytes(b"") or p / "e.png", "cannot read image"),
        (lambda p: p, "cannot read image"),  # a directory
        (lambda p: b"", "no data"),
        (lambda p: b"not an image", "cannot read image"),
        (lambda p: io.StringIO("text"), "binary"),
        (lambda p: np.zeros((0, 0, 3), np.uint8), "empty"),
        (lambda p: np.zeros((0, 5), np.uint8), "empty"),
        (lambda p: np.zeros((1, 2, 2, 3), np.uint8), "shape"),
        (lambda p: np.zeros((2, 2, 2), np.uint8), "shape"),
        (lambda p: np.zeros(5, np.uint8), "shape"),
        (lambda p: np.full((2, 2), np.nan), "NaN"),
        (lambda p: np.full((2, 2, 3), np.inf, np.float32), "NaN"),
        (lambda p: np.zeros((2, 2), np.int32), "dtype"),
        (lambda p: np.zeros((2, 2), np.complex64), "dtype"),
        (lambda p: 42, "unsupported"),
        (lambda p: Image.new("RGB", (0, 0)), "empty"),
    ],
)
def test_bad_inputs(tmp_path, make, needle):
    with pytest.raises(InvalidImageError) as e:
        load_image(make(tmp_path))
    _assert_one_line_error(e)
    assert needle in str(e.value)


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "PNG"])
def test_animations_and_multi_page_files_are_refused(tmp_path, fmt):
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "green", "blue")]
    path = tmp_path / f"many.{fmt.lower()}"
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:])
    with pytest.raises(InvalidImageError, match="has 3 frames .*save the frame you want on its own first"):
        load_image(path)
    frames[0].save(path, format=fmt)  # one frame: fine
    assert load_image(path).shape == (16, 16, 3)


def test_too_large(tmp_path, monkeypatch):
    monkeypatch.setattr(image_checks, "MAX_SIDE", 8)
    path = tmp_path / "big.png"
    Image.new("RGB", (9, 2)).save(path)
    for source in (path, np.zeros((2, 9, 3), np.uint8), Image.new("L", (2, 9))):
        with pytest.raises(InvalidImageError) as e:
            load_image(source)
        _assert_one_line_error(e)
        assert "too large" in str(e.value)
    assert load_image(np.zeros((8, 8), np.uint8)).shape == (8, 8, 3)
    assert load_image(np.zeros((1, 1), np.uint8)).shape == (1, 1, 3)


def test_default_max_side_is_the_file_formats():
    """Without the patch above: the largest side a .gcz header can hold loads, one more pixel does not."""
    from gencodec.bitstream import Header
    Header(level=0, fingerprint=0, width=16384, height=1)
    with pytest.raises(ValueError):
        Header(level=0, fingerprint=0, width=16385, height=1)
    assert load_image(np.zeros((1, 16384), np.uint8)).shape == (1, 16384, 3)
    with pytest.raises(InvalidImageError, match="too large"):
        load_image(np.zeros((16385, 1), np.uint8))


# --- tensors, padding, saving --------------------------------------------------------------------


def test_tensor_round_trip_exact():
    arr = np.arange(256, dtype=np.uint8).reshape(4, 64, 1).repeat(3, axis=2)
    arr[..., 1] = arr[..., 1][::-1]
    x = image_to_tensor(arr)
    assert x.shape == (1, 3, 4, 64) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    np.testing.assert_array_equal(tensor_to_image(x), arr)
    np.testing.assert_array_equal(tensor_to_image(x[0]), arr)


def test_tensor_to_image_clamps_and_rounds():
    x = torch.tensor([-0.5, 0.0, 0.5, 100.4 / 255, 2.0, float("nan")]).view(1, 1, 6).expand(3, 1, 6)
    assert tensor_to_image(x)[0, :, 0].tolist() == [0, 0, 128, 100, 255, 0]


def test_tensor_conversions_reject_bad_shapes():
    with pytest.raises(InvalidImageError):
        image_to_tensor(np.zeros((2, 2), np.uint8))
    with pytest.raises(InvalidImageError):
        image_to_tensor(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(InvalidImageError):
        tensor_to_image(torch.zeros(2, 3, 4, 4))


@pytest.mark.parametrize("height, width", [(1, 1), (1, 77), (65, 3), (64, 128)])
def test_pad_crop_round_trip(height, width):
    x = torch.rand(2, 3, height, width)
    padded = pad_to_multiple(x, 64)
    assert padded.shape[-2] % 64 == 0 and padded.shape[-1] % 64 == 0
    assert padded.shape[-2] - height < 64 and padded.shape[-1] - width < 64
    # replicate: the padded area copies the last row / column
    assert torch.equal(padded[..., -1, :width], x[..., -1, :])
    assert torch.equal(padded[..., :height, -1], x[..., :, -1])
    assert torch.equal(crop_to(padded, height, width), x)


def test_pad_rejects_bad_args():
    with pytest.raises(InvalidImageError):
        pad_to_multiple(torch.zeros(3, 4, 4), 8)
    with pytest.raises(InvalidImageError):
        pad_to_multiple(torch.zeros(1, 3, 4, 4), 0)
    with pytest.raises(InvalidImageError):
        crop_to(torch.zeros(1, 3, 4, 4), 5, 4)


def test_save_image_path_and_bytesio(tmp_path):
    arr = np.random.default_rng(3).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    path = tmp_path / "out.png"
    save_image(arr, path)
    np.testing.assert_array_equal(load_image(path), arr)
    save_image(arr, str(tmp_path / "out.jpg"))
    with Image.open(tmp_path / "out.jpg") as img:
        assert img.format == "JPEG"
    buf = io.BytesIO()
    save_image(arr, buf)
    assert buf.getvalue().startswith(b"\x89PNG")
    np.testing.assert_array_equal(load_image(buf.getvalue()), arr)
    buf = io.BytesIO()
    save_image(arr, buf, format="BMP")
    assert buf.getvalue().startswith(b"BM")


@pytest.mark.parametrize(
    "target, fmt",
    [("no_such_dir/out.png", None), ("out.unknownext", None), ("out.png", "NOPE")],
)
def test_save_image_errors(tmp_path, target, fmt):
    with pytest.raises(InvalidImageError) as e:
        save_image(np.zeros((2, 2, 3), np.uint8), tmp_path / target, format=fmt)
    _assert_one_line_error(e)
    assert "cannot write image" in str(e.value)


def test_save_image_rejects_bad_array(tmp_path):
    with pytest.raises(InvalidImageError):
        save_image(np.zeros((2, 2), np.float32), tmp_path / "x.png")
