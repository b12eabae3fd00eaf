"""gencodec pack's compact form: one central crop per photo, WebP, in a size budget; training reads it."""

from __future__ import annotations

import json
import tarfile
import warnings

import numpy as np
import pytest
from PIL import Image

from gencodec.cli import main
from gencodec.errors import GencodecError
from gencodec.training.data import INDEX_NAME, ShardDataset, pack_shards

from .conftest import smooth_image


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(12):
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        Image.fromarray(smooth_image(150 + 10 * i, 200, seed=i)).save(sub / f"p{i:02d}.png")
    Image.fromarray(smooth_image(70, 300, seed=99)).save(folder / "narrow.png")  # under the crop
    return folder


def _members(out):
    return [m for shard in sorted(out.glob("shard-*.tar")) for m in tarfile.open(shard).getmembers()]


def test_crops_as_webp_within_a_budget(photos, tmp_path):
    out = tmp_path / "pack"
    with pytest.warns(UserWarning, match="smaller than the 96 px crop"):
        pack_shards(photos, out, crop=96, image_format="webp", quality=85)
    members = _members(out)
    assert len(members) == 12 and all(m.name.endswith(".webp") for m in members)
    shard = tarfile.open(next(out.glob("shard-*.tar")))
    assert Image.open(shard.extractfile(members[0])).size == (96, 96)
    full = sum(p.stat().st_size for p in out.glob("shard-*.tar"))
    index = json.loads((out / INDEX_NAME).read_text())
    assert (index["crop"], index["image_format"], index["quality"], index["skipped"]) == (96, "webp", 85, 1)

    budget = full // 2
    small = tmp_path / "small"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the narrow photo, if the shuffled order reaches it
        pack_shards(photos, small, crop=96, image_format="webp", quality=85, budget_bytes=budget,
                    max_shard_bytes=30_000)
    assert sum(p.stat().st_size for p in small.glob("shard-*.tar")) <= budget
    index = json.loads((small / INDEX_NAME).read_text())
    kept = len(_members(small))
    assert 0 < kept < 12 and index["images"] == kept and index["left_out_by_budget"] > 0
    crops = iter(ShardDataset(small, 96, seed=0))
    assert next(crops).shape == (3, 96, 96)


@pytest.mark.parametrize("options, message", [
    ({"crop": 32}, "the crop must be at least 64 px"),
    ({"crop": 200, "max_side": 100}, "a 200 px crop does not fit in images shrunk to 100 px"),
    ({"image_format": "avif"}, "format must be one of jpeg, webp"),
    ({"budget_bytes": 100}, "cannot hold even an empty shard"),
])
def test_bad_pack_options_are_one_line(photos, tmp_path, options, message):
    with pytest.raises(GencodecError, match=message):
        pack_shards(photos, tmp_path / "x", **options)


def test_the_command_line_says_what_the_budget_left_out(photos, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["pack", str(photos), str(out), "--crop", "96", "--format", "webp", "--budget-mb", "0.05"])
    printed = capsys.readouterr().out
    assert code == 0 and "left out by the 0.05 MB budget" in printed
    assert sum(p.stat().st_size for p in out.glob("shard-*.tar")) <= 50_000
    assert np.isfinite(json.loads((out / INDEX_NAME).read_text())["images"])
