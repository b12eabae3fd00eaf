"""`gencodec demo` and `gencodec bench` produce their tables and files."""

from __future__ import annotations

import re
import sys

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
    demo = run_demo(untrained_codec, photos, tmp_path / "out", [0, 2], baselines=[], log=lambda *_: None)
    assert [(r.photo, r.level) for r in demo.rows] == [("p0", 0), ("p0", 2), ("p1", 0), ("p1", 2)]
    for r in demo.rows:
        assert r.bpp == 8 * r.bytes / (40 * 60) and r.classical is None
        for shown in r.ours.values():
            assert (tmp_path / "out" / shown.file).exists() and (tmp_path / "out" / shown.crop).exists()
    page = (tmp_path / "out" / "index.html").read_text()
    # Per row: the original and our two decodes, each shown whole and cropped; then one plot.
    assert page.count("<img") == 4 * 3 * 2 + 1


def test_demo_cli_with_a_named_model(tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray(smooth_image(32, 32)).save(photo)
    assert main(["demo", str(photo), "--model", "untrained", "--levels", "0,1", "--baselines", "webp",
                 "--out", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    assert (tmp_path / "o" / "p_level1.gcz").exists() and (tmp_path / "o" / "p_level1_webp.webp").exists()
    assert re.search(r"wrote .* in \d+ s", captured.err)
    assert main(["demo", str(photo), "--model", "untrained", "--levels", "9", "--out", str(tmp_path / "o")]) == 1
    assert "out of range" in capsys.readouterr().err


@pytest.mark.parametrize("option, message", [
    (["--baselines", "gif"], "unknown classical codec 'gif'"),
    (["--realism", "0,2"], "realism must be a number from 0 to 1, got 2"),
    (["--levels", "0", "--model", "no/such/model"], "no/such/model"),
])
def test_demo_bad_options_give_one_line(tmp_path, capsys, option, message):
    photo = tmp_path / "p.png"
    Image.fromarray(smooth_image(32, 32)).save(photo)
    assert main(["demo", str(photo), "--model", "untrained", *option, "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "o").exists()


def test_demo_help_explains_the_page(capsys):
    assert main(["demo", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "index.html" in text and "at or under our file's bytes" in text and "--baselines" in text


def test_bench_table(untrained_codec):
    lines = []
    rows = run_bench(untrained_codec, [(64, 48)], [0, 1], repeats=2, log=lines.append)
    assert [r["level"] for r in rows] == [0, 1]
    assert all(r["compress_s"] > 0 and r["decompress_s"] > 0 for r in rows)
    assert "compress s" in lines[1]


def test_bench_cli_times_the_models_default_steps(untrained_codec, capsys):
    assert main(["bench", "--model", "untrained", "--device", "cpu", "--sizes", "32x32", "--levels", "0",
                 "--repeats", "1"]) == 0
    row = [line.split() for line in capsys.readouterr().out.splitlines() if line.split()[:1] == ["32x32"]][0]
    assert row[:3] == ["32x32", "0", str(untrained_codec.model.config.diffusion["steps"])]


def test_demo_without_scikit_image_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    assert main(["demo", "--model", "untrained", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gencodec: error: 'gencodec demo' needs the optional package")
    assert "'skimage'" in err and "pip install 'gencodec[eval]'" in err


@pytest.mark.skipif(not LPIPS_WEIGHTS.exists(), reason="LPIPS weights (../shared/weights) not present")
def test_demo_measures_lpips_when_weights_are_given(untrained_codec, tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray(smooth_image(64, 64)).save(photo)
    assert main(["demo", str(photo), "--model", "untrained", "--levels", "0", "--baselines", "webp",
                 "--out", str(tmp_path / "o"), "--lpips-weights", str(LPIPS_WEIGHTS)]) == 0
    captured = capsys.readouterr()
    row = [line for line in captured.err.splitlines() + captured.out.splitlines() if line.startswith("p ")][0]
    assert 0 < float(row.split()[6]) <= 1.5   # photo level bytes bpp PSNR thumb LPIPS ...
    assert "LPIPS" in (tmp_path / "o" / "index.html").read_text()
    assert (tmp_path / "o" / "rd_lpips.png").exists()


def test_demo_offline_without_lpips_weights_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("GENCODEC_LPIPS_WEIGHTS", raising=False)
    photo = tmp_path / "p.png"
    Image.fromarray(smooth_image(48, 48)).save(photo)
    assert main(["demo", str(photo), "--model", "untrained", "--levels", "0", "--baselines", "none",
                 "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "LPIPS skipped: no AlexNet weights file" in err and "classical codecs: none" in err


def test_cold_start_table_times_each_step_in_fresh_processes(untrained_codec, monkeypatch):
    from gencodec.evaluation import cold_start

    ran = []

    def fake_seconds(command):  # what a fresh process would run, timed by its position
        ran.append(command)
        return float(len(ran))

    monkeypatch.setattr(cold_start, "_seconds", fake_seconds)
    lines = []
    rows = cold_start.run_cold_start(untrained_codec, "untrained", repeats=3, size=(64, 48), log=lines.append)
    assert [r["step"] for r in rows] == ["python", "import torch", "import gencodec", "gencodec.load()",
                                         "gencodec decompress"]
    assert len(ran) == 15 and rows[0]["median_s"] == 6.0 and rows[-1]["max_s"] == 15.0  # interleaved rounds
    decompress = ran[4]
    assert decompress[1:4] == ["-m", "gencodec", "decompress"] and "untrained" in decompress
    assert "gencodec decompress" in lines[-1]
