"""`gencodec demo` and `gencodec bench` produce their tables and files."""

from __future__ import annotations

from PIL import Image

from gencodec.bench import run_bench
from gencodec.cli import main
from gencodec.demo import run_demo

from .conftest import smooth_image


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


def test_demo_without_a_shipped_model_fits_one_and_says_so(tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray(smooth_image(160, 160)).save(photo)
    assert main(["demo", str(photo), "--fit-seconds", "1", "--levels", "0", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "No trained model ships" in err and "on the spot" in err
    assert (tmp_path / "o" / "p_level0.png").exists()
