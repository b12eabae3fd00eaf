#!/usr/bin/env python
"""Damage real gencodec files and count how many damaged files are refused.

    python demos/corruption_fuzz.py --model runs/base/model --cases 10000 photo1.png photo2.png

For each photo (compressed at a few levels) it tries every truncation and
`--cases` random single-byte changes; a damaged file that decodes without an
error counts as missed.
"""

from __future__ import annotations

import argparse
import random
import time

import gencodec


def decodes(codec, data: bytes) -> bool:
    try:
        codec.decompress(data)
    except gencodec.GencodecError:
        return False
    return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", nargs="+")
    p.add_argument("--model", default=gencodec.DEFAULT_MODEL)
    p.add_argument("--levels", default="0,3,7")
    p.add_argument("--cases", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    codec = gencodec.load(args.model)
    files = [codec.compress(photo, level=int(lv)) for photo in args.photos for lv in args.levels.split(",")]
    rng = random.Random(args.seed)
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
