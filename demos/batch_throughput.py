#!/usr/bin/env python
"""Images per second of compress and decompress: one command per image, one batch, and a batch on N workers.

    python demos/batch_throughput.py PHOTOS [--count 100] [--single 10] [--workers 2] [--model M]

The first `--count` photos of PHOTOS (recursively), centre-cropped and resized
to 768x512 (Kodak's size), are written to a temporary folder. Then, timed by
the wall clock, each as a user would run it: `gencodec compress` once per
image (on the first `--single` photos only: each call pays the start-up), one
batch over the folder, and one batch with `--workers N`; the same for
decompress, on the files the batch wrote. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

from gencodec.collection import find_files
from gencodec.constants import IMAGE_SUFFIXES


def gencodec(*argv: str) -> float:
    """Seconds of one gencodec command (exit status 0 required)."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "gencodec", *argv], capture_output=True, text=True, check=False,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if result.returncode != 0:
        sys.exit(f"gencodec {' '.join(argv)} failed:\n{result.stderr}")
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--single", type=int, default=10, help="photos timed one command each")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--model", default="default")
    args = p.parse_args()
    model = ["--model", args.model]
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp, "photos")
        photos.mkdir()
        for i, source in enumerate(find_files(args.photos, IMAGE_SUFFIXES)[: args.count]):
            with Image.open(source) as image:
                ImageOps.fit(image.convert("RGB"), (768, 512)).save(photos / f"{i:05d}.png")
        n = len(list(photos.iterdir()))
        rows = []
        for command, source, suffix in (("compress", photos, ".gcz"), ("decompress", Path(tmp, "codes"), ".png")):
            files = sorted(source.rglob("*.png" if command == "compress" else "*.gcz"))[: args.single]
            single = sum(gencodec(command, str(f), "-o", str(Path(tmp, f"single{suffix}")), "--force", *model)
                         for f in files)
            out = Path(tmp, "codes" if command == "compress" else "decoded")
            batch = gencodec(command, str(source), "--out-dir", str(out), *model)
            workers = gencodec(command, str(source), "--out-dir", str(out) + "-workers", "--workers",
                               str(args.workers), *model)
            rows.append((command, len(files) / single, n / batch, n / workers))
    print(f"{n} photos of 768x512, model {args.model}, {os.cpu_count()} CPUs; images per second (wall clock):")
    print(f"{'':>11}{'one command per image':>23}{'one batch':>11}{f'{args.workers} workers':>11}{'batch gain':>12}")
    for command, single, batch, workers in rows:
        print(f"{command:>11}{single:>23.2f}{batch:>11.2f}{workers:>11.2f}{max(batch, workers) / single:>11.1f}x")


if __name__ == "__main__":
    main()
