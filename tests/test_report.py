"""gencodec.evaluation.report and the demos that draw from eval results, on a synthetic eval folder."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image

from gencodec.errors import GencodecError
from gencodec.evaluation.report import (format_table, load_results, main, plot_rate_quality, summary_table,
                             write_html_report)

from .conftest import ROOT, TINY_DECODER, smooth_image

# One photo larger than a crop, one smaller, with a name that needs escaping in HTML and in URLs.
IMAGES = {"big": (270, 300), "b&<x> #1": (48, 64)}
NOTE = "LPIPS by <AlexNet> & friends"


def _save(folder: Path, relative: str, height: int, width: int, seed: int) -> str:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(smooth_image(height, width, seed=seed)).save(path)
    return relative


def _record(name, codec, level, realism, nbytes, height, width, **metrics):
    return {"image": name, "width": width, "height": height, "codec": codec, "level": level,
            "realism": realism, "steps": None, "bytes": nbytes, "bpp": 8 * nbytes / (width * height),
            "psnr": None, "ms_ssim": None, "lpips": None, "dists": None, "encode_s": 0.1, "decode_s": 0.1,
            **metrics}


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory) -> Path:
    """An eval folder: 2 photos, gencodec at levels 0 and 1 x realism 0 and 1, webp and jpeg matched.

    webp is skipped on the small photo at level 0. No DISTS anywhere; FID/KID for one group only.
    """
    folder = tmp_path_factory.mktemp("eval")
    records, originals = [], {}
    for i, (name, (height, width)) in enumerate(IMAGES.items()):
        originals[name] = _save(folder, f"originals/{name}.png", height, width, seed=i)
        for level in (0, 1):
            nbytes = 100 * (level + 1) + 10 * i
            for realism in (0.0, 1.0):
                r = _record(name, "gencodec", level, realism, nbytes, height, width,
                            psnr=20 + level - realism + i, ms_ssim=0.8 + 0.05 * level, lpips=0.5 - 0.1 * level
                            - 0.2 * realism + 0.01 * i)
                r["file"] = _save(folder, f"recon/{name}/gencodec_L{level}_r{realism:g}.png", height, width, 10 + i)
                records.append(r)
            for codec, lpips in (("jpeg", 0.7), ("webp", 0.6 + 0.2 * i)):
                r = _record(name, codec, level, None, nbytes - 5, height, width, psnr=19 + level,
                            ms_ssim=0.7, lpips=lpips, target_bytes=nbytes, quality=10, scale=1)
                if codec == "webp" and i == 1 and level == 0:
                    r.update(bytes=None, bpp=None, psnr=None, ms_ssim=None, lpips=None,
                             skipped=f"no setting fits {nbytes} bytes")
                else:
                    r["file"] = _save(folder, f"recon/{name}/{codec}_L{level}.png", height, width, 20 + i)
                records.append(r)
    results = {
        "model": {"name": "tiny <model>", "fingerprint": "abcdef0123456789", "trained_steps": 1234, "levels": 2},
        "settings": {"levels": [0, 1], "realism": [0.0, 1.0], "steps": None, "seed": 0,
                     "baselines": ["webp", "jpeg"], "fid": True, "patch_size": None, "limit": None},
        "notes": [NOTE],
        "records": records,
        "distribution": [{"codec": "gencodec", "level": 1, "realism": 1.0, "bpp": 0.01, "fid": 42.5, "kid": 0.0125,
                          "kid_std": 0.001, "patches": 10, "patch_size": 64, "images": 2}],
        "originals": originals,
    }
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def _pixels(name: str) -> int:
    height, width = IMAGES[name]
    return height * width


def test_summary_table_counts_and_means(eval_dir):
    rows = summary_table(load_results(eval_dir))
    keys = [(r["codec"], r["level"], r["realism"]) for r in rows]
    # gencodec by level then realism; then the classical codecs in eval's order (webp was given first).
    assert keys == [("gencodec", 0, 0.0), ("gencodec", 0, 1.0), ("gencodec", 1, 0.0), ("gencodec", 1, 1.0),
                    ("webp", 0, None), ("webp", 1, None), ("jpeg", 0, None), ("jpeg", 1, None)]
    by_key = dict(zip(keys, rows))
    g = by_key["gencodec", 1, 1.0]
    assert (g["images"], g["skipped"]) == (2, 0)
    assert g["bytes"] == pytest.approx(205)
    assert g["bpp"] == pytest.approx((8 * 200 / _pixels("big") + 8 * 210 / _pixels("b&<x> #1")) / 2)
    assert g["psnr"] == pytest.approx(20.5) and g["lpips"] == pytest.approx(0.205)
    assert g["dists"] is None
    assert (g["fid"], g["kid"]) == (42.5, 0.0125)
    assert by_key["gencodec", 0, 0.0]["fid"] is None
    webp = by_key["webp", 0, None]
    assert (webp["images"], webp["skipped"]) == (1, 1)
    assert webp["bytes"] == 95 and webp["lpips"] == pytest.approx(0.6)
    assert by_key["webp", 1, None]["skipped"] == 0


def test_format_table(eval_dir):
    text = format_table(summary_table(load_results(eval_dir)))
    lines = text.splitlines()
    assert len(lines) == 9 and lines[0].split()[:5] == ["codec", "level", "realism", "images", "skipped"]
    assert {line.split()[0] for line in lines[1:]} == {"gencodec", "webp", "jpeg"}
    assert "42.50" in text and " - " in text      # the FID that exists, and the DISTS that do not
    assert len({len(line) for line in lines[:2]}) == 1  # aligned columns


def test_load_results_errors(tmp_path):
    with pytest.raises(GencodecError, match="no results.json"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(GencodecError, match="cannot read"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text("[]")
    with pytest.raises(GencodecError, match="not a gencodec eval results file"):
        load_results(tmp_path / "results.json")


def test_plots_for_the_metrics_measured(eval_dir, tmp_path):
    written = plot_rate_quality(load_results(eval_dir), tmp_path)
    expected = {f"rd_{m}.{ext}" for m in ("psnr", "ms_ssim", "lpips", "fid", "kid") for ext in ("png", "svg")}
    assert {p.name for p in written} == expected
    assert {p.name for p in tmp_path.iterdir()} == expected
    assert all(p.stat().st_size > 0 for p in written)
    assert "gencodec r=1" in (tmp_path / "rd_lpips.svg").read_text()


class _Sources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        self.sources += [value for key, value in attrs if key in ("src", "href")]


def test_html_report(eval_dir):
    path = write_html_report(load_results(eval_dir), eval_dir)
    assert path == eval_dir / "report.html"
    page = path.read_text()
    parser = _Sources()
    parser.feed(page)
    sources = [unquote(s) for s in parser.sources]
    assert sources and all(not s.startswith(("/", "http:", "https:", "file:")) for s in sources)
    assert all((eval_dir / s).is_file() for s in sources)
    crops = {s for s in sources if s.startswith("crops/")}
    plots = {s for s in sources if s.startswith("plots/")}
    assert plots == {f"plots/rd_{m}.png" for m in ("psnr", "ms_ssim", "lpips", "fid", "kid")}
    # Per photo and level: the original, realism 0 and 1, and the best classical file (lowest LPIPS).
    assert "crops/recon/big/webp_L0.png" in crops and "crops/recon/big/jpeg_L0.png" not in crops
    assert "crops/recon/b&<x> #1/jpeg_L0.png" in crops      # webp was skipped there
    assert "crops/recon/b&<x> #1/gencodec_L1_r1.png" in crops
    assert len(crops) == 2 * 2 * 3 + 2
    assert Image.open(eval_dir / "crops/recon/big/gencodec_L0_r0.png").size == (256, 256)
    assert Image.open(eval_dir / "crops/originals/b&<x> #1.png").size == (64, 48)
    # Text from results.json is escaped, never markup.
    assert "<AlexNet>" not in page and "LPIPS by &lt;AlexNet&gt; &amp; friends" in page
    assert "tiny &lt;model&gt;" in page and "abcdef0123456789" in page and "1234" in page
    assert "<script" not in page


def test_report_command(eval_dir, capsys):
    assert main([str(eval_dir)]) == 0
    out = capsys.readouterr().out
    assert "gencodec" in out and "webp" in out and out.rstrip().endswith("report.html")
    assert (eval_dir / "plots" / "rd_psnr.svg").is_file()


def test_report_command_on_a_missing_folder(tmp_path):
    result = subprocess.run([sys.executable, "-m", "gencodec.evaluation.report", str(tmp_path / "nope")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "no results.json" in result.stderr


def test_rd_curves_script(eval_dir, tmp_path):
    out = tmp_path / "rd"
    # The same run twice: both lines drawn, told apart by their labels.
    result = subprocess.run([sys.executable, str(ROOT / "demos" / "rd_curves.py"), str(eval_dir),
                             str(eval_dir / "results.json"), "--out", str(out)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert (out / "rd_lpips.png").is_file() and (out / "rd_kid.svg").is_file()
    assert not (out / "rd_dists.png").exists()
    assert len(result.stdout.splitlines()) == 10


def test_rd_curves_labels_name_the_runs(eval_dir, tmp_path, capsys):
    rd = _load_script("rd_curves")
    assert rd.main([str(eval_dir), str(eval_dir), "--labels", "ours,theirs", "--out", str(tmp_path / "rd"),
                    "--at-bpp", "0.01"]) == 0
    table = capsys.readouterr().out
    assert "ours" in table and "theirs" in table
    with pytest.raises(SystemExit) as exit_info:
        rd.main([str(eval_dir), "--labels", "a,b", "--out", str(tmp_path / "rd2")])
    assert exit_info.value.code == 2 and "2 labels for 1 runs" in capsys.readouterr().err


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "demos" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reconstruction_grid(tmp_path, capsys):
    from gencodec.pretrained import untrained_model
    from gencodec.training.export import export_model
    model = untrained_model(latent_channels=32, channels=(16, 24, 32, 48), blocks=(0, 0, 1, 1),
                            attention_heads=2, hyper_channels=32, hyper_latent_channels=16, n_levels=4,
                            generative_decoder=TINY_DECODER)
    export_model(model, tmp_path / "model", trained_steps=0)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        Image.fromarray(smooth_image(40, 56, seed=i)).save(photos / f"p{i}.png")
    out = tmp_path / "grid.png"
    result = subprocess.run([sys.executable, str(ROOT / "demos" / "reconstruction_grid.py"), str(photos),
                             "--model", str(tmp_path / "model"), "--levels", "0,3", "--size", "48",
                             "--steps", "1", "--device", "cpu", "--out", str(out)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    grid = _load_script("reconstruction_grid")
    assert Image.open(out).size == grid.grid_size(rows=2, columns=3, size=48)
    assert "realism 1" in result.stdout

    # Errors are one line and exit status 1: a level the model lacks, a folder that is not there.
    assert grid.main([str(photos), "--model", str(tmp_path / "model"), "--levels", "9", "--device", "cpu",
                      "--out", str(tmp_path / "x.png")]) == 1
    assert grid.main([str(tmp_path / "none"), "--model", str(tmp_path / "model"), "--out",
                      str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "out of range" in err[0] and "no such file" in err[1]
    assert not (tmp_path / "x.png").exists()


def test_rd_curves_reads_a_run_at_matched_rates():
    """Linear in log bpp between the levels' means; outside the ladder: None."""
    rd = _load_script("rd_curves")

    def record(level, bpp, lpips):
        return {"image": "a", "codec": "gencodec", "level": level, "realism": 1.0, "bytes": 100, "bpp": bpp,
                "psnr": 20.0, "ms_ssim": 0.5, "lpips": lpips}

    results = {"model": {"name": "m"}, "records": [record(0, 0.01, 0.6), record(1, 0.04, 0.4)]}
    low, middle, high, outside = rd.at_rates(results, [0.01, 0.02, 0.04, 0.08])
    assert low == pytest.approx(0.6) and high == pytest.approx(0.4) and outside is None
    assert middle == pytest.approx(0.5)  # 0.02 is halfway between 0.01 and 0.04 in log bpp


def test_detail_crops_put_the_same_window_of_each_file_side_by_side(eval_dir, tmp_path, capsys):
    crops = _load_script("detail_crops")
    out = tmp_path / "crops.png"
    assert crops.main([str(eval_dir), "--photos", "big", "--levels", "0,1", "--window", "64", "--out", str(out)]) == 0
    with Image.open(out) as sheet:
        # original, ours at realism 0 and 1, the classical file (webp: the lower LPIPS): 4 tiles of 128 px a row.
        assert sheet.size == (4 * (128 + crops.PAD) + crops.PAD, 2 * (128 + crops.LABEL_H + crops.PAD) + crops.PAD)
    assert crops.main([str(eval_dir), "--photos", "nowhere", "--levels", "0", "--out", str(out)]) == 1
    assert capsys.readouterr().err.count("\n") == 1
