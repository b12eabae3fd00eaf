"""A TAEF2 latent cache: images and their frozen-encoder latents in tar shards, and crops of both.

Models that code and generate in the latent space of TAEF2 (a frozen
autoencoder, :mod:`gencodec.nn.taef2`) never need to run its encoder while
training: the latent of an image is the same at every step. :func:`cache_latents`
computes it once per image and stores it next to the exact pixels it was
computed from, in the shard layout of ``gencodec pack``::

    shard-000000.tar
        00000000.jpg                 the image (original JPEG bytes if unchanged, else PNG)
        00000000.latent.npy          float16 (32, H/8, W/8)
        00000000.latent_mirror.npy   with mirror=True: the latent of the left-right mirrored image
        00000001.png ...
    index.json                       "kind": "taef2-latents", the weights' sha256, counts

:class:`LatentShardDataset` streams random crops aligned on the 8-px grid, the
pixels with their latent, for stages that also compare pixels (a decoder's
output against the original crop). It shares ShardDataset's rank, worker and
epoch rules, so the same shards split across processes the same way. A cache
is also an ordinary pack: ShardDataset reads its images and ignores the rest.

Command line: ``gencodec cache-latents SRC OUT --taef2 FOLDER [--max-side N] [--mirror]``.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gencodec.errors import GencodecError, InvalidImageError
from gencodec.fileio import write_atomic
from gencodec.imageio import IMAGE_SUFFIXES, find_images, load_image
from gencodec.nn.taef2 import (
    DECODER_FILE,
    ENCODER_FILE,
    LATENT_CHANNELS,
    SCALE,
    load_taef2,
)
from gencodec.training.data import (
    DEFAULT_MAX_SHARD_BYTES,
    INDEX_NAME,
    DataWarning,
    ShardDataset,
    _check_pack_options,
    _ShardWriter,
    downscale,
    is_shard_source,
    list_shards,
    shard_folder,
)

KIND = "taef2-latents"
LATENT = "latent.npy"
LATENT_MIRROR = "latent_mirror.npy"
#: Progress is logged after this many images.
LOG_EVERY = 50

Log = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# Writing the cache


def _folder_images(files: list[Path]) -> Iterator[tuple[str, str, bytes | None, float]]:
    """(label, extension, bytes or None if unreadable, mtime) for each image file."""
    for path in files:
        label = repr(str(path))
        try:
            yield label, path.suffix.lower().lstrip("."), path.read_bytes(), path.stat().st_mtime
        except OSError as exc:
            warnings.warn(f"skipping {label}: {exc.strerror or exc}", DataWarning, stacklevel=3)
            yield label, "", None, 0.0


def _shard_images(shards: list[Path]) -> Iterator[tuple[str, str, bytes | None, float]]:
    """The same for each image member of pack shards, in order; a damaged shard is read as far as it goes."""
    for shard in shards:
        try:
            with tarfile.open(shard, mode="r:") as tar:
                for info in tar:
                    ext = Path(info.name).suffix.lower()
                    if info.isfile() and ext in IMAGE_SUFFIXES:
                        data = tar.extractfile(info).read()
                        yield f"member {info.name!r} of {str(shard)!r}", ext.lstrip("."), data, info.mtime
        except (tarfile.TarError, OSError, EOFError) as exc:
            warnings.warn(f"skipping the rest of shard {str(shard)!r}: {exc}", DataWarning, stacklevel=3)


def _prepare(label: str, ext: str, data: bytes, max_side: int | None) -> tuple[np.ndarray, str, bytes] | None:
    """(pixels the encoder sees, extension, bytes that decode to exactly those pixels), or None if unusable.

    The image is shrunk to ``max_side`` if given, then centre-cropped to
    multiples of 8 (at most 7 px per axis): the encoder needs whole 8x8 cells,
    and cropping rather than padding keeps every latent cell made of real pixels.
    """
    try:
        image = load_image(data)
    except InvalidImageError as exc:
        warnings.warn(f"skipping {label}: {exc}", DataWarning, stacklevel=3)
        return None
    original_shape = image.shape
    if max_side is not None:
        image = np.asarray(downscale(Image.fromarray(image), max_side))
    height, width = image.shape[:2]
    top, left = (height % SCALE) // 2, (width % SCALE) // 2
    cropped = image[top:top + height - height % SCALE, left:left + width - width % SCALE]
    if cropped.size == 0:
        warnings.warn(f"skipping {label}: {width}x{height} pixels is smaller than one {SCALE}x{SCALE} "
                      "latent cell", DataWarning, stacklevel=3)
        return None
    if cropped.shape == original_shape and ext in ("jpg", "jpeg"):
        return cropped, ext, data  # the original JPEG is far smaller than a PNG and decodes to these pixels
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(cropped)).save(buf, format="PNG")
    return cropped, "png", buf.getvalue()


def _npy(latent: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, latent.astype(np.float16), allow_pickle=False)
    return buf.getvalue()


def _encode(encoder: torch.nn.Module, images: list[np.ndarray], device: torch.device) -> np.ndarray:
    """float32 latents (N, 32, H/8, W/8) of same-sized uint8 (H, W, 3) images."""
    # Contiguous NCHW, as image_to_tensor gives: the same memory layout, so the same kernels and sums.
    x = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).contiguous().float().div_(255.0)
    # TF32 convolutions (a CUDA default) round to 10 mantissa bits, no better than the float16 stored.
    tf32_off = torch.backends.cudnn.flags(enabled=True, allow_tf32=False) if device.type == "cuda" else nullcontext()
    with torch.no_grad(), tf32_off:
        return encoder(x).float().cpu().numpy()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Batcher:
    """Collects prepared images of one size and encodes them together; a new size or a full batch flushes.

    Batching does not change what a latent is (GroupNorm, the encoder's only
    whole-image statistic, is per image), only float rounding in the last bits;
    it makes a GPU worth using.
    """

    def __init__(self, encoder, device, batch_size: int, mirror: bool, writer: _ShardWriter):
        self.encoder, self.device, self.batch_size, self.mirror = encoder, device, batch_size, mirror
        self.writer = writer
        self.pending: list[tuple[np.ndarray, str, bytes, float, str]] = []

    def add(self, pixels: np.ndarray, ext: str, data: bytes, mtime: float, label: str) -> None:
        if self.pending and self.pending[0][0].shape != pixels.shape:
            self.flush()
        self.pending.append((pixels, ext, data, mtime, label))
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        images = [p[0] for p in self.pending]
        if self.mirror:
            images += [image[:, ::-1] for image in images]
        latents = _encode(self.encoder, images, self.device)
        n = len(self.pending)
        for i, (_, ext, data, mtime, label) in enumerate(self.pending):
            members = [(ext, data), (LATENT, _npy(latents[i]))]
            if self.mirror:
                members.append((LATENT_MIRROR, _npy(latents[n + i])))
            self.writer.add_sample(members, mtime, label)
        self.pending = []


def cache_latents(src, out_dir, taef2_folder, max_side: int | None = None, batch_size: int = 1,
                  mirror: bool = False, log: Log | None = None, device: str | torch.device = "cpu",
                  max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> list[Path]:
    """Encode every image of ``src`` with the TAEF2 encoder once, into latent shards in ``out_dir``.

    ``src`` is a folder of images or pack shards (a .tar, or a folder with
    index.json or *.tar). Each image is shrunk so its longer side is at most
    ``max_side`` (if given), centre-cropped to multiples of 8, and encoded in
    float32; the sample stores the image as encoded (losslessly: the original
    JPEG when nothing changed, else PNG) and its latent as float16. With
    ``mirror``, the latent of the mirrored image is stored too: the encoder's
    filters are not mirror-symmetric, so a flipped latent is not the latent of
    the flipped image. ``batch_size`` images of the same size are encoded at
    once (on ``device``). Unreadable images are skipped with a warning.

    Shards are written and renamed into place one by one as by pack_shards,
    and index.json last ("kind": "taef2-latents", the sha256 of both TAEF2
    weight files, counts), so a folder with an index is complete. Earlier
    shards in ``out_dir`` are replaced. ``log`` receives a progress line every
    50 images. Returns the shard paths.
    """
    _check_pack_options(max_shard_bytes, max_side, None)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise GencodecError(f"batch size must be a positive integer, got {batch_size!r}")
    log = log or (lambda message: None)
    src = Path(src)
    # Listed now, so that a wrong SRC fails before anything is written.
    images = _shard_images(list_shards(src)) if is_shard_source(src) else _folder_images(find_images(src))
    folder = Path(taef2_folder).expanduser()
    try:
        device = torch.device(device)
    except RuntimeError as exc:
        raise GencodecError(f"unknown device {str(device)!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GencodecError(f"device {str(device)!r} is not available: no CUDA GPU")
    encoder, _ = load_taef2(folder)  # before out_dir exists: a wrong folder leaves nothing behind
    encoder.to(device)
    weights = {name: _sha256(folder / name) for name in (ENCODER_FILE, DECODER_FILE)}

    out_dir = Path(out_dir)
    skipped = 0

    def write_index(written: list[tuple[Path, int]], images_cached: int) -> None:
        _write_index(out_dir, src, written, images_cached, skipped, max_side, mirror, weights, max_shard_bytes)

    empty = f"no usable images in {str(src)!r}"
    with shard_folder(out_dir, max_shard_bytes, empty, write_index) as (writer, written):
        skipped = _cache_all(images, _Batcher(encoder, device, batch_size, mirror, writer), writer, max_side, log)
    return [path for path, _ in written]


def _cache_all(images, batcher: "_Batcher", writer: _ShardWriter, max_side: int | None, log) -> int:
    """Encode and write every usable image; returns how many were skipped."""
    skipped, start = 0, time.perf_counter()
    for label, ext, data, mtime in images:
        prepared = None if data is None else _prepare(label, ext, data, max_side)
        if prepared is None:
            skipped += 1
            continue
        batcher.add(*prepared, mtime=mtime, label=label)
        done = writer.count + len(batcher.pending)
        if done % LOG_EVERY == 0:
            log(f"cached {done} images, {(time.perf_counter() - start) / done:.2f} s each")
    batcher.flush()
    return skipped


def _write_index(out_dir: Path, src: Path, written: list[tuple[Path, int]], images: int, skipped: int,
                 max_side: int | None, mirror: bool, weights: dict[str, str], max_shard_bytes: int) -> None:
    """Writes index.json, which marks the cache complete and says which encoder made it."""
    index = {
        "kind": KIND,
        "format": "webdataset-tar",
        "version": 1,
        "source": str(src.resolve()),
        "images": images,
        "skipped": skipped,
        "max_side": max_side,
        "mirror": mirror,
        "scale": SCALE,
        "latent_channels": LATENT_CHANNELS,
        "latent_dtype": "float16",
        "taef2_sha256": weights,
        "max_shard_bytes": max_shard_bytes,
        "shards": [{"name": p.name, "images": n, "bytes": p.stat().st_size} for p, n in written],
    }
    write_atomic(out_dir / INDEX_NAME, json.dumps(index, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# Reading it


def _split_name(name: str) -> tuple[str, str]:
    """(key, extension) of a member, webdataset style: the extension starts at the base name's first dot."""
    head, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{head}/{stem}" if head else stem), ext.lower()


