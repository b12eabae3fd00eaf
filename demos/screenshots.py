#!/usr/bin/env python
"""Screenshots for the README, taken by a headless Chromium: the demo page, and the app after a photo.

    python demos/screenshots.py --app docs/app.png
    python demos/screenshots.py --demo-page gencodec-demo --demo-out docs/demo.png
    python demos/screenshots.py --app docs/app.png --photo my.jpg --model untrained

--demo-page DIR opens DIR/index.html (what `gencodec demo --out DIR` writes)
from disk and shoots its top, down to the end of the first photo's grid. --app OUT serves
`gencodec app` in this process on a free loopback port, uploads --photo
(default: Kodak's kodim23 from ../shared, else a scikit-image sample photo),
presses Compress at the page's default settings, and shoots the whole page.
Each PNG is scaled down and reduced in colours until it is at most --max-kb.

It uses the same browser setup as the app's browser test
(gencodec.app.browser: Debian's chromium, driven by Playwright), and says
which requests, if any, left the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from gencodec.app import browser

KODAK_PHOTO = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak" / "kodim23.png"


def default_photo() -> Path:
    if KODAK_PHOTO.is_file():
        return KODAK_PHOTO
    from gencodec.evaluation.demo import sample_photos

    return sample_photos()[0]


def report_requests(requests: browser.RequestLog, what: str) -> None:
    outside = requests.outside_loopback()
    if outside:
        print(f"warning: {what} made {len(outside)} requests off this machine: {', '.join(outside[:5])}",
              file=sys.stderr)


#: The tallest demo-page screenshot, in CSS pixels.
DEMO_MAX_HEIGHT = 3000


def shoot_demo_page(chromium, folder: Path, out: Path, max_bytes: int) -> Path:
    page_file = folder / "index.html"
    if not page_file.is_file():
        raise SystemExit(f"error: no {page_file}: run `gencodec demo --out {folder}` first")
    context = chromium.new_context(viewport=browser.VIEWPORT)
    requests = browser.RequestLog(context)
    page = context.new_page()
    page.goto(page_file.resolve().as_uri(), wait_until="load", timeout=60_000)
    # The top of the page down to the end of the first photo's grid: the header, the plot, one photo.
    bottom = page.evaluate("(() => { const t = document.querySelector('table.grid');"
                           " return t ? t.getBoundingClientRect().bottom + window.scrollY + 16 : 1000; })()")
    height = int(min(bottom, DEMO_MAX_HEIGHT))
    shot = page.screenshot(full_page=True, clip={"x": 0, "y": 0, "width": browser.VIEWPORT["width"], "height": height})
    saved = browser.save_small_png(shot, out, max_bytes)
    report_requests(requests, "the demo page")
    context.close()
    return saved


def shoot_app(chromium, photo: Path, model: str, device: str | None, out: Path, max_bytes: int) -> Path:
    import gencodec
    from gencodec.app import ui
    from gencodec.app.commands import sample_photos

    codec = gencodec.load(model, device=device)
    with (tempfile.TemporaryDirectory(prefix="gencodec-app-") as results,
          ui.running(codec, results, sample_photos(), model_name=model) as (_, url)):
        context = chromium.new_context(viewport=browser.VIEWPORT)
        requests = browser.RequestLog(context)
        page = context.new_page()
        seconds = browser.process_photo(page, url, photo)
        status = page.inner_text("#status").strip()
        if status:
            raise SystemExit(f"error: the app did not compress {photo.name}: {status}")
        saved = browser.save_small_png(page.screenshot(full_page=True), out, max_bytes)
        report_requests(requests, "the app")
        context.close()
    print(f"{photo.name}: upload to result {seconds:.1f} s")
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", metavar="OUT", type=Path, help="shoot the app after a photo into OUT (a .png)")
    parser.add_argument("--photo", type=Path, default=None, help="the photo to upload; default: kodim23, else a "
                                                                  "scikit-image sample photo")
    parser.add_argument("--model", default="default", help="the app's model; default: %(default)s")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    parser.add_argument("--demo-page", metavar="DIR", type=Path, help="shoot DIR/index.html, a `gencodec demo` page")
    parser.add_argument("--demo-out", metavar="OUT", type=Path, default=Path("docs/demo.png"),
                        help="where the demo page's screenshot goes; default: %(default)s")
    parser.add_argument("--max-kb", type=int, default=200, help="largest PNG, in KB; default: %(default)s")
    args = parser.parse_args()
    if not (args.app or args.demo_page):
        parser.error("nothing to shoot: give --app OUT, --demo-page DIR, or both")
    reason = browser.unavailable_reason()
    if reason:
        raise SystemExit(f"error: no browser to take screenshots with: {reason}")

    max_bytes = args.max_kb * 1000
    with browser.chromium() as chromium:
        if args.demo_page:
            saved = shoot_demo_page(chromium, args.demo_page, args.demo_out, max_bytes)
            print(f"wrote {saved} ({saved.stat().st_size / 1000:.0f} KB)")
        if args.app:
            photo = args.photo or default_photo()
            saved = shoot_app(chromium, photo, args.model, args.device, args.app, max_bytes)
            print(f"wrote {saved} ({saved.stat().st_size / 1000:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
