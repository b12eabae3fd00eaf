#!/usr/bin/env python
"""Real file sizes against the model's information content, over a folder of photos.

    python demos/rate_check.py --model runs/base/model ../shared/data/kodak

For each level: mean real bytes and bpp, mean information content (the sum of
-log2 p over the coded symbols, in bytes), the mean overhead (real minus
information: the 10 container bytes plus the ANS word padding), and the largest
relative gap between a payload and its information content.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import gencodec
from gencodec import bitstream
from gencodec.imageio import find_images


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder")
    p.add_argument("--model", default=gencodec.DEFAULT_MODEL)
    p.add_argument("--levels", default=None, help="comma-separated; default: all")
    p.add_argument("--json", metavar="FILE", default=None,
                   help="also write each level's bpp (mean, min, max) over the folder as JSON "
                        "(the rate ladder of a model card)")
    args = p.parse_args()
    codec = gencodec.load(args.model)
    levels = [int(v) for v in args.levels.split(",")] if args.levels else list(range(codec.n_levels))
    photos = find_images(args.folder)
    print(f"{len(photos)} photos, model {args.model}")
    print(f"{'level':>5}{'bytes':>10}{'bpp':>9}{'info bytes':>12}{'overhead':>10}{'max payload gap':>17}")
    container = bitstream.HEADER_BYTES + bitstream.CHECKSUM_BYTES
    ladder = []
    for level in levels:
        real, info, gaps, bpp = [], [], [], []
        for photo in photos:
            code, h, w = codec.analyse(photo, level)
            payload, bits = codec.entropy_code(code, level, h, w)
            data = codec.encode_code(code, level, h, w)
            real.append(len(data))
            info.append(bits / 8)
            bpp.append(8 * len(data) / (h * w))
            gaps.append(abs(len(payload) - bits / 8) / max(bits / 8, 1))
            assert len(data) == len(payload) + container
        print(f"{level:>5}{np.mean(real):>10.1f}{np.mean(bpp):>9.4f}{np.mean(info):>12.1f}"
              f"{np.mean(real) - np.mean(info):>10.2f}{100 * max(gaps):>16.3f}%")
        ladder.append({"level": level, "bpp_mean": float(np.mean(bpp)), "bpp_min": float(min(bpp)),
                       "bpp_max": float(max(bpp)), "bytes_mean": float(np.mean(real))})
    if args.json:
        Path(args.json).write_text(json.dumps({"folder": str(args.folder), "photos": len(photos),
                                               "levels": ladder}, indent=1) + "\n")


if __name__ == "__main__":
    main()
