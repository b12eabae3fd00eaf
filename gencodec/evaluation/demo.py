"""`gencodec demo`: compress photos at several levels, decompress, show the results.

Without photos it uses sample photos that ship with scikit-image. It prints a
table (bytes, bpp, PSNR, LPIPS when its weights are at hand, seconds) and
writes the .gcz files, the reconstructions and index.html, a page that opens
from disk with each photo beside its reconstructions.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import numpy as np

from . import metrics
from ..codec import Codec
from ..imageio import load_image, save_image

SAMPLE_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png")


def sample_photos() -> list[Path]:
    """Photos bundled with scikit-image (no download needed)."""
    import skimage.data
    folder = Path(skimage.data.__file__).parent
    return [folder / name for name in SAMPLE_PHOTOS if (folder / name).is_file()]


def run_demo(codec: Codec, photos: list[Path], out: Path, levels: list[int], lpips_net=None,
             realism: float | None = None, log=print) -> list[dict]:
    """Compress every photo at every level; write .gcz, .png and index.html; return the table rows."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    log(f"{'photo':<22}{'level':>6}{'bytes':>8}{'bpp':>9}{'PSNR':>8}{'LPIPS':>8}{'enc s':>8}{'dec s':>8}")
    for photo in photos:
        original = load_image(photo)
        save_image(original, out / f"{photo.stem}.png")
        for level in levels:
            t0 = time.perf_counter()
            data = codec.compress(original, level=level)
            t1 = time.perf_counter()
            decoded = np.asarray(codec.decompress(data, realism=realism))
            t2 = time.perf_counter()
            name = f"{photo.stem}_level{level}"
            (out / f"{name}.gcz").write_bytes(data)
            save_image(decoded, out / f"{name}.png")
            row = dict(photo=photo.stem, level=level, bytes=len(data),
                       bpp=8 * len(data) / (original.shape[0] * original.shape[1]),
                       psnr=metrics.psnr(decoded, original),
                       lpips=None if lpips_net is None else metrics.lpips(lpips_net, decoded, original),
                       encode_s=t1 - t0, decode_s=t2 - t1, file=f"{name}.png")
            rows.append(row)
            lp = "-" if row["lpips"] is None else f"{row['lpips']:.3f}"
            log(f"{row['photo']:<22}{level:>6}{row['bytes']:>8}{row['bpp']:>9.4f}{row['psnr']:>8.2f}{lp:>8}"
                f"{row['encode_s']:>8.2f}{row['decode_s']:>8.2f}")
    write_page(out / "index.html", rows)
    return rows


def write_page(path: Path, rows: list[dict]) -> None:
    """A page that opens from disk: each photo beside its reconstructions."""
    parts = ["<!doctype html><meta charset='utf-8'><title>gencodec demo</title>",
             "<style>body{font-family:sans-serif}figure{display:inline-block;margin:4px}"
             "img{max-width:300px}figcaption{font-size:12px}</style>"]
    for photo in dict.fromkeys(r["photo"] for r in rows):
        parts.append(f"<h2>{html.escape(photo)}</h2><figure><img src='{html.escape(photo)}.png'>"
                     "<figcaption>original</figcaption></figure>")
        for r in (r for r in rows if r["photo"] == photo):
            lp = "" if r["lpips"] is None else f", LPIPS {r['lpips']:.3f}"
            parts.append(f"<figure><img src='{html.escape(r['file'])}'><figcaption>level {r['level']}: "
                         f"{r['bytes']} bytes, {r['bpp']:.4f} bpp, {r['psnr']:.2f} dB{lp}</figcaption></figure>")
    path.write_text("\n".join(parts))
