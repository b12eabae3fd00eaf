"""Validation on real files: metrics, real-file bpp, the grid, and the trained model left alone."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gencodec.codec import Codec
from gencodec.training.validation import (CAPTION_HEIGHT, GRID_GAP, downscale, grid_path, load_validation_images,
                                 validate)

from gencodec.model import state_dict_sha256

from .conftest import LPIPS_WEIGHTS, smooth_image


def checksum(model: torch.nn.Module) -> str:
    return state_dict_sha256(model.state_dict())


@pytest.fixture(scope="module")
def images():
    return [smooth_image(64, 96, seed=3), smooth_image(80, 64, seed=4)]


def test_metrics_bpp_grid_and_model_untouched(untrained_codec, images, tmp_path):
    model = untrained_codec.model
    model.train()  # as during training: validation must neither change nor switch it
    try:
        before = checksum(model)
        levels = (0, 5)
        metrics = validate(model, images, levels, out_dir=tmp_path, step=42, realism_values=(0.0,))
        assert checksum(model) == before and model.training
    finally:
        model.eval()
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    expected = {"val/bpp", "val/psnr_r0"}
    for level in levels:
        expected |= {f"val/bpp_L{level}", f"val/psnr_L{level}_r0"}
    assert set(metrics) == expected

    # Real-file bpp, recomputed through an independent Codec over a table-built copy.
    copied = copy.deepcopy(model).float().eval()
    copied.update_tables()
    codec = Codec(copied, device="cpu")
    bpp = [8 * len(codec.compress(x, 5)) / (x.shape[0] * x.shape[1]) for x in images]
    assert metrics["val/bpp_L5"] == pytest.approx(np.mean(bpp), rel=1e-9)
    assert metrics["val/bpp"] == pytest.approx((metrics["val/bpp_L0"] + metrics["val/bpp_L5"]) / 2)

    # Grid: 2 rows x (original + 2 levels); cells sized by the largest image (80 high, 96 wide).
    path = grid_path(tmp_path, 42)
    assert path.name == "val_step0000042.png" and path.is_file()
    assert_grid(path, rows=2, cols=1 + 2, cell_h=80, cell_w=96)
    with Image.open(path) as grid:
        top_left = np.asarray(grid.convert("RGB"))[:64, :96]
    assert np.array_equal(top_left, images[0])  # the original, unscaled, in the first tile


def assert_grid(path: Path, rows: int, cols: int, cell_h: int, cell_w: int) -> None:
    with Image.open(path) as grid:
        assert grid.size == (cols * cell_w + (cols - 1) * GRID_GAP,
                             rows * (cell_h + CAPTION_HEIGHT) + (rows - 1) * GRID_GAP)


def test_generative_realisms_and_downscale(generative_codec, images, tmp_path):
    big = np.asarray(Image.fromarray(images[0]).resize((192, 128)))
    metrics = validate(generative_codec.model, [big], [1], realism_values=(0.0, 1.0), steps=2,
                       out_dir=tmp_path, max_side=96)
    expected = {"val/bpp", "val/bpp_L1", "val/psnr_L1_r0", "val/psnr_L1_r1", "val/psnr_r0", "val/psnr_r1"}
    assert set(metrics) == expected
    assert all(math.isfinite(v) for v in metrics.values())
    # 192x128 was shrunk to 96x64 before coding: one row, original + 2 realisms.
    assert_grid(grid_path(tmp_path, 0), rows=1, cols=3, cell_h=64, cell_w=96)
    assert downscale(big, 96).shape == (64, 96, 3) and downscale(big, None) is big


def test_non_generative_model_only_realism_zero(rich_codec, images):
    metrics = validate(rich_codec.model, images[:1], [2])
    assert "val/psnr_L2_r0" in metrics and "val/psnr_r1" not in metrics


@pytest.mark.skipif(not LPIPS_WEIGHTS.is_file(), reason="no LPIPS weights in ../shared")
def test_lpips(untrained_codec, images):
    from gencodec.evaluation.perceptual import load_lpips
    net = load_lpips(LPIPS_WEIGHTS)
    metrics = validate(untrained_codec.model, images[:1], [0], lpips_net=net, realism_values=(0.0,))
    for key in ("val/lpips_L0_r0", "val/lpips_r0"):
        assert 0.0 <= metrics[key] <= 1.5


def test_load_validation_images(tmp_path):
    for i, (h, w) in enumerate([(40, 60), (700, 300), (30, 30)]):
        Image.fromarray(smooth_image(h, w, seed=i)).save(tmp_path / f"img{i}.png")
    loaded = load_validation_images(tmp_path, max_images=2, max_side=512)
    assert [x.shape for x in loaded] == [(40, 60, 3), (512, 219, 3)]
    assert all(x.dtype == np.uint8 for x in loaded)
