"""Training data: image folders and sharded tar files, as endless streams of random crops.

Two sources feed the same training loop:

* a folder of images (:class:`ImageFolderDataset`), the simplest thing on one machine;
* tar shards made by :func:`pack_shards` (:class:`ShardDataset`), for clusters: a few
  large files copy and stream far better than many small ones, and a re-encoded
  pack (``max_side``/``quality``) makes a ~200 MB training set small enough to travel.

The shard layout is the webdataset one (``shard-000000.tar`` holding
``00000000.jpg``, ``00000001.png``, ...), so webdataset can read the shards, but
nothing here depends on it. Both datasets loop forever over their share of the
data (``rank`` of ``world_size`` processes, then DataLoader workers), reshuffle every
epoch from a seed, and skip unusable images with one warning each.

A compact pack (``crop``, ``image_format="webp"``, ``budget_bytes``) holds one
square crop per photo in a size budget: a training set that travels with the
code to a machine with no network (train/gpu_kit.py).

Command line: ``gencodec pack SRC OUT [--max-shard-mb 45] [--max-side N] [--quality Q]
[--crop N] [--format webp] [--budget-mb MB]``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import tarfile
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from gencodec.errors import GencodecError, InvalidImageError
from gencodec.fileio import write_atomic
from gencodec.imageio import IMAGE_SUFFIXES, find_images, load_image

#: pack_shards keeps only images at least this large on the short side.
MIN_PACK_SIDE = 64
#: Default shard size limit: keeps each shard under common 50 MB upload/attachment limits.
DEFAULT_MAX_SHARD_BYTES = 45_000_000
#: JPEG quality used when pack_shards re-encodes and no quality is given.
DEFAULT_QUALITY = 90
#: Formats pack_shards re-encodes to (Pillow's names, lower case, are the member extensions' source).
PACK_FORMATS = {"jpeg": ("JPEG", "jpg"), "webp": ("WEBP", "webp")}
#: Written next to the shards; lists them so a folder is read in a known order.
INDEX_NAME = "index.json"

_SHARD_RE = re.compile(r"shard-\d{6}\.tar")


class DataWarning(UserWarning):
    """An image was skipped (unreadable or too small); training goes on without it."""


# ---------------------------------------------------------------------------------------------
# Finding files and cutting crops


def random_crop_flip(image: np.ndarray, size: int, rng: np.random.Generator) -> torch.Tensor:
    """A random ``size`` x ``size`` crop of a uint8 (H, W, 3) image, flipped left-right half the time.

    Returns float32 (3, size, size) in [0, 1]. Images smaller than the crop are
    an error here: the datasets skip them rather than upscale, since upscaled
    pixels would teach the codec blur.
    """
    height, width = image.shape[:2]
    if height < size or width < size:
        raise GencodecError(f"a {width}x{height} image is smaller than the {size} px crop")
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    crop = image[top:top + size, left:left + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    # The float32 conversion copies into a fresh, writable, contiguous CHW array.
    chw = np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32)
    return torch.from_numpy(chw).div_(255.0)


def split_share(items: list, index: int, count: int) -> list:
    """Part ``index`` of ``count`` of a list, by striding: disjoint parts whose union is the list."""
    return items[index::count]


def _worker() -> tuple[int, int]:
    """(worker id, number of workers) of the DataLoader worker we run in; (0, 1) in the main process."""
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def _check_common(crop_size: int, rank: int, world_size: int, seed: int) -> None:
    if not isinstance(crop_size, int) or crop_size < 1:
        raise GencodecError(f"crop size must be a positive integer, got {crop_size!r}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise GencodecError(f"rank must be in 0..world_size-1, got rank {rank} of world size {world_size}")
    if seed < 0:
        raise GencodecError(f"seed must be non-negative, got {seed}")


# ---------------------------------------------------------------------------------------------
# Datasets


class _LoopingDataset(IterableDataset):
    """Endless epochs of random crops, with the rules both datasets share.

    Subclasses provide ``_epoch(rng, worker, num_workers)``: a generator of
    crops for one pass over this worker's share that *returns* how many images
    the share holds. Each epoch gets a generator seeded by (seed, rank, worker,
    epoch), so a run is reproducible for a fixed number of workers. An image
    that cannot be used is warned about once and never tried again; an epoch
    whose share is not empty but yields nothing raises instead of spinning.

    The skip set lives in this object, so in DataLoader workers it is per worker
    (workers hold disjoint files, so each file is still warned about once per
    DataLoader iterator; use persistent_workers to keep it across iterators).
    """

    def __init__(self, crop_size: int, rank: int, world_size: int, seed: int):
        super().__init__()
        _check_common(crop_size, rank, world_size, seed)
        self.crop_size = crop_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self._skipped: set[str] = set()

    def __iter__(self) -> Iterator[torch.Tensor]:
        worker, num_workers = _worker()
        epoch = 0
        while True:
            rng = np.random.default_rng([self.seed, self.rank, worker, epoch])
            gen = self._epoch(rng, worker, num_workers)
            produced = 0
            while True:
                try:
                    crop = next(gen)
                except StopIteration as stop:
                    available = stop.value
                    break
                produced += 1
                yield crop
            if available == 0:
                return  # more workers than items: this worker simply has nothing to do
            if produced == 0:
                raise GencodecError(
                    f"none of the {available} images of rank {self.rank}/{self.world_size}, "
                    f"worker {worker}/{num_workers} is usable (unreadable, or smaller than the "
                    f"{self.crop_size} px crop on a side); see the warnings above")
            epoch += 1

    def _epoch(self, rng, worker, num_workers):
        raise NotImplementedError

    def _crop(self, key: str, label: str, source, rng) -> torch.Tensor | None:
        """Decode ``source`` and crop it; None (after one warning) if it is unusable."""
        try:
            image = load_image(source)
        except InvalidImageError as exc:
            reason = str(exc)  # load_image names a file it was given by path; don't repeat it
            self._skip(key, f"skipping unreadable image: {reason}" if label in reason
                       else f"skipping {label}: {reason}")
            return None
        height, width = image.shape[:2]
        if height < self.crop_size or width < self.crop_size:
            self._skip(key, f"skipping {label}: {width}x{height} pixels is smaller than "
                            f"the {self.crop_size} px crop")
            return None
        return random_crop_flip(image, self.crop_size, rng)

    def _skip(self, key: str, message: str) -> None:
        if key not in self._skipped:
            self._skipped.add(key)
            warnings.warn(message, DataWarning, stacklevel=2)


class ImageFolderDataset(_LoopingDataset):
    """Random crops from a folder of images, looping forever.

    Process ``rank`` of ``world_size`` reads ``files[rank::world_size]``, and
    splits that share again among DataLoader workers, so no file is read twice
    per epoch across the whole job.
    """

    def __init__(self, root, crop_size: int, rank: int = 0, world_size: int = 1, seed: int = 0):
        super().__init__(crop_size, rank, world_size, seed)
        self.root = Path(root)
        all_files = find_images(self.root)
        self.files = split_share(all_files, rank, world_size)
        self.share_size = len(self.files)  # files this process reads
        if not self.files:
            raise GencodecError(
                f"rank {rank} of {world_size} gets no images: {str(self.root)!r} holds only {len(all_files)}")

    def worker_files(self, worker: int, num_workers: int) -> list[Path]:
        """The files DataLoader worker ``worker`` of ``num_workers`` reads."""
        return split_share(self.files, worker, num_workers)

    def _epoch(self, rng, worker, num_workers):
        files = self.worker_files(worker, num_workers)
        order = rng.permutation(len(files))
        for i in order:
            key = str(files[i])
            if key in self._skipped:
                continue
            crop = self._crop(key, repr(key), files[i], rng)
            if crop is not None:
                yield crop
        return len(files)


class ShardDataset(_LoopingDataset):
    """Random crops from tar shards (as written by pack_shards), looping forever.

    Process ``rank`` reads ``shards[rank::world_size]``; with fewer shards than
    processes every process reads all shards but keeps only its members (by
    position, modulo), so shares stay disjoint. DataLoader workers split the
    same way. Shards are read sequentially (what shared file systems do well) in
    a shuffled order, and samples pass through a shuffle buffer of
    ``shuffle_buffer`` encoded images, drained at the end of every epoch so an
    epoch is exactly one pass over the share.
    """

    def __init__(self, shards, crop_size: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle_buffer: int = 256):
        super().__init__(crop_size, rank, world_size, seed)
        self.shards = list_shards(shards)
        self.shuffle_buffer = max(1, int(shuffle_buffer))
        if len(self.shards) >= world_size:
            self._share = split_share(self.shards, rank, world_size)
            self._modulo = (1, 0)
        else:
            self._share = list(self.shards)
            self._modulo = (world_size, rank)

    @property
    def share_size(self) -> int:
        """How many shards this process reads (all of them, filtered by member, when shards are few)."""
        return len(self._share)

    def worker_plan(self, worker: int, num_workers: int) -> tuple[list[tuple[int, Path]], tuple[int, int]]:
        """What worker ``worker`` reads: (position, shard) pairs and a member filter (modulus, residue).

        Member j of the shard at position s is kept when (j + s) % modulus == residue;
        adding s rotates the split so small shards do not all favour residue 0.
        """
        indexed = list(enumerate(self._share))
        modulus, residue = self._modulo
        if len(indexed) >= num_workers:
            return split_share(indexed, worker, num_workers), (modulus, residue)
        # Too few shards: split members. Residue + modulus * worker, modulo modulus * num_workers,
        # is the worker's part of the process's part.
        return indexed, (modulus * num_workers, residue + modulus * worker)

    def _epoch(self, rng, worker, num_workers):
        shards, (modulus, residue) = self.worker_plan(worker, num_workers)
        shards = [shards[i] for i in rng.permutation(len(shards))]
        available = 0
        buffer: list[tuple[str, str, bytes]] = []
        for position, shard in shards:
            for j, (key, label, data) in enumerate(self._members(shard)):
                if (j + position) % modulus != residue:
                    continue
                available += 1
                if key in self._skipped:
                    continue
                try:
                    buffer.append((key, label, data()))
                except (tarfile.TarError, OSError, EOFError) as exc:
                    self._skip(key, f"skipping {label}: {exc}")
                    continue
                if len(buffer) >= self.shuffle_buffer:
                    crop = self._crop(*_pop_random(buffer, rng), rng)
                    if crop is not None:
                        yield crop
        while buffer:
            crop = self._crop(*_pop_random(buffer, rng), rng)
            if crop is not None:
                yield crop
        return available

    def _members(self, shard: Path):
        """(key, label, read) for each image member of a shard, in order; read() returns its bytes.

        Data is only read when asked, so members of other ranks are skipped by
        seeking. A damaged shard is warned about once and read as far as it goes.
        """
        try:
            with tarfile.open(shard, mode="r:") as tar:
                for info in tar:
                    if not info.isfile() or Path(info.name).suffix.lower() not in IMAGE_SUFFIXES:
                        continue
                    key = f"{shard}::{info.name}"
                    yield key, f"member {info.name!r} of {str(shard)!r}", _reader(tar, info)
        except (tarfile.TarError, OSError, EOFError) as exc:
            self._skip(str(shard), f"skipping the rest of shard {str(shard)!r}: {exc}")


def _reader(tar: tarfile.TarFile, info: tarfile.TarInfo):
    def read() -> bytes:
        return tar.extractfile(info).read()
    return read


def _pop_random(buffer: list, rng: np.random.Generator):
    """Remove and return a random element in O(1) (swap with the last)."""
    i = int(rng.integers(len(buffer)))
    buffer[i], buffer[-1] = buffer[-1], buffer[i]
    return buffer.pop()


def list_shards(source) -> list[Path]:
    """Shard paths from a folder (its index.json, else its *.tar files by name), a .tar path, or a list."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            index = path / INDEX_NAME
            if index.is_file():
                try:
                    names = [s["name"] for s in json.loads(index.read_text())["shards"]]
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    raise GencodecError(f"cannot read shard index {str(index)!r}: {exc}") from exc
                shards = [path / name for name in names]
            else:
                shards = sorted(p for p in path.glob("*.tar") if p.is_file())
            if not shards:
                raise GencodecError(f"no shards (*.tar) in {str(path)!r}")
        elif path.exists():
            shards = [path]
        else:
            raise GencodecError(f"no such shard file or folder: {str(path)!r}")
    else:
        shards = [Path(p) for p in source]
        if not shards:
            raise GencodecError("no shards given")
    for shard in shards:
        if not shard.is_file():
            raise GencodecError(f"missing shard: {str(shard)!r}")
    return shards