def check_latent_cache(path) -> None:
    """A GencodecError unless `path` is a complete latent cache (its index.json says so)."""
    index = Path(path) / "index.json"
    try:
        kind = json.loads(index.read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None
    if kind != "taef2-latents":
        raise GencodecError(f"'{path}' is not a complete latent cache (no index.json of kind 'taef2-latents'); "
                            "the latent family trains on one: gencodec cache-latents IMAGES CACHE --taef2 FOLDER")


class LatentShardDataset(ShardDataset):
    """Aligned random crops of images and their cached latents, looping forever.

    Yields {"image": float32 (3, crop, crop) in [0, 1], "latent": float32
    (32, crop/8, crop/8)}, the crop's top-left corner on the 8-px grid so the
    latent crop is exactly the latent cells under the image crop. Where the
    mirrored latent was cached, half the samples are mirrored (the image
    flipped, its own latent taken); without it, none are, since a flipped
    latent does not match a flipped image. Shares, workers, epochs, shuffling
    and skip warnings are ShardDataset's, with a sample in place of an image.
    """

    def __init__(self, shards, crop_size: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle_buffer: int = 64, with_images: bool = True):
        # A smaller buffer than ShardDataset's: a 768x512 sample with both latents is about 1.5 MB.
        super().__init__(shards, crop_size, rank, world_size, seed, shuffle_buffer)
        # Without images (a codec stage needs the latents only), no image is decoded: a
        # sample then costs a fraction of the time, and its image is only measured.
        self.with_images = with_images
        if crop_size % SCALE:
            raise GencodecError(f"crop size must be a multiple of {SCALE}, got {crop_size}")

    def _members(self, shard: Path):
        """(key, label, read) for each sample of a shard, in order; read() returns {extension: bytes}."""
        try:
            with tarfile.open(shard, mode="r:") as tar:
                key, infos = None, {}
                for info in tar:
                    if not info.isfile():
                        continue
                    name, ext = _split_name(info.name)
                    if name != key:
                        if infos:
                            yield self._sample(tar, shard, key, infos)
                        key, infos = name, {}
                    infos[ext] = info
                if infos:
                    yield self._sample(tar, shard, key, infos)
        except (tarfile.TarError, OSError, EOFError) as exc:
            self._skip(str(shard), f"skipping the rest of shard {str(shard)!r}: {exc}")

    @staticmethod
    def _sample(tar: tarfile.TarFile, shard: Path, key: str, infos: dict) -> tuple[str, str, Callable]:
        def read() -> dict[str, bytes]:
            return {ext: tar.extractfile(info).read() for ext, info in infos.items()}
        return f"{shard}::{key}", f"sample {key!r} of {str(shard)!r}", read

    def _crop(self, key: str, label: str, source: dict[str, bytes], rng) -> dict[str, torch.Tensor] | None:
        """Decode one sample and cut an aligned crop of image and latent; None (after one warning) if unusable."""
        image_ext = next((ext for ext in source if f".{ext}" in IMAGE_SUFFIXES), None)
        if image_ext is None or LATENT not in source:
            self._skip(key, f"skipping {label}: it lacks {'an image' if image_ext is None else LATENT}")
            return None
        try:
            image = load_image(source[image_ext]) if self.with_images else _image_shape(source[image_ext])
            latent = _load_npy(source[LATENT])
            mirrored = _load_npy(source[LATENT_MIRROR]) if LATENT_MIRROR in source else None
        except (InvalidImageError, ValueError, OSError, EOFError) as exc:
            self._skip(key, f"skipping {label}: {exc}")
            return None
        height, width = image.shape[:2]
        expected = (LATENT_CHANNELS, height // SCALE, width // SCALE)
        if latent.shape != expected or height % SCALE or width % SCALE or (
                mirrored is not None and mirrored.shape != expected):
            self._skip(key, f"skipping {label}: latent of shape {latent.shape} does not fit a {width}x{height} image")
            return None
        if height < self.crop_size or width < self.crop_size:
            self._skip(key, f"skipping {label}: {width}x{height} pixels is smaller than the {self.crop_size} px crop")
            return None
        if mirrored is not None and rng.random() < 0.5:
            image, latent = image[:, ::-1], mirrored
        cells = self.crop_size // SCALE
        top = int(rng.integers(0, (height - self.crop_size) // SCALE + 1))
        left = int(rng.integers(0, (width - self.crop_size) // SCALE + 1))
        z = np.ascontiguousarray(latent[:, top:top + cells, left:left + cells], dtype=np.float32)
        if not self.with_images:
            return {"latent": torch.from_numpy(z)}
        pixels = image[top * SCALE:(top + cells) * SCALE, left * SCALE:(left + cells) * SCALE]
        chw = np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)
        return {"image": torch.from_numpy(chw).div_(255.0), "latent": torch.from_numpy(z)}


def _image_shape(data: bytes) -> np.ndarray:
    """A stand-in for an image that is not decoded: an empty (H, W, 3) view with the image's shape."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
    return np.broadcast_to(np.zeros((), np.uint8), (height, width, 3))


def _load_npy(data: bytes) -> np.ndarray:
    array = np.load(io.BytesIO(data), allow_pickle=False)
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
        raise ValueError("latent is not a floating-point array")
    return array
