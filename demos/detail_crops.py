#!/usr/bin/env python
"""1:1 crops at 2x of the original beside our reconstructions and the classical file, from eval folders.

    python demos/detail_crops.py EVAL_DIR [EVAL_DIR2 ...] --photos kodim01,kodim23 --levels 3 --out crops.png

One row per (photo, level): the original, then for each eval folder our file
at realism 0 and 1, then the best classical file at or under the first
folder's bytes (by LPIPS, as `gencodec eval` ranks them). Each tile is the same
window (the original's most detailed, `gencodec.evaluation.crops`) enlarged 2x
by nearest neighbour, so invented texture, streaks and a periodic mesh show as
they are; under it the file's bytes and its PSNR / thumb-PSNR / LPIPS.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from gencodec.errors import GencodecError
from gencodec.evaluation.crops import cut, most_detailed_box
from gencodec.evaluation.fidelity import best_classical_by_lpips
from gencodec.evaluation.report import load_results

PAD, LABEL_H = 4, 30


def _tiles_for(results: list[dict], folders: list[Path], labels: list[str], photo: str, level: int):
    """[(image path, label)] for one row: the original, ours per run and realism, the classical file."""
    first = results[0]
    if photo not in (first.get("originals") or {}):
        raise GencodecError(f"no photo '{photo}' in {folders[0]} (it has: {', '.join(sorted(first.get('originals') or {}))})")
    original = folders[0] / first["originals"][photo]
    row = [(original, "original")]
    for result, folder, label in zip(results, folders, labels):
        ours = sorted((r for r in result["records"] if r["codec"] == "gencodec" and r["image"] == photo
                       and int(r["level"]) == level and r.get("file")), key=lambda r: float(r["realism"]))
        if not ours:
            raise GencodecError(f"{folder} has no level {level} of {photo}")
        row += [(folder / r["file"], f"{label} r={float(r['realism']):g}: {_caption(r)}") for r in ours]
    classical = best_classical_by_lpips([r for r in first["records"] if r["codec"] != "gencodec"
                                         and r["image"] == photo and int(r["level"]) == level and r.get("file")])
    if classical is not None:
        row.append((folders[0] / classical["file"], f"{classical['codec']}: {_caption(classical)}"))
    return row


def _caption(record: dict) -> str:
    parts = [f"{record['bytes']} B"]
    for key, text in (("psnr", "{:.1f} dB"), ("thumb_psnr", "thumb {:.1f}"), ("lpips", "LPIPS {:.3f}")):
        if record.get(key) is not None:
            parts.append(text.format(record[key]))
    return ", ".join(parts)


def compose(rows: list[list[tuple[Path, str]]], window: int, zoom: int) -> Image.Image:
    """The rows of tiles as one picture, each tile the original's most detailed window of its row."""
    side = window * zoom
    columns = max(len(r) for r in rows)
    sheet = Image.new("RGB", (columns * (side + PAD) + PAD, len(rows) * (side + LABEL_H + PAD) + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    for i, row in enumerate(rows):
        with Image.open(row[0][0]) as original:
            box = most_detailed_box(np.asarray(original.convert("RGB")), window)
        y = PAD + i * (side + LABEL_H + PAD)
        for j, (path, label) in enumerate(row):
            with Image.open(path) as image:
                tile = cut(image.convert("RGB"), box, zoom)
            x = PAD + j * (side + PAD)
            sheet.paste(tile, (x, y))
            words = label.split(": ", 1)
            draw.text((x, y + side + 2), words[0], fill="black")
            if len(words) > 1:
                draw.text((x, y + side + 15), words[1], fill="black")
    return sheet


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("evals", nargs="+", type=Path, help="gencodec eval folders (the first gives the classical file)")
    p.add_argument("--photos", required=True, help="comma-separated photo names, as in the eval (kodim01,...)")
    p.add_argument("--levels", required=True, help="comma-separated levels, one row per photo and level")
    p.add_argument("--labels", help="comma-separated names of the eval folders; default: their folder names")
    p.add_argument("--window", type=int, default=128, help="crop side in original pixels; default: %(default)s")
    p.add_argument("--zoom", type=int, default=2, help="enlargement (nearest neighbour); default: %(default)s")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = p.parse_args(argv)
    try:
        labels = args.labels.split(",") if args.labels else [f.name for f in args.evals]
        if len(labels) != len(args.evals):
            raise GencodecError(f"{len(labels)} labels for {len(args.evals)} eval folders")
        results = [load_results(f) for f in args.evals]
        levels = [int(v) for v in args.levels.split(",")]
        rows = [_tiles_for(results, args.evals, labels, photo, level)
                for photo in args.photos.split(",") for level in levels]
        compose(rows, args.window, args.zoom).save(args.out)
    except (GencodecError, KeyError, ValueError, OSError) as exc:
        print(f"detail_crops.py: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
