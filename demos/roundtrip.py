#!/usr/bin/env python
"""Compress photos at every level of a model and print bytes, bpp and PSNR.

    python demos/roundtrip.py --model runs/base/model photo1.jpg photo2.png
"""

from __future__ import annotations

import argparse

import numpy as np

import gencodec
from gencodec.imageio import load_image


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", nargs="+")
    p.add_argument("--model", default=gencodec.DEFAULT_MODEL)
    args = p.parse_args()
    codec = gencodec.load(args.model)
    for path in args.photos:
        original = load_image(path).astype(np.float64)
        for level in range(codec.n_levels):
            data = codec.compress(path, level=level)
            decoded = np.asarray(codec.decompress(data), dtype=np.float64)
            psnr = 10 * np.log10(255 ** 2 / max(np.mean((decoded - original) ** 2), 1e-12))
            print(f"{path}  level {level}: {len(data)} bytes, {codec.info(data).bpp:.4f} bpp, {psnr:.2f} dB")


if __name__ == "__main__":
    main()
