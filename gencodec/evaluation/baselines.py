"""Classical codecs at matched bytes: the baselines a learned codec is compared against.

At extreme low bitrates (a few hundred to a few thousand bytes for a 768x512
photo) a classical codec at full resolution often cannot reach the budget at
all, even at its lowest quality, and when it can, the result is mostly block
artefacts. The fair comparison is what a careful engineer would do: shrink the
image, encode the small one at the best quality that fits, and upscale it back
on decode. `match_bytes` searches that (downscale, quality) space for one
codec and returns the best file at or under a byte budget.

Codecs (each used only where this machine has it; see `available_codecs`):

* ``jpeg``: libjpeg through Pillow, Huffman-optimised, 4:2:0.
* ``webp``: lossy WebP (VP8) through Pillow.
* ``avif``: AV1 in a HEIF container, through Pillow.
* ``hevc``: HEVC (x265) in a HEIF container through pillow-heif, standing in
  for BPG (HEVC intra with a smaller header), which has no Python binding.
* ``jxl``: JPEG XL through pillow-jxl-plugin.

Images are numpy uint8 arrays (H, W, 3), RGB. Files are written without
metadata (no ICC profile, EXIF or XMP), so their size is the coded image plus
the format's unavoidable headers. Those headers weigh at tiny budgets; the
smallest file each codec can write (quality at its minimum, image at 8x8) is
about jpeg 284, webp 48, avif 307, hevc 433 and jxl 64 bytes, so a 300-byte
budget rules out avif and hevc at any scale and leaves jpeg almost nothing.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, features

from ..errors import GencodecError, InvalidImageError
from .metrics import psnr

BYTES_COUNTED = ("classical file sizes count the whole file as written (format headers included) "
                 "and nothing else: no ICC profile, EXIF or other metadata is written")

CODECS = ("jpeg", "webp", "avif", "hevc", "jxl")

#: The classical codecs the project compares against by default (`best_of`, the demo, the app).
COMPARED = ("jpeg", "webp", "avif", "hevc")

#: Each codec's name as shown to people, and the file name suffix of its files.
DISPLAY_NAMES = {"jpeg": "JPEG", "webp": "WebP", "avif": "AVIF", "hevc": "HEVC (HEIF)", "jxl": "JPEG XL"}
FILE_SUFFIXES = {"jpeg": ".jpg", "webp": ".webp", "avif": ".avif", "hevc": ".heic", "jxl": ".jxl"}

# Inclusive quality ranges, in each encoder's own units. jxl stops at 99:
# quality 100 means lossless to libjxl, which pillow-jxl refuses in lossy mode.
QUALITY_RANGE = {
    "jpeg": (1, 95),  # libjpeg's own advice: above 95 the file grows with no visible gain
    "webp": (0, 100),
    "avif": (0, 100),
    "hevc": (0, 100),
    "jxl": (0, 99),
}

# Downscale factors `match_bytes` tries, largest first. They go down to 1/16
# because at ~100-300 bytes only a thumbnail-sized image fits at all.
SCALES = (1.0, 0.75, 0.5, 0.35, 0.25, 0.18, 0.125, 0.09, 0.0625)

# Smaller images are not worth coding: an 8x8 block is the codecs' smallest
# transform unit, and the upscaled result is a blur at any quality.
MIN_SIDE = 8

_PIL_FORMAT = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF", "hevc": "HEIF", "jxl": "JXL"}

# Per-codec save options, besides quality. Why these:
# - jpeg: optimised Huffman tables save ~10% at no quality cost; 4:2:0 is what
#   every real JPEG at low rate uses.
# - webp: method 6 is the slowest, best-compressing search; cheap on the small
#   images this module mostly codes.
# - avif: speed 6 (Pillow's default) is within a few percent of the slowest
#   speeds at a fraction of their time; full-res encodes take ~0.5 s here.
# - hevc: without the 20-byte nclx colour box, libheif decodes the same pixels
#   (the HEVC stream signals its colour matrix itself), so it is left out.
# - jxl: effort 7 is libjxl's default (~0.1 s for 768x512); slower efforts
#   gain little at these rates.
_SAVE_OPTIONS = {
    "jpeg": {"optimize": True, "subsampling": 2, "icc_profile": None},
    "webp": {"method": 6, "icc_profile": None},
    "avif": {"speed": 6, "icc_profile": None},
    "hevc": {"save_nclx_profile": False},
    "jxl": {"effort": 7},
}


@dataclass
class BaselineResult:
    """One classical file: its settings, its bytes, and its decode at the original size."""
    codec: str
    quality: int
    scale: float
    bytes: int
    data: bytes
    decoded: np.ndarray
    score: float  # what `match_bytes` ranked it by (higher is better)


@functools.cache
def available_codecs() -> list[str]:
    """The codecs of `CODECS` that this machine can both encode and decode, in that order."""
    found = [name for name, feature in (("jpeg", "jpg"), ("webp", "webp"), ("avif", "avif"))
             if features.check(feature)]
    try:
        import pillow_heif
        # A libheif build can decode HEVC without having an encoder for it.
        if pillow_heif.libheif_info()["encoders"].get("x265"):
            found.append("hevc")
    except ImportError:
        pass
    try:
        import pillow_jxl  # noqa: F401  (importing it registers the JXL plugin with Pillow)
        found.append("jxl")
    except ImportError:
        pass
    return found


def check_codecs(names) -> list[str]:
    """`names` without repeats, once each is a codec this machine has; else a one-line GencodecError."""
    for name in names:
        _register(name)
    return list(dict.fromkeys(names))


@functools.cache
def _register(codec: str) -> None:
    """Make Pillow able to open and save `codec`, or raise a one-line error."""
    if codec not in CODECS:
        raise GencodecError(f"unknown classical codec {codec!r} (known: {', '.join(CODECS)})")
    if codec not in available_codecs():
        raise GencodecError(f"classical codec {codec!r} is not available here "
                            f"(available: {', '.join(available_codecs())})")
    if codec == "hevc":
        import pillow_heif
        pillow_heif.register_heif_opener()
    elif codec == "jxl":
        import pillow_jxl  # noqa: F401


def _to_pil(image: np.ndarray) -> Image.Image:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3):
        raise InvalidImageError("a classical codec needs a uint8 RGB array of shape (H, W, 3)")
    # A fresh image from an array carries no info dict, so no plugin can fall
    # back to an ICC profile or EXIF block found there.
    return Image.fromarray(np.ascontiguousarray(image))


def _scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resize(img: Image.Image, scale: float) -> Image.Image:
    size = _scaled_size(*img.size, scale)
    return img if size == img.size else img.resize(size, Image.LANCZOS)


def _save(img: Image.Image, codec: str, quality: int) -> bytes:
    low, high = QUALITY_RANGE[codec]
    if not low <= quality <= high:
        raise GencodecError(f"{codec} quality must be in {low}..{high}, got {quality}")
    buf = io.BytesIO()
    img.save(buf, format=_PIL_FORMAT[codec], quality=int(quality), **_SAVE_OPTIONS[codec])
    return buf.getvalue()


def encode(image: np.ndarray, codec: str, quality: int, scale: float = 1.0) -> bytes:
    """`image` shrunk by `scale` (Lanczos; 1 keeps it as is) and coded by `codec` at `quality`."""
    _register(codec)
    return _save(_resize(_to_pil(image), scale), codec, quality)


def decode(data: bytes, codec: str, size: tuple[int, int]) -> np.ndarray:
    """A `codec` file decoded to uint8 RGB (H, W, 3), upscaled (Lanczos) to `size` = (width, height)."""
    _register(codec)
    with Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[codec]]) as img:
        img = img.convert("RGB")
    if img.size != tuple(size):
        img = img.resize(tuple(size), Image.LANCZOS)
    return np.asarray(img)


def _highest_fitting(img: Image.Image, codec: str, max_bytes: int) -> tuple[int, bytes] | None:
    """The highest quality whose file of `img` is at most `max_bytes`, with that file.

    File size grows with quality, but not strictly: rate control has plateaus
    and small dips. The binary search only ever keeps qualities whose file was
    measured to fit, so what it returns always fits; one extra probe past the
    first quality found too big catches the commonest dip.
    """
    low, high = QUALITY_RANGE[codec]
    files: dict[int, bytes] = {}

    def fits(quality: int) -> bool:
        if quality not in files:
            files[quality] = _save(img, codec, quality)
        return len(files[quality]) <= max_bytes

    if not fits(low):
        return None
    good, bad = low, high + 1  # invariant: `good` fits; nothing at or above `bad` is known to
    while bad - good > 1:
        mid = (good + bad) // 2
        if fits(mid):
            good = mid
        else:
            bad = mid
    if good + 2 <= high:
        fits(good + 2)
    best = max(q for q, data in files.items() if len(data) <= max_bytes)
    return best, files[best]


def candidates(image: np.ndarray, codec: str, max_bytes: int,
               score: Callable[[np.ndarray], float] | None = None) -> list[BaselineResult]:
    """Every scale's best `codec` file of `image` at or under `max_bytes`, largest scale first.

    Per scale, the highest quality that fits is kept (about 8-9 encodes, one
    when even the lowest quality is too big), decoded at the original size and
    scored by `score(decoded)` (higher is better), or by PSNR against `image`
    when no score is given. Empty when nothing fits: headers alone can exceed a
    tiny budget (see the module docstring). Whatever a caller ranks by, the
    winner is among these: at a fixed scale a higher quality is the better file.
    """
    _register(codec)
    original = _to_pil(image)
    width, height = original.size
    rank = score or (lambda decoded: psnr(decoded, image))
    top_quality = QUALITY_RANGE[codec][1]
    fitting: list[tuple[float, int, bytes]] = []
    # Smallest scale first: once even the lowest quality of a scale does not fit, no larger image can (its
    # smallest file is larger), so the slow full-size encodes of a small budget are never tried.
    for scale in sorted(SCALES):
        if min(_scaled_size(width, height, scale)) < MIN_SIDE:
            continue
        found = _highest_fitting(_resize(original, scale), codec, max_bytes)
        if found is None:
            break
        fitting.append((scale, *found))
    # Where the top quality fits, a smaller scale can only lose detail: only the largest such scale is kept.
    top_scales = [scale for scale, quality, _ in fitting if quality == top_quality]
    if top_scales:
        fitting = [f for f in fitting if f[0] >= max(top_scales)]
    found_files = []
    for scale, quality, data in sorted(fitting, key=lambda f: -f[0]):
        decoded = decode(data, codec, (width, height))
        found_files.append(BaselineResult(codec, quality, scale, len(data), data, decoded, rank(decoded)))
    return found_files


def best_candidate(found: list[BaselineResult]) -> BaselineResult | None:
    """The highest-scoring of `candidates`' files (the first of equals); None for none."""
    return max(found, key=lambda r: r.score, default=None)


def match_bytes(image: np.ndarray, codec: str, max_bytes: int,
                score: Callable[[np.ndarray], float] | None = None) -> BaselineResult | None:
    """The best `codec` file of `image` at or under `max_bytes`, searched over `SCALES` and quality
    (`candidates`), by `score` or else by PSNR. None when nothing fits."""
    return best_candidate(candidates(image, codec, max_bytes, score))


def best_of(image: np.ndarray, max_bytes: int, codecs: list[str] | tuple[str, ...] | None = None,
            score: Callable[[np.ndarray], float] | None = None) -> BaselineResult | None:
    """The best file of `image` at or under `max_bytes` over several codecs (`match_bytes` each).

    `codecs` defaults to those of `COMPARED` available here; unavailable ones are
    skipped. Ranked by `score(decoded)` (higher is better), or by PSNR against
    `image`. None when no codec fits the budget.
    """
    best: BaselineResult | None = None
    for name in [c for c in (codecs or COMPARED) if c in available_codecs()]:
        found = match_bytes(image, name, max_bytes, score=score)
        if found is not None and (best is None or found.score > best.score):
            best = found
    return best
