"""Tests for gencodec.training.data: finding images, crops, rank/worker shares, skip warnings, shards, CLI."""

import io
import itertools
import json
import subprocess
import sys
import tarfile
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from gencodec.training.data import (
    DataWarning,
    ImageFolderDataset,
    ShardDataset,
    find_images,
    main,
    make_dataset,
    pack_shards,
    random_crop_flip,
    split_share,
    tar_size,
)
from gencodec.errors import GencodecError

CROP = 48
# Each usable image gets its own base colour, so any crop of it tells which image it came from.
COLOURS = [(40, 200, 90), (200, 40, 150), (90, 150, 200), (150, 90, 40), (200, 200, 200)]
# (relative path, (height, width)) of the usable images, in sorted (find_images) order.
GOOD = [
    ("a.png", (80, 96)),
    ("b.jpg", (96, 80)),
    ("sub/c.png", (96, 128)),
    ("sub/d.webp", (100, 100)),
    ("sub/deeper/E.PNG", (96, 96)),
]


def _textured(colour, height, width):
    """A constant colour plus a small pattern and noise: crops at different places differ,
    and the files are big enough (~10 KB) to fill small shards."""
    yy, xx = np.mgrid[0:height, 0:width]
    pattern = (xx * 3 + yy * 5) % 11 - 5
    noise = np.random.default_rng(sum(colour)).integers(-2, 3, (height, width, 3))
    return (np.array(colour)[None, None, :] + pattern[..., None] + noise).astype(np.uint8)


def _save(arr, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = {".jpg": "JPEG", ".png": "PNG", ".webp": "WEBP"}[path.suffix.lower()]
    options = {"quality": 95} if kind == "JPEG" else {"lossless": True} if kind == "WEBP" else {}
    Image.fromarray(arr).save(path, format=kind, **options)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    for (name, (h, w)), colour in zip(GOOD, COLOURS):
        _save(_textured(colour, h, w), root / name)
    (root / "bad.jpg").write_bytes(b"this is not a jpeg")
    _save(_textured((10, 10, 10), 20, 20), root / "tiny.png")
    (root / "notes.txt").write_text("not an image")
    return root


def _identify(crop: torch.Tensor) -> int:
    """Index in COLOURS of the image a crop came from."""
    mean = (crop * 255).mean(dim=(1, 2)).numpy()
    dist = np.abs(np.array(COLOURS) - mean).sum(axis=1)
    assert dist.min() < 12, f"crop colour {mean} matches no test image"
    return int(dist.argmin())


def _take(dataset, n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return list(itertools.islice(iter(dataset), n))


def test_find_images_recursive_sorted(folder):
    found = [p.relative_to(folder).as_posix() for p in find_images(folder)]
    assert found == ["a.png", "b.jpg", "bad.jpg", "sub/c.png", "sub/d.webp", "sub/deeper/E.PNG", "tiny.png"]


def test_find_images_errors(tmp_path):
    with pytest.raises(GencodecError, match="no such folder"):
        find_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GencodecError, match="no images"):
        find_images(tmp_path / "empty")


def test_random_crop_flip_shape_range_and_flip():
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    crop = random_crop_flip(image, 32, np.random.default_rng(1))
    assert crop.shape == (3, 32, 32) and crop.dtype == torch.float32
    assert 0.0 <= crop.min() and crop.max() <= 1.0
    # A crop the size of the image is the image or its mirror, both seen over a few draws.
    rng = np.random.default_rng(2)
    full = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255)
    seen = set()
    for _ in range(20):
        crop = random_crop_flip(image[:, :40], 40, rng)
        seen.add("same" if torch.equal(crop, full[:, :, :40]) else
                 "flip" if torch.equal(crop, full[:, :, :40].flip(-1)) else "other")
    assert seen == {"same", "flip"}
    with pytest.raises(GencodecError):
        random_crop_flip(image, 48, rng)


def test_folder_crops_and_one_epoch_covers_every_image(folder):
    crops = _take(ImageFolderDataset(folder, CROP), len(GOOD))
    assert all(c.shape == (3, CROP, CROP) and c.dtype == torch.float32 for c in crops)
    assert all(0.0 <= c.min() and c.max() <= 1.0 for c in crops)
    assert sorted(_identify(c) for c in crops) == list(range(len(GOOD)))


