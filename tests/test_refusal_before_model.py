"""A broken image is refused before any model loads: `gencodec compress` decodes its input in full first, with
no torch, and compresses those decoded pixels (the file is read once); a batch does the same for each input.
A cut PNG, JPEG or WebP is seen from its container's structure, in milliseconds, whatever its size."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gencodec import image_reading
from gencodec.cli import main
from gencodec.errors import InvalidImageError
from gencodec.image_reading import load_image
from gencodec.image_truncation import check_not_truncated

from .conftest import smooth_image

FORMATS = {"png": ("PNG", {}), "jpg": ("JPEG", {"quality": 90}), "webp": ("WEBP", {"quality": 80})}


def _encoded(suffix: str, height: int = 64, width: int = 96) -> bytes:
    fmt, options = FORMATS[suffix]
    buffer = io.BytesIO()
    Image.fromarray(smooth_image(height, width)).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _no_model(*args, **kwargs):
    raise AssertionError("the model was loaded for an input that does not decode")


@pytest.fixture
def no_model(monkeypatch):
    """Loading any model fails the test."""
    monkeypatch.setattr("gencodec.pretrained.load_model", _no_model)


def _one_line_error(capsys, code: int, *fragments: str) -> str:
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("gencodec: error: "), err
    assert all(fragment in err for fragment in fragments), err
    return err


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("keep", ["half", "all but 20 bytes"])  # a PNG's last 12 bytes are its IEND
def test_a_truncated_image_is_refused_in_one_line_without_the_model(capsys, tmp_path, no_model, suffix, keep):
    data = _encoded(suffix)
    bad = tmp_path / f"cut.{suffix}"
    bad.write_bytes(data[: len(data) // 2] if keep == "half" else data[:-20])
    _one_line_error(capsys, main(["compress", str(bad), "-o", str(tmp_path / "x.gcz")]), "cut.", "truncated")
    assert not (tmp_path / "x.gcz").exists()


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_truncated_image_on_stdin_is_refused_without_the_model(capsys, tmp_path, monkeypatch, no_model, suffix):
    data = _encoded(suffix)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data[: len(data) // 2])))
    _one_line_error(capsys, main(["compress", "-", "-o", str(tmp_path / "x.gcz")]), "<stdin>", "truncated")


def _png_in_two_data_chunks(pixels: np.ndarray) -> tuple[bytes, bytes]:
    """A PNG whose image data is split over two IDAT chunks: (the whole file, the file without the second
    chunk and IEND). The shorter one ends at a chunk boundary, so only decoding finds it short."""
    height, width = pixels.shape[:2]
    raw = zlib.compress(b"".join(b"\x00" + pixels[row].tobytes() for row in range(height)))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    first = head + chunk(b"IDAT", raw[: len(raw) // 2])
    return first + chunk(b"IDAT", raw[len(raw) // 2:]) + chunk(b"IEND", b""), first


def test_an_image_cut_where_its_container_looks_whole_is_decoded_and_refused_without_the_model(capsys, tmp_path,
                                                                                             no_model):
    whole, cut = _png_in_two_data_chunks(smooth_image(64, 96))
    assert load_image(whole).shape == (64, 96, 3)
    check_not_truncated(io.BytesIO(cut), "'cut.png'")  # the structure alone cannot tell
    bad = tmp_path / "cut.png"
    bad.write_bytes(cut)
    _one_line_error(capsys, main(["compress", str(bad), "-o", str(tmp_path / "x.gcz")]), "cannot read image")


def test_compress_reads_its_input_once_and_compresses_those_pixels(capsys, tmp_path, monkeypatch):
    photo = tmp_path / "photo.png"
    photo.write_bytes(_encoded("png"))
    decodes = []
    original = image_reading._decode
    monkeypatch.setattr(image_reading, "_decode", lambda *a, **k: decodes.append(a[1]) or original(*a, **k))
    for rate in (["--level", "1"], ["--max-bytes", "100000"]):
        decodes.clear()
        target = tmp_path / f"photo{len(rate[1])}.gcz"
        assert main(["compress", str(photo), "-o", str(target), *rate, "--model", "untrained", "--device", "cpu"]) == 0
        assert decodes == [repr(str(photo))], decodes
    capsys.readouterr()


def test_a_batch_of_broken_images_records_each_error_without_the_model(capsys, tmp_path, no_model):
    photos = tmp_path / "photos"
    photos.mkdir()
    for suffix in FORMATS:
        data = _encoded(suffix)
        (photos / f"cut-{suffix}.{suffix}").write_bytes(data[: len(data) // 2])
    code = main(["compress", str(photos), "--out-dir", str(tmp_path / "codes")])
    capsys.readouterr()
    records = [json.loads(line) for line in (tmp_path / "codes" / "manifest.jsonl").read_text().splitlines()]
    assert code == 1 and len(records) == 3
    assert all("truncated" in record["error"] for record in records), records


def test_a_batch_decodes_each_input_once(capsys, tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    for suffix in FORMATS:
        (photos / f"photo-{suffix}.{suffix}").write_bytes(_encoded(suffix))
    decodes = []
    original = image_reading._decode
    monkeypatch.setattr(image_reading, "_decode", lambda *a, **k: decodes.append(a[1]) or original(*a, **k))
    for batch in ("1", "4"):
        decodes.clear()
        assert main(["compress", str(photos), "--out-dir", str(tmp_path / f"codes{batch}"), "--batch-size", batch,
                     "--model", "untrained", "--device", "cpu"]) == 0
        assert sorted(decodes) == sorted(repr(str(p)) for p in photos.iterdir()), decodes
    capsys.readouterr()


# -- the container check ------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", FORMATS)
def test_whole_files_pass_and_every_cut_in_the_image_data_is_seen(suffix):
    data = _encoded(suffix, 48, 64)
    check_not_truncated(io.BytesIO(data), "x")
    check_not_truncated(io.BytesIO(data + b"trailing bytes"), "x")
    # A PNG cut inside its last chunk (IEND, 12 bytes) still decodes, so only cuts before it must be seen.
    after_the_data = len(data) - 12 if suffix == "png" else len(data)
    for length in range(16, len(data)):
        cut = data[:length]
        if length < after_the_data:
            with pytest.raises(InvalidImageError, match="truncated"):
                check_not_truncated(io.BytesIO(cut), "x")
            with pytest.raises(InvalidImageError, match="truncated"):
                load_image(cut)
        else:
            check_not_truncated(io.BytesIO(cut), "x")
            assert load_image(cut).shape == (48, 64, 3)


def test_the_check_keeps_the_file_position_and_passes_other_formats():
    stream = io.BytesIO(b"GIF89a" + bytes(100))
    stream.seek(7)
    check_not_truncated(stream, "x")
    assert stream.tell() == 7


# -- on its own, in a fresh process -------------------------------------------------------------

def test_refusing_a_truncated_image_imports_no_torch(tmp_path):
    """What makes the refusal take a fraction of a second: no torch, no model."""
    data = _encoded("png")
    bad = tmp_path / "cut.png"
    bad.write_bytes(data[: len(data) // 2])
    script = ("import sys\nfrom gencodec.cli import main\n"
              f"code = main(['compress', {str(bad)!r}, '-o', {str(tmp_path / 'x.gcz')!r}])\n"
              "print(code, 'torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.stdout.split() == ["1", "False"], result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1 and "truncated" in result.stderr
    assert not Path(tmp_path / "x.gcz").exists()
