"""Periodic validation during training, on real files.

Training reports the rate the entropy model *estimates*; this module measures
what the release codec actually does: it builds the tables on a copy of the
model, writes real files with :class:`gencodec.codec.Codec`, decodes them at
each realism, and reports real-file bpp, PSNR and (optionally) LPIPS, plus an
image grid to look at. The model being trained is never touched.

    images = load_validation_images("data/val", max_images=8)     # once
    metrics = validate(model, images, levels=(0, 3, 7), out_dir="runs/x/val", step=step,
                       lpips_net=lpips_net, device="cuda")         # every N steps
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..codec import Codec
from ..evaluation.metrics import psnr
from ..imageio import find_images, image_to_tensor, load_image, save_image
from ..model import CodecModel
from .losses import lpips_distance

#: At most this many images (rows) go into the grid: enough to judge, small enough to open.
GRID_ROWS = 4
#: Height of the caption strip under each grid tile (fits Pillow's default bitmap font).
CAPTION_HEIGHT = 14
#: Pixels between grid tiles.
GRID_GAP = 2
GRID_BACKGROUND = (255, 255, 255)
TILE_BACKGROUND = (128, 128, 128)


def grid_path(out_dir: str | os.PathLike, step: int) -> Path:
    """Where :func:`validate` writes the grid for `step` (zero-padded, so files sort by step)."""
    return Path(out_dir) / f"val_step{int(step):07d}.png"


def downscale(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrink so the longer side is at most `max_side` (aspect kept, LANCZOS): keeps validation quick."""
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))


def load_validation_images(folder: str | os.PathLike, max_images: int = 8,
                           max_side: int | None = 512) -> list[np.ndarray]:
    """The first `max_images` of `find_images(folder)` (sorted, so every run validates on the same
    files), loaded as uint8 RGB and downscaled once, so validation rounds do not re-read files."""
    return [downscale(load_image(p), max_side) for p in find_images(folder)[:max_images]]


def codec_copy(model: torch.nn.Module, device: str | torch.device = "cpu") -> Codec:
    """A Codec over a float32 eval copy of `model` with its entropy tables built.

    Training moves the z prior, so tables must be rebuilt; doing it on a copy
    leaves the trained model's weights, grads and train/eval mode alone.
    Unwraps DistributedDataParallel (`.module`) and torch.compile (`._orig_mod`).
    """
    while True:
        if isinstance(getattr(model, "_orig_mod", None), torch.nn.Module):
            model = model._orig_mod
        elif not isinstance(model, CodecModel) and isinstance(getattr(model, "module", None), torch.nn.Module):
            model = model.module
        else:
            break
    model = copy.deepcopy(model)
    for p in model.parameters():
        p.grad = None
        p.requires_grad_(False)
    model = model.float().to(device).eval()
    model.update_tables()
    return Codec(model, device=device)


@torch.no_grad()
def _lpips(net: torch.nn.Module, x_hat: np.ndarray, x: np.ndarray) -> float:
    dev = next(net.parameters()).device
    return float(lpips_distance(net, image_to_tensor(x_hat).to(dev), image_to_tensor(x).to(dev)).item())


