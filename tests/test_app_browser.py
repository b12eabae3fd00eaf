"""`gencodec app` in a real browser: Debian's headless Chromium, driven by Playwright, on a Kodak photo.

The app runs in this process on a free loopback port, with the shipped default
model and the page's own default settings (a 1000-byte budget). The test
uploads the photo, waits for the result, and checks what a visitor sees: both
images rendered, their real byte sizes shown, the .gcz offered for download
(and its size the one shown), and no request leaving the loopback interface,
neither the page's (the browser's request log) nor the server's (every
connection and name lookup of this process while the app serves). It skips,
saying why, only where no browser can be driven (no playwright module, or no
Chromium: `make test` installs Debian's where apt-get can).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from gencodec import bitstream
from gencodec.app import LOOPBACK_HOSTS, browser

from .conftest import KODAK

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(browser.unavailable_reason() is not None, reason=str(browser.unavailable_reason())),
    # Gradio's queue calls pandas in ways pandas 3 deprecates: theirs to change, not ours.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing"),
]

# The page's images, by the element ids gencodec.app.ui gives them.
IMAGES = ("#original", "#ours", "#classical")
# Compressing, decoding and the classical search take about 10 s on a busy two-core machine: ample room.
RESULT_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def photo():
    """kodim23 (768x512); without ../shared, one of scikit-image's sample photos."""
    if (KODAK / "kodim23.png").is_file():
        return KODAK / "kodim23.png"
    pytest.importorskip("skimage", reason="no Kodak photo and no scikit-image sample photos")
    from gencodec.evaluation.demo import sample_photos
    return sample_photos()[0]


@pytest.fixture(scope="module")
def server_connections():
    """Every address this process connects to, or looks up, while the app serves: the server's own traffic
    (the browser's is in the page's request log)."""
    seen: list[str] = []
    real_connect, real_lookup = socket.socket.connect, socket.getaddrinfo

    def connect(sock, address):
        seen.append(address if isinstance(address, str) else str(address[0]))  # a str: a Unix socket's path
        return real_connect(sock, address)

    def lookup(host, *args, **kwargs):
        seen.append(str(host))
        return real_lookup(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket, "getaddrinfo", lookup)
        yield seen


@pytest.fixture(scope="module")
def app_url(server_connections, tmp_path_factory):
    import gencodec
    from gencodec.app import ui

    codec = gencodec.load("pixel", device="cpu")
    with ui.running(codec, tmp_path_factory.mktemp("app-results")) as (_, url):
        yield url


def _image_widths(page) -> dict[str, int]:
    """naturalWidth of the image in each of IMAGES (0: not loaded; -1: no image there)."""
    return page.evaluate("""(ids) => Object.fromEntries(ids.map((id) => {
        const image = document.querySelector(id + ' img');
        return [id, image ? image.naturalWidth : -1];
    }))""", list(IMAGES))


def _shown_bytes(summary: str, suffix: str) -> int:
    """The bytes the summary table shows for the file ending in `suffix`."""
    for line in summary.splitlines():
        cells = [cell.strip() for cell in line.split("\t")]
        if cells and cells[0].endswith(suffix):
            return int(cells[3].replace(",", ""))
    raise AssertionError(f"no {suffix} row in the summary:\n{summary}")


def test_a_photo_round_trip_in_the_browser(app_url, server_connections, photo, tmp_path):
    from PIL import Image

    with browser.chromium() as chromium:
        context = chromium.new_context(viewport=browser.VIEWPORT, accept_downloads=True)
        requests = browser.RequestLog(context)
        page = context.new_page()
        seconds = browser.process_photo(page, app_url, photo, timeout_s=RESULT_TIMEOUT_S)
        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)

        assert page.inner_text("#status").strip() == ""
        with Image.open(photo) as original:
            size = original.size
        assert _image_widths(page) == dict.fromkeys(IMAGES, size[0]), "each image rendered at the photo's size"
        summary = page.inner_text("#summary")
        ours_bytes = _shown_bytes(summary, ".gcz")
        classical_row = [line for line in summary.splitlines() if re.match(r"\S+\.(jpg|webp|avif|heic)\t", line)]
        assert len(classical_row) == 1, summary
        classical_bytes = int(classical_row[0].split("\t")[3].replace(",", ""))
        assert classical_bytes <= ours_bytes <= 1000  # the page's default budget
        assert f"{ours_bytes:,} bytes" in page.inner_text("#ours")  # the sizes are on the images too
        assert f"{classical_bytes:,} bytes" in page.inner_text("#classical")

        with page.expect_download(timeout=30_000) as download:
            page.locator("#gcz-file a").first.click()
        gcz = download.value
        assert gcz.suggested_filename == f"{photo.stem}.gcz"
        data = Path(gcz.path()).read_bytes()
        header = bitstream.peek_header(data)  # a whole .gcz file: its checksum holds
        assert len(data) == ours_bytes and (header.width, header.height) == size

        assert requests.urls, "the request log saw the page load"
        assert requests.outside_loopback() == [], "every request of the page stays on this machine"
        context.close()
    assert server_connections, "the server's connections were seen (Gradio checks its own URL when it starts)"
    assert [host for host in server_connections if host not in LOOPBACK_HOSTS and "/" not in host] == []
    print(f"\nupload to result: {seconds:.1f} s ({photo.name}); screenshot: {tmp_path / 'app.png'}")
