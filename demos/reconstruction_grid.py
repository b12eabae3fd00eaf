#!/usr/bin/env python
"""One picture comparing reconstructions: a row per photo, the original then each rate level.

    python demos/reconstruction_grid.py photos/ --model runs/base/model --levels 0,3,7 --out grid.png

Every tile is labelled with the file's size in bytes and bits per pixel.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

import gencodec
from gencodec.imageio import find_images
from gencodec.errors import GencodecError
from gencodec.imageio import load_image

PAD = 4          # pixels between tiles and around the grid
LABEL_H = 28     # room for two lines of Pillow's default font under each tile


def grid_size(rows: int, columns: int, size: int) -> tuple[int, int]:
    """(width, height) of a grid of `rows` x `columns` tiles of `size` px with their labels."""
    return columns * size + (columns + 1) * PAD, rows * (size + LABEL_H) + (rows + 1) * PAD


def spread_levels(n_levels: int, count: int = 4) -> list[int]:
    """`count` levels spread evenly over 0..n_levels-1, ends included."""
    if n_levels <= count:
        return list(range(n_levels))
    return sorted({round(i * (n_levels - 1) / (count - 1)) for i in range(count)})


def parse_levels(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected levels like 0,3,7, got {text!r}") from None


def collect_photos(inputs: list[str]) -> list[Path]:
    """Files as given; folders expanded to the images they hold."""
    photos = []
    for item in map(Path, inputs):
        photos.extend(find_images(item) if item.is_dir() else [item])
    return photos


def _label(lines: list[str], width: int) -> Image.Image:
    """The text under a tile, drawn on its own strip so that a long line is cut, not spilled on the next."""
    strip = Image.new("RGB", (width, LABEL_H), "white")
    ImageDraw.Draw(strip).multiline_text((0, 2), "\n".join(lines), fill="black", spacing=2)
    return strip


def make_grid(codec, photos: list[Path], levels: list[int], realism: float, size: int,
              steps: int | None = None, seed: int = 0) -> Image.Image:
    """The grid for `photos` at `levels`, decoded at `realism`."""
    grid = Image.new("RGB", grid_size(len(photos), 1 + len(levels), size), "white")
    for row, photo in enumerate(photos):
        original = load_image(photo)
        height, width = original.shape[:2]
        tiles = [(Image.fromarray(original), [photo.name, f"{width}x{height}"])]
        for level in levels:
            data = codec.compress(original, level=level)
            decoded = codec.decompress(data, realism=realism, steps=steps, seed=seed)
            bpp = 8 * len(data) / (width * height)
            tiles.append((decoded, [f"level {level}: {len(data)} bytes", f"{bpp:.4f} bpp, r={realism:g}"]))
        top = PAD + row * (size + LABEL_H + PAD)
        for column, (image, lines) in enumerate(tiles):
            left = PAD + column * (size + PAD)
            # Scaled to fit the tile and centred, so photos of any shape line up.
            thumb = ImageOps.contain(image, (size, size), Image.Resampling.LANCZOS)
            grid.paste(thumb, (left + (size - thumb.width) // 2, top + (size - thumb.height) // 2))
            grid.paste(_label(lines, size), (left, top + size))
    return grid


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", nargs="+", help="photo files, or folders of photos")
    p.add_argument("--model", default=gencodec.DEFAULT_MODEL,
                   help="model folder or shipped model name; default: %(default)s")
    p.add_argument("--levels", type=parse_levels,
                   help="comma-separated rate levels, e.g. 0,3,7; default: four spread over the model's ladder")
    p.add_argument("--realism", type=float,
                   help="decode realism, 0 to 1; default: 1 (0 for a model without a generative decoder)")
    p.add_argument("--steps", type=int, help="diffusion steps; default: the codec's")
    p.add_argument("--seed", type=int, default=0, help="sampling seed; default: %(default)s")
    p.add_argument("--size", type=int, default=256, help="tile size in pixels; default: %(default)s")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    p.add_argument("--out", default="grid.png", help="output image; default: %(default)s")
    args = p.parse_args(argv)
    if args.size < 16:
        p.error("--size must be at least 16")
    if Path(args.out).suffix.lower() not in Image.registered_extensions():
        p.error(f"--out {args.out}: not an image file name Pillow can write (use .png or .jpg)")
    try:
        photos = collect_photos(args.photos)
        codec = gencodec.load(args.model, device=args.device)
        levels = args.levels if args.levels else spread_levels(codec.n_levels)
        bad = [lv for lv in levels if not 0 <= lv < codec.n_levels]
        if bad:
            raise GencodecError(f"level {bad[0]} is out of range: this model has levels 0..{codec.n_levels - 1}")
        realism = args.realism if args.realism is not None else (1.0 if codec.is_generative else 0.0)
        grid = make_grid(codec, photos, levels, realism, args.size, steps=args.steps, seed=args.seed)
        grid.save(args.out)
    except (GencodecError, OSError) as exc:  # OSError: e.g. an unwritable --out
        print(f"reconstruction_grid.py: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({len(photos)} photos x levels {','.join(map(str, levels))}, realism {realism:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