def validate(model: torch.nn.Module, images: Sequence, levels: Iterable[int],
             out_dir: str | os.PathLike | None = None, step: int = 0,
             lpips_net: torch.nn.Module | None = None, realism_values: Iterable[float] = (0.0, 1.0),
             steps: int | None = None, max_side: int | None = 512, device: str | torch.device = "cpu",
             grid_tile: int | None = 256) -> dict[str, float]:
    """Compress each image at each level to real bytes, decode at each realism, measure.

    images: paths or arrays (anything `load_image` takes), downscaled to `max_side`.
    Returns flat float metrics (averaged over images):
    ``val/bpp_L{l}``, ``val/psnr_L{l}_r{r:g}``, ``val/lpips_L{l}_r{r:g}`` (with `lpips_net`)
    and the means over levels ``val/bpp``, ``val/psnr_r{r:g}``, ``val/lpips_r{r:g}``.
    With `out_dir`, also writes the grid to ``grid_path(out_dir, step)``; its tiles are
    shrunk to fit `grid_tile` pixels (None: full size). Decoding uses seed 0 and the
    global RNG state is restored afterwards, so validation does not perturb training.
    """
    levels = [int(level) for level in levels]
    if not levels:
        raise ValueError("validate needs at least one level")
    arrays = [downscale(load_image(img), max_side) for img in images]
    if not arrays:
        raise ValueError("validate needs at least one image")
    device = torch.device(device)
    rng_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices), torch.autocast(device.type, enabled=False):
        codec = codec_copy(model, device)
        realisms = codec.realism_values(realism_values)
        sums: dict[str, float] = {}
        rows = []
        for i, x in enumerate(arrays):
            h, w = x.shape[:2]
            row = [(x, "original")]
            for level in levels:
                data = codec.compress(x, level)
                bpp = 8 * len(data) / (h * w)
                sums[f"val/bpp_L{level}"] = sums.get(f"val/bpp_L{level}", 0.0) + bpp
                for r in realisms:
                    x_hat = np.asarray(codec.decompress(data, realism=r, steps=steps, seed=0))
                    key = f"L{level}_r{r:g}"
                    sums[f"val/psnr_{key}"] = sums.get(f"val/psnr_{key}", 0.0) + psnr(x_hat, x)
                    if lpips_net is not None:
                        sums[f"val/lpips_{key}"] = sums.get(f"val/lpips_{key}", 0.0) + _lpips(lpips_net, x_hat, x)
                    if out_dir is not None and i < GRID_ROWS:
                        row.append((x_hat, f"L{level} r{r:g} {bpp:.3f}bpp"))
            rows.append(row)
        del codec
    metrics = {k: v / len(arrays) for k, v in sums.items()}
    metrics["val/bpp"] = float(np.mean([metrics[f"val/bpp_L{level}"] for level in levels]))
    for r in realisms:
        metrics[f"val/psnr_r{r:g}"] = float(np.mean([metrics[f"val/psnr_L{level}_r{r:g}"] for level in levels]))
        if lpips_net is not None:
            metrics[f"val/lpips_r{r:g}"] = float(np.mean([metrics[f"val/lpips_L{level}_r{r:g}"]
                                                           for level in levels]))
    if out_dir is not None:
        path = grid_path(out_dir, step)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(make_grid(rows[:GRID_ROWS], grid_tile), path)
    return metrics


def grid_cell_size(shapes: Sequence[tuple[int, int]], tile: int | None) -> tuple[int, int]:
    """(height, width) of one grid image cell: the largest image, after shrinking to fit `tile`."""
    sizes = [_fit(h, w, tile) for h, w in shapes]
    return max(s[0] for s in sizes), max(s[1] for s in sizes)


def grid_size(shapes: Sequence[tuple[int, int]], n_cols: int, tile: int | None) -> tuple[int, int]:
    """(height, width) of the grid for rows of images of `shapes`, `n_cols` tiles each."""
    cell_h, cell_w = grid_cell_size(shapes, tile)
    n_rows = len(shapes)
    return (n_rows * (cell_h + CAPTION_HEIGHT) + (n_rows - 1) * GRID_GAP,
            n_cols * cell_w + (n_cols - 1) * GRID_GAP)


def _fit(h: int, w: int, tile: int | None) -> tuple[int, int]:
    if tile is None or max(h, w) <= tile:
        return h, w
    scale = tile / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def make_grid(rows: Sequence[Sequence[tuple[np.ndarray, str]]], tile: int | None = 256) -> np.ndarray:
    """Rows of (uint8 image, caption) -> one uint8 grid, each tile above its caption strip.

    Built with numpy and Pillow only (no matplotlib in the training image). All
    images in a row share a size; cells take the largest row's size, each image
    top-left on a grey cell.
    """
    shapes = [row[0][0].shape[:2] for row in rows]
    n_cols = max(len(row) for row in rows)
    cell_h, cell_w = grid_cell_size(shapes, tile)
    height, width = grid_size(shapes, n_cols, tile)
    canvas = Image.new("RGB", (width, height), GRID_BACKGROUND)
    font = ImageFont.load_default()
    for i, row in enumerate(rows):
        top = i * (cell_h + CAPTION_HEIGHT + GRID_GAP)
        for j, (img, caption) in enumerate(row):
            left = j * (cell_w + GRID_GAP)
            canvas.paste(TILE_BACKGROUND, (left, top, left + cell_w, top + cell_h))
            h, w = _fit(*img.shape[:2], tile)
            pic = Image.fromarray(np.ascontiguousarray(img))
            if (h, w) != img.shape[:2]:
                pic = pic.resize((w, h), Image.LANCZOS)
            canvas.paste(pic, (left, top))
            # Clip the caption to its own tile so long text cannot spill onto the next one.
            label = Image.new("RGB", (cell_w, CAPTION_HEIGHT), (0, 0, 0))
            ImageDraw.Draw(label).text((2, 1), caption, fill=(255, 255, 255), font=font)
            canvas.paste(label, (left, top + cell_h))
    return np.asarray(canvas)
