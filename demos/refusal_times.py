#!/usr/bin/env python
"""How long `gencodec compress` takes to refuse a truncated image, as a user runs it.

    python demos/refusal_times.py [--photo P] [--sizes 768x512,8192x8192] [--repeats 3] [--model M]

For each size, a photo (or a synthetic one) resized to it is saved as PNG, JPEG and WebP, and each file is
cut in half. `gencodec compress` then runs on each cut file in a fresh process (the console script, start-up
included), `--repeats` times; the table gives the median wall time, the exit status and the error line.
The model is never loaded for these files: the time is what a user waits for the refusal.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

FORMATS = {"PNG": (".png", {}), "JPEG": (".jpg", {"quality": 90}), "WebP": (".webp", {"quality": 80})}


def _photo(path: Path | None, width: int, height: int) -> Image.Image:
    if path is not None:
        return Image.open(path).convert("RGB").resize((width, height), Image.LANCZOS)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) % 256], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8))


def _refuse(command: list[str], cut: Path, out: Path, model: str) -> tuple[float, int, str]:
    """(seconds, exit status, last stderr line) of one `gencodec compress` in a fresh process."""
    start = time.perf_counter()
    result = subprocess.run([*command, "compress", str(cut), "-o", str(out), "--model", model],
                            capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = result.stderr.strip().splitlines()
    return time.perf_counter() - start, result.returncode, (lines[-1] if lines else "") + f" ({len(lines)} line(s))"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", type=Path, default=None, help="the photo to resize; default: a synthetic one")
    parser.add_argument("--sizes", default="768x512,8192x8192", help="WxH,...; default: %(default)s")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="default", help="named, though it is never loaded for a cut file")
    args = parser.parse_args()
    found = shutil.which("gencodec")
    command = [found] if found else [sys.executable, "-m", "gencodec"]
    print(f"{'size':<11}{'format':<8}{'file':>12}{'cut to':>12}{'median s':>10}{'exit':>6}  error")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.lower().split("x"))
            image = _photo(args.photo, width, height)
            for name, (suffix, options) in FORMATS.items():
                whole = folder / f"whole{suffix}"
                image.save(whole, **options)
                data = whole.read_bytes()
                cut = folder / f"cut{suffix}"
                cut.write_bytes(data[: len(data) // 2])
                runs = [_refuse(command, cut, folder / "out.gcz", args.model) for _ in range(args.repeats)]
                seconds = statistics.median(run[0] for run in runs)
                _, status, line = runs[-1]
                print(f"{size:<11}{name:<8}{len(data):>12,}{len(data) // 2:>12,}{seconds:>10.2f}{status:>6}  {line}")


if __name__ == "__main__":
    main()
