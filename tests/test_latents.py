"""Tests for gencodec.training.latents: caching TAEF2 latents into shards, and aligned crops of them."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import tarfile
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch.utils.data import DataLoader

from gencodec.cli import main
from gencodec.errors import GencodecError
from gencodec.imageio import load_image
from gencodec.nn.taef2 import (
    DECODER_FILE,
    ENCODER_FILE,
    TAEF2Decoder,
    TAEF2Encoder,
    load_taef2,
)
from gencodec.training import latents
from gencodec.training.data import DataWarning, ShardDataset, list_shards, pack_shards
from gencodec.training.latents import LatentShardDataset, cache_latents

CROP = 32
# (name, (height, width), base colour): every crop tells its image by its mean colour.
IMAGES = [
    ("a.png", (48, 64), (40, 200, 90)),
    ("b.jpg", (70, 100), (200, 40, 150)),  # not a multiple of 8: centre-cropped to 64x96, stored as PNG
    ("c.png", (72, 80), (90, 150, 200)),
    ("d.jpg", (56, 64), (150, 90, 40)),  # a multiple of 8: the original JPEG is kept
]


def _textured(colour, height, width, seed):
    """A base colour plus noise: no two 8-px-grid crops of one image are alike."""
    noise = np.random.default_rng(seed).integers(-25, 26, (height, width, 3))
    return np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Encode on one thread: on these tiny images OpenMP's hand-offs cost more than the work,
    several times more when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def taef2_dir(tmp_path_factory):
    """Freshly initialised TAEF2 weights under the file names load_taef2 expects."""
    folder = tmp_path_factory.mktemp("taef2")
    torch.manual_seed(0)
    save_file(TAEF2Encoder().state_dict(), str(folder / ENCODER_FILE))
    save_file(TAEF2Decoder().state_dict(), str(folder / DECODER_FILE))
    return folder


@pytest.fixture(scope="module")
def encoder(taef2_dir):
    return load_taef2(taef2_dir)[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for seed, (name, (h, w), colour) in enumerate(IMAGES):
        options = {"quality": 95} if name.endswith(".jpg") else {}
        Image.fromarray(_textured(colour, h, w, seed)).save(root / name, **options)
    (root / "e_bad.png").write_bytes(b"not a png")
    return root


@pytest.fixture(scope="module")
def cache(folder, taef2_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache")
    with pytest.warns(DataWarning, match="e_bad.png"):
        cache_latents(folder, out, taef2_dir, mirror=True, max_shard_bytes=40_000)
    return out


def _samples(out) -> list[dict[str, bytes]]:
    """Every sample of a cache, in key order: {extension: bytes}."""
    samples: dict[str, dict[str, bytes]] = {}
    for shard in list_shards(out):
        with tarfile.open(shard) as tar:
            for info in tar:
                key, _, ext = info.name.partition(".")
                samples.setdefault(key, {})[ext] = tar.extractfile(info).read()
    return [samples[key] for key in sorted(samples)]


def _npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _image(sample: dict[str, bytes]) -> np.ndarray:
    return load_image(next(data for ext, data in sample.items() if not ext.endswith(".npy")))


def _encode(encoder, image: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        return encoder(x)[0]


def _assert_latent(stored: np.ndarray, expected: torch.Tensor) -> None:
    assert stored.dtype == np.float16 and stored.shape == tuple(expected.shape)
    torch.testing.assert_close(torch.from_numpy(stored).float(), expected, rtol=2e-3, atol=1e-4)


def _centre_crop(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    top, left = (h % 8) // 2, (w % 8) // 2
    return image[top:top + h - h % 8, left:left + w - w % 8]


# ------------------------------------------------------------------------------------------- writing

def test_index(cache, taef2_dir):
    index = json.loads((cache / "index.json").read_text())
    assert index["kind"] == "taef2-latents" and index["mirror"] is True
    assert index["images"] == len(IMAGES) and index["skipped"] == 1
    assert index["latent_channels"] == 32 and index["scale"] == 8 and index["latent_dtype"] == "float16"
    for name in (ENCODER_FILE, DECODER_FILE):
        assert index["taef2_sha256"][name] == hashlib.sha256((taef2_dir / name).read_bytes()).hexdigest()
    assert len(index["shards"]) > 1  # small shards: each sample still lies whole in one
    assert sum(s["images"] for s in index["shards"]) == len(IMAGES)
    assert not list(cache.glob("*.tmp"))


def test_images_latents_and_mirror_latents(cache, folder, encoder):
    samples = _samples(cache)
    assert len(samples) == len(IMAGES)
    for sample, (name, (h, w), _) in zip(samples, IMAGES):
        assert set(sample) == {"jpg" if name == "d.jpg" else "png", "latent.npy", "latent_mirror.npy"}
        image = _image(sample)
        assert image.shape == (h - h % 8, w - w % 8, 3)
        assert np.array_equal(image, _centre_crop(load_image(folder / name)))
        latent, mirrored = _encode(encoder, image), _encode(encoder, image[:, ::-1])
        _assert_latent(_npy(sample["latent.npy"]), latent)
        _assert_latent(_npy(sample["latent_mirror.npy"]), mirrored)
        # Why the mirror latent is stored: flipping the latent does not give it.
        assert not torch.allclose(mirrored, latent.flip(-1), atol=1e-2)
    assert samples[3]["jpg"] == (folder / "d.jpg").read_bytes()


def test_from_pack_shards_and_max_side(folder, taef2_dir, encoder, cache, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        pack_shards(folder, tmp_path / "pack")
        cache_latents(tmp_path / "pack", tmp_path / "same", taef2_dir)
        cache_latents(tmp_path / "pack", tmp_path / "small", taef2_dir, max_side=64)
    # pack keeps b and c only: a and d are under its 64 px short side.
    for sample, reference in zip(_samples(tmp_path / "same"), _samples(cache)[1:3], strict=True):
        assert "latent_mirror.npy" not in sample
        assert np.array_equal(_image(sample), _image(reference))
        # Close, not equal: the reference was encoded beside its mirror, in a batch of two.
        np.testing.assert_allclose(_npy(sample["latent.npy"]), _npy(reference["latent.npy"]), rtol=2e-3, atol=1e-4)
    small = _samples(tmp_path / "small")
    b = _image(small[0])
    assert b.shape == (40, 64, 3)  # 100x70 -> 64x45 -> 64x40
    _assert_latent(_npy(small[0]["latent.npy"]), _encode(encoder, b))
    assert json.loads((tmp_path / "small" / "index.json").read_text())["max_side"] == 64


def test_batches_give_the_same_latents(folder, taef2_dir, cache, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        cache_latents(folder, tmp_path / "batched", taef2_dir, mirror=True, batch_size=3)
    for sample, reference in zip(_samples(tmp_path / "batched"), _samples(cache), strict=True):
        for name in ("latent.npy", "latent_mirror.npy"):
            np.testing.assert_allclose(_npy(sample[name]), _npy(reference[name]), rtol=2e-3, atol=1e-4)


def test_an_interrupted_run_leaves_only_whole_shards(folder, taef2_dir, tmp_path, monkeypatch):
    encode, calls = latents._encode, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return encode(*args)

    monkeypatch.setattr(latents, "_encode", interrupted)
    with warnings.catch_warnings(), pytest.raises(KeyboardInterrupt):
        warnings.simplefilter("ignore", DataWarning)
        cache_latents(folder, tmp_path / "out", taef2_dir, max_shard_bytes=40_000)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "index.json" not in names and not [n for n in names if n.endswith(".tmp")]
    assert names and all(n.startswith("shard-") for n in names)
    for name in names:  # the shards finished before the interrupt are whole
        with tarfile.open(tmp_path / "out" / name) as tar:
            assert len(tar.getnames()) % 2 == 0


def test_errors(folder, taef2_dir, tmp_path):
    with pytest.raises(GencodecError, match="TAEF2 weights not found"):
        cache_latents(folder, tmp_path / "out", tmp_path / "nowhere")
    with pytest.raises(GencodecError, match="no such folder"):
        cache_latents(tmp_path / "missing", tmp_path / "out", taef2_dir)
    with pytest.raises(GencodecError, match="batch size"):
        cache_latents(folder, tmp_path / "out", taef2_dir, batch_size=0)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------- reading

def _take(dataset, n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return list(itertools.islice(iter(dataset), n))


def _identify(image: torch.Tensor) -> int:
    """Index in IMAGES of the image a crop came from."""
    mean = (image * 255).mean(dim=(1, 2)).numpy()
    dist = np.abs(np.array([colour for _, _, colour in IMAGES]) - mean).sum(axis=1)
    assert dist.min() < 15, f"crop colour {mean} matches no test image"
    return int(dist.argmin())


def test_crops_are_aligned_with_their_latents(cache):
    samples = _samples(cache)
    seen = set()
    for item in _take(LatentShardDataset(cache, CROP, seed=1), 24):
        assert item["image"].shape == (3, CROP, CROP) and item["image"].dtype == torch.float32
        assert item["latent"].shape == (32, CROP // 8, CROP // 8) and item["latent"].dtype == torch.float32
        sample = samples[_identify(item["image"])]
        crop = (item["image"] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        matches = []
        for mirrored, name in ((False, "latent.npy"), (True, "latent_mirror.npy")):
            image = _image(sample)[:, ::-1] if mirrored else _image(sample)
            latent = _npy(sample[name])
            for top in range(0, image.shape[0] - CROP + 1, 8):  # only grid positions: an off-grid crop fails
                for left in range(0, image.shape[1] - CROP + 1, 8):
                    if np.array_equal(image[top:top + CROP, left:left + CROP], crop):
                        matches.append(mirrored)
                        expected = latent[:, top // 8:(top + CROP) // 8, left // 8:(left + CROP) // 8]
                        assert torch.equal(item["latent"], torch.from_numpy(expected.astype(np.float32)))
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == {False, True}  # both orientations are drawn


def test_no_mirror_without_the_mirror_latent(folder, taef2_dir, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        cache_latents(folder, tmp_path / "plain", taef2_dir)
    samples = _samples(tmp_path / "plain")
    for item in _take(LatentShardDataset(tmp_path / "plain", 48, seed=2), 12):
        image = _image(samples[_identify(item["image"])])
        crop = (item["image"] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert any(np.array_equal(image[t:t + 48, l:l + 48], crop)
                   for t in range(0, image.shape[0] - 47, 8) for l in range(0, image.shape[1] - 47, 8))


@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
def test_ranks_split_as_shard_dataset(cache, world_size):
    """Each rank gets the same images as ShardDataset gives it on the same shards: disjoint, covering all."""
    shares = []
    for rank in range(world_size):
        mine = {_identify(x["image"]) for x in _take(LatentShardDataset(cache, CROP, rank, world_size), 12)}
        theirs = {_identify(x) for x in _take(ShardDataset(cache, CROP, rank, world_size), 12)}
        assert mine == theirs
        shares.append(mine)
    assert sum(len(s) for s in shares) == len(IMAGES) and set().union(*shares) == set(range(len(IMAGES)))


def test_dataloader_batches_and_crop_size(cache):
    batch = next(iter(DataLoader(LatentShardDataset(cache, CROP), batch_size=3)))
    assert batch["image"].shape == (3, 3, CROP, CROP) and batch["latent"].shape == (3, 32, CROP // 8, CROP // 8)
    with pytest.raises(GencodecError, match="multiple of 8"):
        LatentShardDataset(cache, 30)


def test_samples_smaller_than_the_crop_are_skipped_once(cache):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = list(itertools.islice(iter(LatentShardDataset(cache, 64)), 6))
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    # a (64x48) and d (64x56) are too small; b (96x64) and c (80x72) alternate.
    assert len(messages) == 2 and all("smaller than the 64 px crop" in m for m in messages)
    assert {_identify(x["image"]) for x in items} == {1, 2}


# ------------------------------------------------------------------------------------------- command line

def test_cli(capsys, folder, taef2_dir, tmp_path):
    out = tmp_path / "cli"
    code = main(["cache-latents", str(folder), str(out), "--taef2", str(taef2_dir), "--mirror"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith(f"cached {len(IMAGES)} images into 1 shards")
    assert "warning:" in captured.err and "e_bad.png" in captured.err
    assert json.loads((out / "index.json").read_text())["mirror"] is True


def test_cli_missing_taef2_is_one_line(capsys, folder, tmp_path):
    code = main(["cache-latents", str(folder), str(tmp_path / "out"), "--taef2", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("gencodec: error: TAEF2 weights not found")
    assert not (tmp_path / "out").exists()
