"""Many files in one command: the layout kept, byte-identical to one file at a time, a manifest, resuming,
bad inputs recorded, and workers that do each input exactly once."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gencodec import GenCodecModel
from gencodec.cli import main

from .conftest import ROOT, smooth_image
from .test_distributed import ACCELERATE, TWO_CPU_PROCESSES

MODEL = ["--model", "untrained", "--device", "cpu"]


@pytest.fixture
def photos(tmp_path) -> Path:
    """A folder of 5 small photos (one in a subfolder, sizes differ) and one broken file."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i, (h, w) in enumerate([(48, 64), (64, 48), (40, 40), (64, 96), (33, 50)]):
        Image.fromarray(smooth_image(h, w, seed=i)).save(root / ("sub" if i == 3 else "") / f"p{i}.png")
    (root / "sub" / "broken.png").write_bytes(b"not a picture")
    return root


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def _run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("batch", [[], ["--batch-size", "3"]])
def test_a_folder_is_compressed_in_its_layout_byte_for_byte_as_one_file_at_a_time(capsys, tmp_path, photos, batch,
                                                                                   monkeypatch):
    """Also with the encoder batched: four of the photos pad to 64x64, so they go through it 3 and 1 at once."""
    seen = []
    original = GenCodecModel.encode
    monkeypatch.setattr(GenCodecModel, "encode", lambda self, x: seen.append(x.shape[0]) or original(self, x))
    out = tmp_path / "out"
    code, err = _run(capsys, "compress", photos, "--out-dir", out, "--level", "1", *batch, *MODEL)
    assert sorted(seen) == ([1, 1, 3] if batch else [1] * 5)
    assert code == 1 and "5 done, 1 failed; 0 of 6 inputs were done before" in err and "broken.png" in err
    records = {Path(r["input"]).name: r for r in _records(out)}
    assert "not a recognised image format" in records["broken.png"]["error"]
    for source in sorted(photos.rglob("p*.png")):
        batched = out / source.relative_to(photos).with_suffix(".gcz")
        single = tmp_path / "single.gcz"
        assert _run(capsys, "compress", source, "-o", single, "--level", "1", "--force", *MODEL)[0] == 0
        assert batched.read_bytes() == single.read_bytes()
        record = records[source.name]
        assert record["output"] == str(batched) and record["bytes"] == batched.stat().st_size
        assert record["level"] == 1 and (record["width"], record["height"]) == Image.open(source).size


def test_decompressing_a_glob_matches_one_file_at_a_time(capsys, tmp_path, photos):
    codes = tmp_path / "codes"
    _run(capsys, "compress", photos / "p0.png", photos / "sub" / "p3.png", "--out-dir", codes, *MODEL)
    out = tmp_path / "decoded"
    code, err = _run(capsys, "decompress", f"{codes}/*.gcz", "--out-dir", out, "--seed", "3", *MODEL)
    assert code == 0 and "2 done, 0 failed" in err
    for name in ("p0", "p3"):
        single = tmp_path / f"{name}.png"
        assert _run(capsys, "decompress", codes / f"{name}.gcz", "-o", single, "--seed", "3", *MODEL)[0] == 0
        assert np.array_equal(np.asarray(Image.open(out / f"{name}.png")), np.asarray(Image.open(single)))


