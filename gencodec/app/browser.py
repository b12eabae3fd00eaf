"""A headless Chromium driven by Playwright: the browser test of `gencodec app` and the README's screenshots.

It runs the system's Chromium (Debian's `chromium` package, /usr/bin/chromium;
GENCODEC_CHROMIUM names another binary) instead of the one `playwright install`
would download, with its own background traffic (updates, sync, QUIC probes)
off, so that every request it makes is one the page asked for.

    with chromium() as browser:
        page = browser.new_page()
        requests = RequestLog(page.context)
        seconds = process_photo(page, url, "photo.png")
        assert requests.outside_loopback() == []
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from gencodec.app import LOOPBACK_HOSTS

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ENV = "GENCODEC_CHROMIUM"
LAUNCH_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync")
#: URL schemes that never reach a network: inline data, page-made blobs, blank pages, files on this disk.
OFFLINE_SCHEMES = ("data", "blob", "about", "file")
#: The page's layout width for screenshots: Gradio lays the images out in one row from here.
VIEWPORT = {"width": 1400, "height": 1000}


def chromium_path() -> str:
    return os.environ.get(CHROMIUM_ENV) or CHROMIUM


def unavailable_reason() -> str | None:
    """Why no browser can be driven here (a line for a test's skip), or None when one can."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright module is not installed (pip install 'gencodec[dev]')"
    path = chromium_path()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return (f"no Chromium at {path} (on Debian: apt-get install chromium; elsewhere set {CHROMIUM_ENV} "
                "to a Chromium binary)")
    return None


@contextlib.contextmanager
def chromium() -> Iterator:
    """A headless Chromium (a Playwright Browser), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=list(LAUNCH_ARGS))
        try:
            yield browser
        finally:
            browser.close()


def is_loopback(url: str) -> bool:
    """Whether a request to `url` stays on this machine."""
    parts = urlsplit(url)
    return parts.scheme in OFFLINE_SCHEMES or parts.hostname in LOOPBACK_HOSTS


class RequestLog:
    """Every request a browser context makes (pages, frames, workers), in order."""

    def __init__(self, context) -> None:
        self.urls: list[str] = []
        context.on("request", lambda request: self.urls.append(request.url))

    def outside_loopback(self) -> list[str]:
        return [url for url in self.urls if not is_loopback(url)]


# The result is in when our reconstruction has loaded, or the page says why there is none.
_RESULT_SHOWN = """() => {
    const image = document.querySelector('#ours img');
    const status = document.querySelector('#status [data-testid="markdown"]');
    return (image && image.complete && image.naturalWidth > 0) || (status && status.innerText.trim() !== '');
}"""


def _set_number(page, selector: str, value: int) -> None:
    field = page.locator(selector)
    field.fill(str(value))
    field.press("Tab")  # Gradio takes a number field's value when it loses focus


def process_photo(page, url: str, photo: str | Path, max_bytes: int | None = None, level: int | None = None,
                  timeout_s: float = 300) -> float:
    """Open the app at `url`, upload `photo`, choose the rate (a byte budget, or a level; neither: the page's
    default), press Compress and wait for the result (or the page's message); returns the seconds from the start
    of the upload to the result."""
    photo = Path(photo)
    page.goto(url, wait_until="networkidle", timeout=60_000)
    if max_bytes is not None:
        _set_number(page, "#max-bytes input", max_bytes)
    elif level is not None:
        page.locator("#rate-by").get_by_label("level", exact=True).check()
        _set_number(page, "#level input[type=number]", level)
    start = time.perf_counter()
    page.locator("#photo input[type=file]").set_input_files(str(photo))
    # The upload is done when the component names the file (its stem and suffix apart); pressing Compress
    # earlier would send no photo.
    page.locator("#photo").get_by_text(photo.stem, exact=True).first.wait_for(timeout=60_000)
    page.locator("#compress").click()
    page.wait_for_function(_RESULT_SHOWN, timeout=timeout_s * 1000, polling=200)
    return time.perf_counter() - start


def save_small_png(png: bytes, path: str | Path, max_bytes: int = 200_000, max_width: int = 1200) -> Path:
    """Save a screenshot as a PNG of at most `max_bytes`: scaled to `max_width`, then to fewer colours and
    smaller sizes until it fits."""
    from PIL import Image

    path = Path(path)
    with Image.open(io.BytesIO(png)) as shot:
        image = shot.convert("RGB")
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.LANCZOS)
    colours = 256
    while True:
        buffer = io.BytesIO()
        image.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            buffer, format="PNG", optimize=True)
        if buffer.tell() <= max_bytes or image.width <= 320:
            break
        if colours > 64:
            colours //= 2
        else:
            image = image.resize((round(image.width * 0.85), round(image.height * 0.85)), Image.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path
