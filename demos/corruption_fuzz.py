#!/usr/bin/env python
"""Damage real gencodec files and count how many damaged files are refused.

    python demos/corruption_fuzz.py --model runs/base/model --cases 10000 photo1.png photo2.png

For each photo (compressed at a few levels) it tries every truncation and
`--cases` random single-byte changes; a damaged file that decodes without an
error counts as missed.

Then forged files, as someone who recomputes the checksum would make them: a
valid header with the model's fingerprint that claims a size up to
16384x16384, over a payload of 4 to 88 bytes (random, all ones, or zeros).
Each must be refused; the table gives the slowest refusal and the peak memory
above the loaded model (which has decoded one real file, so its tables exist).
With no photos, only the forged files are tried.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time

import gencodec
from gencodec import bitstream
from gencodec.evaluation.bench import synthetic_photo

FORGED_SIZES = [(1, 1), (64, 64), (768, 512), (2048, 2048), (4096, 4096), (8192, 8192), (16384, 16384)]


def decodes(codec, data: bytes) -> bool:
    try:
        codec.decompress(data)
    except gencodec.GencodecError:
        return False
    return True


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def forged_payloads(rng: random.Random):
    for words in (1, 2, 5, 10, 22):
        yield bytes(rng.getrandbits(8) for _ in range(4 * words))
        yield b"\xff" * (4 * words)
        yield b"\x00" * (4 * words - 1) + b"\x01"


def forged_files(codec, rng: random.Random) -> None:
    codec.decompress(codec.compress(synthetic_photo(128, 192)))  # builds the tables: part of a loaded model
    base = peak_rss_mb()
    print(f"{'claimed size':>14}{'files':>7}{'refused':>9}{'slowest ms':>12}{'peak MB above model':>21}")
    for width, height in FORGED_SIZES:
        refused = slowest = 0
        payloads = list(forged_payloads(rng))
        for payload in payloads:
            header = bitstream.Header(level=rng.randrange(codec.n_levels), fingerprint=codec.fingerprint16,
                                      width=width, height=height)
            start = time.perf_counter()
            refused += not decodes(codec, bitstream.pack_file(header, payload))
            slowest = max(slowest, time.perf_counter() - start)
        print(f"{f'{width}x{height}':>14}{len(payloads):>7}{refused:>9}{1000 * slowest:>12.1f}"
              f"{peak_rss_mb() - base:>21.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", nargs="*", help="photos to damage (none: forged files only)")
    p.add_argument("--model", default=gencodec.DEFAULT_MODEL)
    p.add_argument("--levels", default="0,3,7")
    p.add_argument("--cases", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    codec = gencodec.load(args.model, max_pixels=None)  # the stream's own bound, not the pixel budget
    rng = random.Random(args.seed)
    forged_files(codec, rng)
    if not args.photos:
        return
    files = [codec.compress(photo, level=int(lv)) for photo in args.photos for lv in args.levels.split(",")]
    start = time.time()
    truncations = [f[:n] for f in files for n in range(len(f))]
    missed_trunc = sum(decodes(codec, t) for t in truncations)
    missed_bytes = 0
    for i in range(args.cases):
        data = bytearray(files[i % len(files)])
        pos = rng.randrange(len(data))
        data[pos] = (data[pos] + rng.randrange(1, 256)) % 256
        missed_bytes += decodes(codec, bytes(data))
    print(f"files: {len(files)} ({min(map(len, files))}..{max(map(len, files))} bytes)")
    print(f"truncations detected: {len(truncations) - missed_trunc}/{len(truncations)}")
    print(f"single-byte changes detected: {args.cases - missed_bytes}/{args.cases}")
    print(f"time: {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
