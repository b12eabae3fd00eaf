"""`gencodec demo` and `gencodec bench` produce their tables and files."""

from __future__ import annotations

import pytest
from PIL import Image

from gencodec.evaluation.bench import run_bench
from gencodec.cli import main
from gencodec.evaluation.demo import run_demo

from .conftest import SHARED, smooth_image

LPIPS_WEIGHTS = SHARED / "weights" / "alexnet_features.pth"


def test_demo_writes_files_and_page(untrained_codec, tmp_path):
    photos = []
    for i in range(2):
        photos.append(tmp_path / f"p{i}.png")
        Image.fromarray(smooth_image(40, 60, seed=i)).save(photos[-1])
    rows = run_demo(untrained_codec, photos, tmp_path / "out", [0, 2], log=lambda *_: None)
    assert len(rows) == 4
    for r in rows:
        assert (tmp_path / "out" / r["file"]).exists()
        assert r["bpp"] == 8 * r["bytes"] / (40 * 60)
    page = (tmp_path / "out" / "index.html").read_text()
    assert page.count("<img") == 6


def test_demo_cli_with_a_named_model(tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray(smooth_image(32, 32)).save(photo)
    assert main(["demo", str(photo), "--model", "untrained", "--levels", "0,1", "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "p_level1.gcz").exists()
    assert main(["demo", str(photo), "--model", "untrained", "--levels", "9", "--out", str(tmp_path / "o")]) == 1
    assert "out of range" in capsys.readouterr().err


def test_bench_table(untrained_codec):
    lines = []
    rows = run_bench(untrained_codec, [(64, 48)], [0, 1], repeats=2, log=lines.append)
    assert [r["level"] for r in rows] == [0, 1]
    assert all(r["compress_s"] > 0 and r["decompress_s"] > 0 for r in rows)
    assert "compress s" in lines[1]


@pytest.mark.skipif(not LPIPS_WEIGHTS.exists(), reason="LPIPS weights (../shared/weights) not present")
def test_demo_measures_lpips_when_weights_are_given(untrained_codec, tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray(smooth_image(64, 64)).save(photo)
    assert main(["demo", str(photo), "--model", "untrained", "--levels", "0", "--out", str(tmp_path / "o"),
                 "--lpips-weights", str(LPIPS_WEIGHTS)]) == 0
    captured = capsys.readouterr()
    row = [line for line in captured.err.splitlines() + captured.out.splitlines() if line.startswith("p ")][0]
    assert 0 < float(row.split()[5]) <= 1.5   # photo level bytes bpp PSNR LPIPS ...
    assert "LPIPS" in (tmp_path / "o" / "index.html").read_text()


def test_demo_offline_without_lpips_weights_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("GENCODEC_LPIPS_WEIGHTS", raising=False)
    photo = tmp_path / "p.png"
    Image.fromarray(smooth_image(48, 48)).save(photo)
    assert main(["demo", str(photo), "--model", "untrained", "--levels", "0", "--out", str(tmp_path / "o")]) == 0
    assert "LPIPS skipped: no AlexNet weights file" in capsys.readouterr().err