def is_shard_source(path) -> bool:
    """Whether ``path`` names shards (a .tar file, or a folder with index.json or *.tar) rather than images."""
    path = Path(path)
    return (path.is_file() and path.suffix.lower() == ".tar") or (
        path.is_dir() and ((path / INDEX_NAME).is_file() or any(path.glob("*.tar"))))


def make_dataset(path, crop_size: int, rank: int = 0, world_size: int = 1, seed: int = 0) -> _LoopingDataset:
    """ShardDataset for a .tar file or a folder of shards (index.json or *.tar), else ImageFolderDataset."""
    if is_shard_source(path):
        return ShardDataset(path, crop_size, rank=rank, world_size=world_size, seed=seed)
    return ImageFolderDataset(path, crop_size, rank=rank, world_size=world_size, seed=seed)


# ---------------------------------------------------------------------------------------------
# Packing


def tar_size(member_sizes: Iterable[int]) -> int:
    """Exact size of a ustar archive that tarfile writes for members of these sizes.

    One 512-byte header per member, data padded to 512 bytes, two zero blocks
    at the end, the whole padded to tarfile's 10240-byte record.
    """
    block, record = tarfile.BLOCKSIZE, tarfile.RECORDSIZE
    body = sum(block + -(-n // block) * block for n in member_sizes) + 2 * block
    return -(-body // record) * record


class _ShardWriter:
    """Writes numbered samples into size-limited shards, each renamed into place when complete.

    A sample is one or more members under one key (``00000007.jpg``,
    ``00000007.latent.npy``, ...), always kept in the same shard.
    """

    def __init__(self, out_dir: Path, max_shard_bytes: int):
        self.out_dir = out_dir
        self.max_bytes = max_shard_bytes
        self.written: list[tuple[Path, int]] = []  # (path, sample count)
        self.count = 0  # samples written so far, over all shards: the next sample's number
        self._tar = None
        self._tmp = None
        self._sizes: list[int] = []
        self._samples = 0  # in the open shard

    def total_with(self, size: int) -> int:
        """The bytes of all shards, once closed, if a one-member sample of `size` bytes came next."""
        done = sum(path.stat().st_size for path, _ in self.written)
        if self._tar is None:
            return done + tar_size([size])
        if tar_size(self._sizes + [size]) > self.max_bytes:  # it would start a new shard
            return done + tar_size(self._sizes) + tar_size([size])
        return done + tar_size(self._sizes + [size])

    def add(self, ext: str, data: bytes, mtime: float, label: str) -> None:
        self.add_sample([(ext, data)], mtime, label)

    def add_sample(self, members: list[tuple[str, bytes]], mtime: float, label: str) -> None:
        """Add (extension, bytes) members under the next key."""
        sizes = [len(data) for _, data in members]
        if tar_size(sizes) > self.max_bytes:
            raise GencodecError(
                f"{label} is {sum(sizes) / 1e6:.1f} MB encoded, too big for a "
                f"{self.max_bytes / 1e6:.1f} MB shard; use --max-side or a larger --max-shard-mb")
        if self._tar is not None and tar_size(self._sizes + sizes) > self.max_bytes:
            self._finish()
        if self._tar is None:
            self._tmp = self.out_dir / f"shard-{len(self.written):06d}.tar.tmp"
            self._tar = tarfile.open(self._tmp, mode="w", format=tarfile.USTAR_FORMAT)
            self._sizes = []
            self._samples = 0
        for ext, data in members:
            info = tarfile.TarInfo(f"{self.count:08d}.{ext}")
            info.size = len(data)
            info.mtime = int(mtime)
            info.mode = 0o644
            self._tar.addfile(info, io.BytesIO(data))
        self._sizes += sizes
        self._samples += 1
        self.count += 1

    def _finish(self) -> None:
        self._tar.close()
        final = self._tmp.with_suffix("")  # drop ".tmp"
        os.replace(self._tmp, final)
        self.written.append((final, self._samples))
        self._tar = self._tmp = None

    def close(self) -> list[tuple[Path, int]]:
        if self._tar is not None:
            self._finish()
        return self.written

    def abort(self) -> None:
        """Drop a half-written shard (complete ones stay)."""
        if self._tar is not None:
            try:
                self._tar.close()
            finally:
                self._tmp.unlink(missing_ok=True)
                self._tar = self._tmp = None


def downscale(img: Image.Image, max_side: int | None) -> Image.Image:
    """``img`` shrunk (Lanczos) so its longer side is at most ``max_side``; unchanged if it already fits."""
    if max_side is None or max(img.size) <= max_side:
        return img
    scale = max_side / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def center_crop(img: Image.Image, size: int) -> Image.Image | None:
    """The central ``size`` x ``size`` square of ``img``, or None if it is smaller on a side."""
    if min(img.size) < size:
        return None
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return img.crop((left, top, left + size, top + size))


def _encode_for_pack(path: Path, max_side: int | None, quality: int | None, crop: int | None = None,
                     image_format: str = "jpeg") -> tuple[str, bytes] | None:
    """(extension, bytes) to store for one source image, or None after a warning if it is unusable."""
    label = repr(str(path))  # the warnings below point at whoever called pack_shards (stacklevel 4)
    try:
        data = path.read_bytes()
        image = load_image(data)
    except (OSError, InvalidImageError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        warnings.warn(f"skipping {label}: {reason}", DataWarning, stacklevel=4)
        return None
    ext = path.suffix.lower().lstrip(".")
    if max_side is not None or quality is not None or crop is not None or image_format != "jpeg":
        img = downscale(Image.fromarray(image), max_side)
        if crop is not None:
            cropped = center_crop(img, crop)
            if cropped is None:
                warnings.warn(f"skipping {label}: {img.width}x{img.height} pixels is smaller than the "
                              f"{crop} px crop", DataWarning, stacklevel=4)
                return None
            img = cropped
        pil_format, ext = PACK_FORMATS[image_format]
        buf = io.BytesIO()
        options = {"optimize": True} if pil_format == "JPEG" else {"method": 6}
        img.save(buf, format=pil_format, quality=DEFAULT_QUALITY if quality is None else quality, **options)
        data = buf.getvalue()
        width, height = img.size
    else:
        height, width = image.shape[:2]
    if min(width, height) < MIN_PACK_SIDE:
        warnings.warn(f"skipping {label}: {width}x{height} pixels is below the {MIN_PACK_SIDE} px "
                      "short side kept for training", DataWarning, stacklevel=4)
        return None
    return ext, data


@contextlib.contextmanager
def shard_folder(out_dir: Path, max_shard_bytes: int, empty_message: str,
                 write_index: Callable[[list[tuple[Path, int]], int], None]):
    """Write shards into `out_dir` inside the block; yields the writer and the list of written shards.

    The old index goes first (it would describe old shards). After the block
    the shards are closed and listed (path, members), shards of an earlier run
    beyond them are deleted, and `write_index(written, image_count)` writes the
    new index last, which marks the folder complete. On failure every shard
    of this run is removed, and an OSError becomes one line naming the place.
    """
    writer = _ShardWriter(out_dir, max_shard_bytes)
    written: list[tuple[Path, int]] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / INDEX_NAME).unlink(missing_ok=True)
        yield writer, written
        written += writer.close()
        if not written:
            raise GencodecError(empty_message)
        _remove_stale_shards(out_dir, [path for path, _ in written])
        write_index(written, writer.count)
    except OSError as exc:
        writer.abort()
        where = exc.filename if exc.filename else out_dir
        raise GencodecError(f"cannot write shards to {str(where)!r}: {exc.strerror or exc}") from exc
    except BaseException:
        writer.abort()
        raise


def pack_shards(src_root, out_dir, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
                max_side: int | None = None, quality: int | None = None, crop: int | None = None,
                image_format: str = "jpeg", budget_bytes: int | None = None, seed: int = 0) -> list[Path]:
    """Pack the images under ``src_root`` into webdataset-style tar shards in ``out_dir``.

    Shards are ``shard-000000.tar``, ``shard-000001.tar``, ..., none larger than
    ``max_shard_bytes``; members are ``<index:08d>.<ext>`` numbered across shards
    in find_images order. Members hold the original file bytes, unless
    ``max_side``, ``quality``, ``crop`` or a format other than JPEG is given: then
    each image is downscaled so its longer side is at most ``max_side`` (if
    given), cut to its central ``crop`` x ``crop`` square (if given; smaller
    images are skipped) and re-encoded as ``image_format`` (jpeg or webp) at
    ``quality`` (default 90). With ``budget_bytes`` the images are taken in an
    order shuffled from ``seed`` (so that a pack cut short samples every source
    folder alike) until the next one would take the shards over the budget.
    Images that are unreadable or, as stored, under 64 px on the short side are
    skipped with a warning. ``index.json`` lists the shards, counts and source
    folder; it is written last, so a folder with an index is complete. Shards
    from an earlier pack into the same folder are replaced, and leftover ones
    numbered beyond the new pack are deleted. Returns the shard paths.
    """
    _check_pack_options(max_shard_bytes, max_side, quality, crop, image_format, budget_bytes)
    src_root = Path(src_root)
    files = find_images(src_root)
    if budget_bytes is not None:
        files = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
    skipped = left_out = 0
    encoding = {"max_side": max_side, "quality": quality, "crop": crop, "image_format": image_format}

    def write_index(written: list[tuple[Path, int]], images: int) -> None:
        _write_index(Path(out_dir), src_root, written, images, skipped, max_shard_bytes,
                     {**encoding, "budget_bytes": budget_bytes, "left_out": left_out})

    empty = f"no usable images in {str(src_root)!r} (all unreadable or too small)"
    with shard_folder(Path(out_dir), max_shard_bytes, empty, write_index) as (writer, written):
        skipped, left_out = _add_images(writer, files, encoding, budget_bytes)
    return [path for path, _ in written]


def _check_pack_options(max_shard_bytes: int, max_side: int | None, quality: int | None, crop: int | None = None,
                        image_format: str = "jpeg", budget_bytes: int | None = None) -> None:
    if max_shard_bytes <= 0:
        raise GencodecError(f"the shard size limit must be positive, got {max_shard_bytes} bytes")
    if max_side is not None and max_side < MIN_PACK_SIDE:
        raise GencodecError(f"max side must be at least {MIN_PACK_SIDE} px, got {max_side}")
    if quality is not None and not 1 <= quality <= 100:
        raise GencodecError(f"quality must be in 1..100, got {quality}")
    if crop is not None and crop < MIN_PACK_SIDE:
        raise GencodecError(f"the crop must be at least {MIN_PACK_SIDE} px, got {crop}")
    if crop is not None and max_side is not None and crop > max_side:
        raise GencodecError(f"a {crop} px crop does not fit in images shrunk to {max_side} px")
    if image_format not in PACK_FORMATS:
        raise GencodecError(f"format must be one of {', '.join(PACK_FORMATS)}, got {image_format!r}")
    if budget_bytes is not None and budget_bytes < tarfile.RECORDSIZE:
        raise GencodecError(f"a budget of {budget_bytes} bytes cannot hold even an empty shard")


def _add_images(writer: _ShardWriter, files: list[Path], encoding: dict, budget_bytes: int | None) -> tuple[int, int]:
    """Adds every usable image to the shards, within the budget; returns (skipped, left out by the budget)."""
    skipped = 0
    for done, path in enumerate(files):
        encoded = _encode_for_pack(path, **encoding)
        if encoded is None:
            skipped += 1
            continue
        if budget_bytes is not None and writer.total_with(len(encoded[1])) > budget_bytes:
            return skipped, len(files) - done
        writer.add(*encoded, mtime=path.stat().st_mtime, label=repr(str(path)))
    return skipped, 0


def _remove_stale_shards(out_dir: Path, shards: list[Path]) -> None:
    """Deletes shards of an earlier pack numbered beyond this one's."""
    for stale in out_dir.glob("shard-*.tar"):
        if _SHARD_RE.fullmatch(stale.name) and stale not in shards:
            stale.unlink()


def _write_index(out_dir: Path, src_root: Path, written: list[tuple[Path, int]], images: int, skipped: int,
                 max_shard_bytes: int, encoding: dict) -> None:
    """Writes index.json, which marks the pack complete."""
    reencoded = any(encoding[k] is not None for k in ("max_side", "quality", "crop")) \
        or encoding["image_format"] != "jpeg"
    index = {
        "format": "webdataset-tar",
        "version": 1,
        "source": str(src_root.resolve()),
        "images": images,
        "skipped": skipped,
        "left_out_by_budget": encoding["left_out"],
        "max_side": encoding["max_side"],
        "crop": encoding["crop"],
        "image_format": encoding["image_format"] if reencoded else None,
        "quality": encoding["quality"] if encoding["quality"] is not None else (DEFAULT_QUALITY if reencoded else None),
        "budget_bytes": encoding["budget_bytes"],
        "max_shard_bytes": max_shard_bytes,
        "shards": [{"name": p.name, "images": n, "bytes": p.stat().st_size} for p, n in written],
    }
    # Renamed into place, so that an index is never seen half-written.
    write_atomic(out_dir / INDEX_NAME, json.dumps(index, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> int:
    """`python -m gencodec.training.data pack ...`: the same as `gencodec pack ...`."""
    from gencodec.cli import main as gencodec_main

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["pack"]:
        argv = argv[1:]
    return gencodec_main(["pack", *argv])


if __name__ == "__main__":
    sys.exit(main())