def test_same_seed_same_first_batch(folder):
    def first_batch(seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            return next(iter(DataLoader(ImageFolderDataset(folder, CROP, seed=seed), batch_size=4)))
    a, b, c = first_batch(3), first_batch(3), first_batch(4)
    assert a.shape == (4, 3, CROP, CROP)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_bad_and_small_files_warn_once_over_many_epochs(folder):
    dataset = ImageFolderDataset(folder, CROP)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        crops = list(itertools.islice(iter(dataset), 4 * len(GOOD)))
        crops += list(itertools.islice(iter(dataset), len(GOOD)))  # a new iterator, same dataset
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(messages) == 2, messages
    assert sum("bad.jpg" in m for m in messages) == 1
    assert sum("tiny.png" in m and "smaller than" in m for m in messages) == 1
    assert all("\n" not in m for m in messages)
    assert len(crops) == 5 * len(GOOD)


def test_all_unusable_share_raises(tmp_path):
    _save(_textured((10, 10, 10), 20, 20), tmp_path / "small.png")
    (tmp_path / "bad.jpg").write_bytes(b"junk")
    with pytest.raises(GencodecError, match="none of the 2 images"):
        _take(ImageFolderDataset(tmp_path, CROP), 1)


def test_ranks_get_disjoint_shares_covering_everything(folder):
    seen = []
    for rank in range(2):
        dataset = ImageFolderDataset(folder, CROP, rank=rank, world_size=2)
        usable = [p for p in dataset.files if p.name not in ("bad.jpg", "tiny.png")]
        seen.append({_identify(c) for c in _take(dataset, len(usable))})
    assert seen[0].isdisjoint(seen[1])
    assert seen[0] | seen[1] == set(range(len(GOOD)))
    with pytest.raises(GencodecError, match="no images"):
        ImageFolderDataset(folder, CROP, rank=9, world_size=10)


def test_worker_split_is_disjoint_and_complete(folder):
    assert split_share(list(range(7)), 0, 3) + split_share(list(range(7)), 1, 3) \
        + split_share(list(range(7)), 2, 3) == [0, 3, 6, 1, 4, 2, 5]
    dataset = ImageFolderDataset(folder, CROP, rank=1, world_size=2)
    parts = [dataset.worker_files(w, 2) for w in range(2)]
    assert set(parts[0]).isdisjoint(parts[1])
    assert sorted(parts[0] + parts[1]) == sorted(dataset.files)


def test_dataloader_workers_do_not_duplicate(folder):
    # Worker 0 holds a.png, bad.jpg, d.webp, tiny.png (2 usable); worker 1 b.jpg, c.png, E.PNG.
    # The loader alternates workers, so the first 4 crops are each worker's first 2 of epoch 0.
    loader = DataLoader(ImageFolderDataset(folder, CROP), batch_size=None, num_workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        ids = [_identify(c) for c in itertools.islice(loader, 10)]
    assert len(set(ids[:4])) == 4
    assert set(ids) == set(range(len(GOOD)))


def test_pack_shards_roundtrip_and_index(folder, tmp_path):
    out = tmp_path / "shards"
    with pytest.warns(DataWarning) as caught:
        shards = pack_shards(folder, out)
    assert sorted(str(w.message).split("'")[1].rsplit("/", 1)[-1] for w in caught) == ["bad.jpg", "tiny.png"]
    assert [p.name for p in shards] == ["shard-000000.tar"]
    with tarfile.open(shards[0]) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["00000000.png", "00000001.jpg", "00000002.png",
                                             "00000003.webp", "00000004.png"]
        for m, (name, _) in zip(members, GOOD):
            assert tar.extractfile(m).read() == (folder / name).read_bytes()  # original bytes
    index = json.loads((out / "index.json").read_text())
    assert index["images"] == len(GOOD) and index["skipped"] == 2
    assert index["source"] == str(folder.resolve())
    assert index["shards"] == [{"name": "shard-000000.tar", "images": 5, "bytes": shards[0].stat().st_size}]
    assert not list(out.glob("*.tmp"))


def test_pack_shards_respects_max_shard_bytes(tmp_path):
    src = tmp_path / "noisy"
    rng = np.random.default_rng(0)
    for i in range(6):
        _save(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), src / f"{i}.png")  # ~12 KB each
    sizes = [p.stat().st_size for p in sorted(src.iterdir())]
    limit = tar_size(sizes[:2])  # room for two images per shard, not three
    assert tar_size(sizes[:3]) > limit
    shards = pack_shards(src, tmp_path / "out", max_shard_bytes=limit)
    assert len(shards) == 3
    assert all(p.stat().st_size <= limit for p in shards)
    names = []
    for shard in shards:
        with tarfile.open(shard) as tar:
            names += tar.getnames()
    assert names == [f"{i:08d}.png" for i in range(6)]
    with pytest.raises(GencodecError, match="too big"):
        pack_shards(src, tmp_path / "out2", max_shard_bytes=12_000)
    # Packing again into the same folder with larger shards removes the now-stale ones.
    assert len(pack_shards(src, tmp_path / "out")) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["index.json", "shard-000000.tar"]


def test_pack_shards_max_side_reencodes(folder, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        shards = pack_shards(folder, tmp_path / "small", max_side=100, quality=80)
    with tarfile.open(shards[0]) as tar:
        members = tar.getmembers()
        assert len(members) == len(GOOD) and all(m.name.endswith(".jpg") for m in members)
        for m in members:
            with Image.open(io.BytesIO(tar.extractfile(m).read())) as img:
                assert img.format == "JPEG" and max(img.size) <= 100
                if m.name == "00000002.jpg":  # sub/c.png, 128x96
                    assert img.size == (100, 75)


def test_shard_dataset_matches_folder(folder, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        pack_shards(folder, tmp_path / "shards")
    dataset = make_dataset(tmp_path / "shards", CROP, 0, 1, 0)
    assert isinstance(dataset, ShardDataset)
    assert isinstance(make_dataset(folder, CROP, 0, 1, 0), ImageFolderDataset)
    crops = _take(dataset, 3 * len(GOOD))
    assert all(c.shape == (3, CROP, CROP) for c in crops)
    for epoch in range(3):
        assert sorted(_identify(c) for c in crops[epoch * 5:(epoch + 1) * 5]) == list(range(len(GOOD)))
    # Same seed, same stream.
    assert all(torch.equal(a, b) for a, b in zip(crops, _take(ShardDataset(tmp_path / "shards", CROP), 15)))


def _planned_members(dataset, worker, num_workers):
    """The (shard, member number) pairs a worker's plan keeps."""
    shards, (modulus, residue) = dataset.worker_plan(worker, num_workers)
    kept = set()
    for position, shard in shards:
        with tarfile.open(shard) as tar:
            kept |= {(shard, j) for j in range(len(tar.getmembers())) if (j + position) % modulus == residue}
    return kept


@pytest.mark.parametrize("many", [False, True])
def test_shard_ranks_and_workers_disjoint(folder, tmp_path, many):
    # One shard: ranks and workers split members. Several: ranks split shards, and workers
    # split shards or, where a rank has only one, its members.
    limit = max(tar_size([(folder / name).stat().st_size]) for name, _ in GOOD) if many else 45_000_000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        shards = pack_shards(folder, tmp_path / "shards", max_shard_bytes=limit)
    assert len(shards) >= 3 if many else len(shards) == 1
    seen, members = [], []
    for rank in range(2):
        dataset = ShardDataset(shards, CROP, rank=rank, world_size=2)
        share = _planned_members(dataset, 0, 1)
        crops = _take(dataset, len(share))  # one epoch
        seen.append({_identify(c) for c in crops})
        assert len(seen[-1]) == len(share)
        parts = [_planned_members(dataset, w, 2) for w in range(2)]
        assert parts[0].isdisjoint(parts[1]) and parts[0] | parts[1] == share
        members.append(share)
    assert members[0].isdisjoint(members[1])
    assert seen[0].isdisjoint(seen[1])
    assert seen[0] | seen[1] == set(range(len(GOOD)))


def test_cli_pack(folder, tmp_path, capsys):
    assert main(["pack", str(folder), str(tmp_path / "out"), "--max-shard-mb", "1", "--max-side", "90"]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and out.startswith("packed 5 images into 1 shards")
    assert err.count("gencodec: warning:") == 2 and "Traceback" not in err
    assert (tmp_path / "out" / "index.json").is_file()

    assert main(["pack", str(tmp_path / "missing"), str(tmp_path / "out2")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("gencodec: error: no such folder")


def test_cli_help():
    result = subprocess.run([sys.executable, "-m", "gencodec.training.data", "pack", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--max-side" in result.stdout
