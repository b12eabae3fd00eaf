#!/usr/bin/env python
"""Peak memory and time of compressing and decompressing large images, as a user runs them.

    python demos/large_images.py --sizes 2048,4096,8192 [--model M] [--level 3] [--photo P]

For each size, a photo (or a synthetic one) resized to NxN is written as a PNG,
then `gencodec compress` and `gencodec decompress` each run in a fresh process
(with --max-pixels large enough). Each process reports its own peak resident
memory, so the table gives the peak of each command alone, model loading
included; the first row (64x64) shows what loading the model and the runtime
cost by themselves. Times are wall clock and include the model load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

# Runs gencodec's command line and prints the process's peak RSS (MB) on its last stderr line.
_CHILD = """
import resource, sys
from gencodec.cli import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)
sys.exit(code)
"""


def run_command(argv: list[str]) -> tuple[float, float]:
    """(seconds, peak MB) of one gencodec command in a fresh process; exits on failure."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _CHILD, *argv], capture_output=True, text=True, check=False,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"gencodec {' '.join(argv)} failed:\n{result.stderr}")
    return seconds, float(result.stderr.strip().splitlines()[-1])


def make_photo(side: int, photo: str | None, path: Path) -> None:
    if photo:
        image = Image.open(photo).convert("RGB")
    else:
        from gencodec.evaluation.bench import synthetic_photo
        image = Image.fromarray(synthetic_photo(512, 512))
    image.resize((side, side), Image.Resampling.LANCZOS).save(path, compress_level=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="2048,4096,8192", help="square sides, comma-separated")
    p.add_argument("--model", default="default")
    p.add_argument("--level", type=int, default=3)
    p.add_argument("--realism", type=float, default=None, help="default: the model's default decoding")
    p.add_argument("--photo", help="a photo to resize (default: a synthetic one)")
    args = p.parse_args()
    sides = [64] + [int(s) for s in args.sizes.split(",")]
    common = ["--model", args.model, "--max-pixels", str(max(sides) ** 2), "--force"]
    realism = [] if args.realism is None else ["--realism", str(args.realism)]
    print(f"model {args.model}, level {args.level}, {os.cpu_count()} CPUs, torch threads: default")
    print(f"{'size':>11}{'bytes':>9}{'encode s':>10}{'encode MB':>11}{'decode s':>10}{'decode MB':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for side in sides:
            png, gcz, out = Path(tmp, f"{side}.png"), Path(tmp, f"{side}.gcz"), Path(tmp, f"{side}_out.png")
            make_photo(side, args.photo, png)
            enc_s, enc_mb = run_command(["compress", str(png), "-o", str(gcz), "--level", str(args.level), *common])
            dec_s, dec_mb = run_command(["decompress", str(gcz), "-o", str(out), *realism, *common])
            with Image.open(out) as decoded:
                assert decoded.size == (side, side), decoded.size
            print(f"{f'{side}x{side}':>11}{gcz.stat().st_size:>9}{enc_s:>10.1f}{enc_mb:>11.0f}{dec_s:>10.1f}"
                  f"{dec_mb:>11.0f}", flush=True)


if __name__ == "__main__":
    main()
