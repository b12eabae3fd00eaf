#!/usr/bin/env python
"""Compress and decompress speed of the shipped models on a GPU (or the CPU), as a table.

    python train/gpu_bench.py                                  # 768x512 and 1920x1080, batch 1 and 16
    python train/gpu_bench.py --sizes 64x48 --batches 1,2 --device cpu --out bench.json   # a dry run

For each model, image size and batch size: one warm-up pass, then one timed
pass of `Codec.compress_batch` over a batch of copies of a sample photo
(scikit-image's astronaut, resized; a smooth synthetic image where
scikit-image is missing), then of `Codec.decompress_batch` over the files, at
the model's default level and decoding settings. Each row gives milliseconds
per image, images per second and the peak GPU memory of the two passes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import gencodec
from gencodec.errors import GencodecError

#: The issue's speed target: decoding 768x512 at batch 16, per image.
DECODE_TARGET = ((768, 512), 16, 20.0)


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return width, height


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="default,pixel", help="comma-separated shipped models or folders")
    p.add_argument("--sizes", default="768x512,1920x1080", help="comma-separated WIDTHxHEIGHT")
    p.add_argument("--batches", default="1,16", help="comma-separated batch sizes")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, help="write the rows as JSON here")
    p.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                   help="time the first pass (dry runs: the figures then include start-up costs)")
    return p.parse_args(argv)


def sample_image(width: int, height: int) -> np.ndarray:
    """A photo at this size: astronaut (scikit-image) resized, else a smooth synthetic picture."""
    try:
        import skimage.data
        photo = Image.fromarray(skimage.data.astronaut())
    except ImportError:
        yy, xx = np.mgrid[0:256, 0:256] / 255.0
        photo = Image.fromarray((np.stack([xx, yy, (xx + yy) / 2], -1) * 255).astype(np.uint8))
    return np.asarray(photo.resize((width, height), Image.Resampling.BICUBIC))


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def bench_one(codec: gencodec.Codec, image: np.ndarray, batch: int, warm_up: bool = True) -> dict:
    """One warm-up pass and one timed pass of compress_batch and decompress_batch."""
    device = codec.device
    images = [image] * batch
    if warm_up:
        files = codec.compress_batch(images, batch_size=batch)
        codec.decompress_batch(files, batch_size=batch)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = _clock(device)
    files = codec.compress_batch(images, batch_size=batch)
    middle = _clock(device)
    decoded = codec.decompress_batch(files, batch_size=batch)
    end = _clock(device)
    failed = [r for r in files + decoded if isinstance(r, GencodecError)]
    if failed:
        raise failed[0]
    return {"compress_ms": 1000 * (middle - start) / batch, "compress_ips": batch / (middle - start),
            "decompress_ms": 1000 * (end - middle) / batch, "decompress_ips": batch / (end - middle),
            "peak_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
            "bytes": len(files[0])}


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = ["| model | device | size | batch | compress ms/image | compress images/s | decompress ms/image "
             "| decompress images/s | peak GPU MiB |", "|" + " --- |" * 9]
    for r in rows:
        peak = "-" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        lines.append(f"| {r['model']} | {r['device']} | {r['size']} | {r['batch']} | {r['compress_ms']:.1f} | "
                     f"{r['compress_ips']:.1f} | {r['decompress_ms']:.1f} | {r['decompress_ips']:.1f} | {peak} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    for name in args.models.split(","):
        codec = gencodec.load(name, device=args.device)
        for width, height in sizes:
            image = sample_image(width, height)
            for batch in batches:
                row = {"model": name, "device": device_name, "size": f"{width}x{height}", "batch": batch,
                       **bench_one(codec, image, batch, args.warm_up)}
                rows.append(row)
                print(f"{name} {width}x{height} batch {batch}: compress {row['compress_ms']:.1f} ms/image, "
                      f"decompress {row['decompress_ms']:.1f} ms/image", flush=True)
        del codec
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    print(table(rows))
    (size, batch, limit) = DECODE_TARGET
    for r in rows:
        if r["size"] == f"{size[0]}x{size[1]}" and r["batch"] == batch:
            verdict = "meets" if r["decompress_ms"] <= limit else "misses"
            print(f"target: {r['model']} decodes {r['size']} at batch {batch} in {r['decompress_ms']:.1f} ms/image "
                  f"({verdict} the {limit:g} ms target)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GencodecError as exc:
        print(f"gpu_bench.py: error: {exc}", file=sys.stderr)
        sys.exit(1)
