"""`gencodec app` without a browser: the work behind the page (gencodec.app.session), its form, and the command.

The page itself, in a real browser, is tested in test_app_browser.py.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageFile

from gencodec.app.session import Settings, compare
from gencodec.cli import main
from gencodec.errors import GencodecError, InvalidImageError

from .conftest import smooth_image


@pytest.fixture(scope="module")
def photo_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("upload") / "my photo.png"
    Image.fromarray(smooth_image(96, 128, seed=3)).save(path)
    return path


@pytest.fixture(scope="module")
def comparison(untrained_codec, photo_png, tmp_path_factory):
    return compare(untrained_codec, photo_png, Settings(level=1, realism=1.0, seed=5),
                   tmp_path_factory.mktemp("results"))


def test_sizes_shown_are_the_files_sizes(comparison):
    ours, classical = comparison.ours, comparison.classical
    assert ours.n_bytes == ours.path.stat().st_size == len(ours.path.read_bytes())
    assert classical is not None, "a photo-like 128x96 image fits some classical codec at our file's size"
    assert classical.n_bytes == classical.path.stat().st_size <= ours.n_bytes
    summary = comparison.summary()
    for coded in (ours, classical):
        bpp = 8 * coded.n_bytes / (128 * 96)
        assert f"{coded.n_bytes:,}" in summary and f"{bpp:.4f}" in summary
        assert f"{coded.n_bytes:,} bytes, {bpp:.4f} bpp" in comparison.caption(coded)
    assert classical.codec in summary and ours.path.name == "my_photo.gcz"


def test_ours_decodes_from_the_offered_file(untrained_codec, comparison):
    data = comparison.ours.path.read_bytes()
    info = untrained_codec.info(data)
    assert (info.width, info.height, info.level) == (128, 96, 1)
    decoded = np.asarray(untrained_codec.decompress(data, realism=1.0, seed=5))
    assert np.array_equal(decoded, comparison.ours.decoded)
    assert comparison.original.shape == decoded.shape


def test_byte_budget_picks_the_highest_level_that_fits(untrained_codec, photo_png, tmp_path):
    sizes = untrained_codec.sizes_by_level(photo_png)
    result = compare(untrained_codec, photo_png, Settings(max_bytes=sizes[2], realism=0.0), tmp_path)
    assert result.ours.n_bytes <= sizes[2]
    assert result.ours.path.read_bytes() == untrained_codec.compress_to_target(photo_png, max_bytes=sizes[2])


def test_a_budget_below_the_smallest_file_says_so(untrained_codec, photo_png, tmp_path):
    with pytest.raises(GencodecError, match="cannot meet 10 bytes: the smallest file at level 0 is"):
        compare(untrained_codec, photo_png, Settings(max_bytes=10), tmp_path)


def test_no_classical_file_is_said_plainly(untrained_codec, photo_png, tmp_path, monkeypatch):
    monkeypatch.setattr("gencodec.app.session.best_of", lambda *args, **kwargs: None)
    result = compare(untrained_codec, photo_png, Settings(level=0, realism=0.0), tmp_path)
    assert result.classical is None
    assert f"No classical file fits in {result.ours.n_bytes:,} bytes" in result.summary()


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(smooth_image(64, 64)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("name, content, expected", [
    ("notes.txt", b"not an image at all\n", "cannot read image 'notes.txt': not a recognised image format"),
    ("cut.png", _png_bytes()[:300], "cannot read image 'cut.png': "),
    ("empty.jpg", b"", "'empty.jpg' is empty (0 bytes)"),
])
def test_bad_uploads_get_one_line_naming_the_file(untrained_codec, tmp_path, name, content, expected):
    upload = tmp_path / name
    upload.write_bytes(content)
    with pytest.raises(InvalidImageError) as caught:
        compare(untrained_codec, upload, Settings(), tmp_path)
    message = str(caught.value)
    assert message.startswith(expected) and "\n" not in message and str(tmp_path) not in message
    assert not list(tmp_path.glob("result-*")), "nothing is written for a bad upload"


def test_no_photo_yet(untrained_codec, tmp_path):
    with pytest.raises(GencodecError, match="no photo yet"):
        compare(untrained_codec, None, Settings(), tmp_path)


def test_the_pixel_budget_refuses_a_large_photo_before_decoding_it(untrained_codec, photo_png, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setattr(untrained_codec, "max_pixels", 128 * 96 - 1)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("the pixels were decoded"))
    with pytest.raises(InvalidImageError, match=r"image is too large \(128x96 = 12,288 pixels; the pixel budget "
                                                r"is 12,287"):
        compare(untrained_codec, photo_png, Settings(), tmp_path)


# -- the form, the command, the browser's setup --------------------------------------------------------

def test_form_values_become_settings():
    ui = pytest.importorskip("gencodec.app.ui", reason="needs the app extra (gradio)")
    assert ui.settings_from_form(ui.BY_BYTES, 1500.0, 3, 0.5, 7.0) == Settings(max_bytes=1500, realism=0.5, seed=7)
    assert ui.settings_from_form(ui.BY_LEVEL, 1500, 3.0, 1, None) == Settings(level=3, realism=1.0, seed=0)
    for budget in (None, 0):
        with pytest.raises(GencodecError, match="byte budget must be a positive"):
            ui.settings_from_form(ui.BY_BYTES, budget, 3, 1, 0)
    with pytest.raises(GencodecError, match="seed must be 0 or more"):
        ui.settings_from_form(ui.BY_LEVEL, None, 3, 1, -1)


def test_registering_the_command_imports_no_web_framework():
    code = ("import json, sys\nfrom gencodec.cli import build_parser\nbuild_parser()\n"
            "print(json.dumps([m for m in sys.modules if m.split('.')[0] in ('gradio', 'torch', 'fastapi')]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_app_without_gradio_names_the_extra(capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "gencodec.app.ui", raising=False)  # so that it is imported again
    monkeypatch.setitem(sys.modules, "gradio", None)
    assert main(["app", "--model", "untrained", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'gencodec app'" in err and "pip install 'gencodec[app]'" in err


def test_a_port_in_use_fails_before_the_model_loads(capsys, monkeypatch):
    pytest.importorskip("gradio", reason="needs the app extra (gradio)")
    monkeypatch.setattr("gencodec.cli.common.load_codec", lambda args: pytest.fail("the model was loaded"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["app", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err == f"gencodec: error: port {port} on 127.0.0.1 is in use; choose another with --port\n"


def test_without_a_browser_the_reason_says_what_to_install(monkeypatch):
    from gencodec.app import browser

    no_playwright = "the playwright module is not installed (pip install 'gencodec[dev]')"
    monkeypatch.setenv(browser.CHROMIUM_ENV, "/nowhere/chromium")
    reason = browser.unavailable_reason()
    assert reason == no_playwright or reason.startswith("no Chromium at /nowhere/chromium (on Debian: apt-get install")
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *args: None)
    assert browser.unavailable_reason() == no_playwright


@pytest.mark.parametrize("url, local", [
    ("http://127.0.0.1:7860/assets/index.js", True), ("ws://localhost:80/queue", True), ("http://[::1]:1/", True),
    ("data:image/png;base64,AAAA", True), ("blob:http://127.0.0.1:7860/x", True), ("file:///tmp/index.html", True),
    ("https://fonts.googleapis.com/css2?family=Source+Sans+Pro", False), ("http://127.0.0.2.example.com/", False),
])
def test_requests_off_the_machine_are_told_apart(url, local):
    from gencodec.app.browser import is_loopback

    assert is_loopback(url) is local