def test_a_killed_run_resumes_without_losing_or_repeating_anything(capsys, tmp_path, photos):
    out = tmp_path / "out"
    _run(capsys, "compress", photos, "--out-dir", out, *MODEL)
    whole = (out / "manifest.jsonl").read_text().splitlines(keepends=True)
    # As if killed while writing p4's record (its output written, its line torn), with p2's output deleted
    # since: p0 and p1 are done, p2 and p4 are done again, and the broken file and sub/p3 are new.
    (out / "manifest.jsonl").unlink()
    (out / "manifest.jsonl.part-0").write_text("".join(whole[:3]) + whole[3][:20])
    (out / "p2.gcz").unlink()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.gcz")}
    code, err = _run(capsys, "compress", photos, "--out-dir", out, *MODEL)
    assert code == 1 and "2 of 6 inputs were done before" in err
    records = _records(out)
    assert sorted(r["input"] for r in records) == sorted({r["input"] for r in records})  # no duplicates
    assert len(records) == 6 and (out / "p2.gcz").exists() and not list(out.glob("manifest.jsonl.part-*"))
    redone = sorted(p.name for p, t in before.items() if p.stat().st_mtime_ns != t)
    assert redone == ["p3.gcz", "p4.gcz"]  # those without a record; p0 and p1 untouched
    assert [r["sha256"] for r in records if "sha256" in r] == [json.loads(line).get("sha256") for line in whole
                                                                 if "sha256" in line]
    # Everything recorded: nothing to do; --force does it all again.
    assert "6 of 6 inputs were done before" in _run(capsys, "compress", photos, "--out-dir", out, *MODEL)[1]
    assert "0 of 6 inputs were done before" in _run(capsys, "compress", photos, "--out-dir", out, "--force", *MODEL)[1]


def test_two_workers_do_each_input_exactly_once(capsys, tmp_path, photos):
    out = tmp_path / "out"
    code, err = _run(capsys, "compress", photos, "--out-dir", out, "--workers", "2", *MODEL)
    assert code == 1 and "5 done, 1 failed; 0 of 6 inputs were done before" in err
    inputs = [r["input"] for r in _records(out)]
    assert len(inputs) == len(set(inputs)) == 6
    assert sorted(r["worker"] for r in _records(out)) == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("argv, message", [
    (["compress", "A", "B"], "several inputs (or a folder, a glob, a list) need --out-dir DIR"),
    (["compress", "A", "B", "-o", "x.gcz"], "-o names one output; with several inputs give --out-dir"),
])
def test_usage_mistakes_with_many_inputs(capsys, tmp_path, photos, argv, message):
    argv = [str(photos / "p0.png") if a == "A" else str(photos / "p1.png") if a == "B" else a for a in argv]
    code, err = _run(capsys, *argv, *MODEL)
    assert code == 2 and message in err


def test_outputs_that_no_manifest_claims_are_not_overwritten(capsys, tmp_path, photos):
    out = tmp_path / "out"
    out.mkdir()
    (out / "p0.gcz").write_bytes(b"someone's file")
    code, err = _run(capsys, "compress", photos / "p0.png", "--out-dir", out, *MODEL)
    assert code == 1 and "already exists and no manifest there says this run wrote it" in err
    assert (out / "p0.gcz").read_bytes() == b"someone's file"


def test_a_file_list_keeps_the_paths_it_gives(capsys, tmp_path, photos, monkeypatch):
    monkeypatch.chdir(photos)
    (photos / "list.txt").write_text("# two photos\np1.png\nsub/p3.png\n")
    out = tmp_path / "out"
    assert _run(capsys, "compress", "@list.txt", "--out-dir", out, *MODEL)[0] == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.gcz")) == ["p1.gcz", "sub/p3.gcz"]


@pytest.mark.slow
@pytest.mark.skipif(not ACCELERATE.exists(), reason=f"no `accelerate` executable next to {sys.executable}")
def test_two_processes_under_accelerate_launch_do_each_photo_exactly_once(tmp_path):
    """`accelerate launch -m gencodec compress` with 2 CPU processes over 12 photos: it exits 0; the merged
    manifest has 12 records, one per photo, from both processes' parts (each wrote its own share); and every
    file is the one the single-process batch writes."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(12):
        Image.fromarray(smooth_image(32 + 8 * (i % 3), 48, seed=i)).save(photos / f"p{i:02d}.png")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    out = tmp_path / "launched"
    result = subprocess.run([str(ACCELERATE), "launch", *TWO_CPU_PROCESSES, "-m", "gencodec", "compress",
                             str(photos), "--out-dir", str(out), *MODEL], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = _records(out)
    assert sorted(r["input"] for r in records) == sorted(str(p) for p in photos.iterdir())
    assert "12 done, 0 failed; 0 of 12 inputs were done before" in result.stderr
    assert sorted(r["worker"] for r in records) == [0] * 6 + [1] * 6
    assert main(["compress", str(photos), "--out-dir", str(tmp_path / "one"), *MODEL]) == 0
    for record in records:
        assert Path(record["output"]).read_bytes() == (tmp_path / "one" / Path(record["output"]).name).read_bytes()


def test_a_run_killed_for_real_loses_nothing_and_repeats_nothing(tmp_path):
    """SIGKILL a batch while it works, start it again: every photo ends up done once, and what the killed
    run recorded is not done again."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(40):
        Image.fromarray(smooth_image(192, 256, seed=i)).save(photos / f"p{i:02d}.png")
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "gencodec", "compress", str(photos), "--out-dir", str(out),
                             *MODEL], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = out / "manifest.jsonl.part-0"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if part.exists() and part.read_text().count("\n") >= 3:
            proc.kill()
            break
        time.sleep(0.01)
    assert proc.wait() == -9, "the batch ended before it could be killed"
    killed = [json.loads(line) for line in part.read_text().splitlines(keepends=True) if line.endswith("\n")]
    assert 3 <= len(killed) < 40
    kept = {r["output"]: Path(r["output"]).stat().st_mtime_ns for r in killed}
    assert main(["compress", str(photos), "--out-dir", str(out), *MODEL]) == 0
    records = _records(out)
    assert sorted(r["input"] for r in records) == sorted(str(p) for p in photos.iterdir())
    assert all(Path(output).stat().st_mtime_ns == mtime for output, mtime in kept.items())
    assert not list(out.glob(".*.tmp")) and len(list(out.glob("*.gcz"))) == 40


def test_webdataset_shards_become_shards(capsys, tmp_path, photos):
    """A shard's images become .gcz members of a shard of the same name (byte-identical to compressing each
    image alone), its other members pass through, and decompressing that shard gives .png members."""
    shards = tmp_path / "shards"
    shards.mkdir()
    with tarfile.open(shards / "s-000.tar", "w") as tar:
        for name in ("p0.png", "p1.png"):
            tar.add(photos / name, arcname=f"{name[:2]}.png")
            label = json.dumps({"label": name}).encode()
            info = tarfile.TarInfo(f"{name[:2]}.json")
            info.size = len(label)
            tar.addfile(info, io.BytesIO(label))
    out = tmp_path / "codes"
    code, err = _run(capsys, "compress", shards, "--out-dir", out, "--level", "2", *MODEL)
    assert code == 0 and "2 done, 0 failed" in err
    with tarfile.open(out / "s-000.tar") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    assert sorted(members) == ["p0.gcz", "p0.json", "p1.gcz", "p1.json"]
    for name in ("p0", "p1"):
        single = tmp_path / "single.gcz"
        _run(capsys, "compress", photos / f"{name}.png", "-o", single, "--level", "2", "--force", *MODEL)
        assert members[f"{name}.gcz"] == single.read_bytes()
    records = _records(out)
    assert [r["input"] for r in records][-1] == str(shards / "s-000.tar") and records[-1]["members"] == 4
    decoded = tmp_path / "decoded"
    assert _run(capsys, "decompress", out / "s-000.tar", "--out-dir", decoded, *MODEL)[0] == 0
    with tarfile.open(decoded / "s-000.tar") as tar:
        assert sorted(m.name for m in tar) == ["p0.json", "p0.png", "p1.json", "p1.png"]
        assert Image.open(io.BytesIO(tar.extractfile("p0.png").read())).size == (64, 48)


def test_decompressing_in_batches_keeps_every_image_within_a_level(capsys, tmp_path, photos):
    codes = tmp_path / "codes"
    _run(capsys, "compress", photos, "--out-dir", codes, *MODEL)
    one, batched = tmp_path / "one", tmp_path / "batched"
    assert _run(capsys, "decompress", codes, "--out-dir", one, *MODEL)[0] == 0
    assert _run(capsys, "decompress", codes, "--out-dir", batched, "--batch-size", "3", *MODEL)[0] == 0
    for image in sorted(one.rglob("*.png")):
        a = np.asarray(Image.open(image)).astype(int)
        b = np.asarray(Image.open(batched / image.relative_to(one))).astype(int)
        assert a.shape == b.shape and np.abs(a - b).max() <= 4, image.name
