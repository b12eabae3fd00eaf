"""`gencodec report DIR DIR ... --out OUT`: eval folders split across jobs, merged into one (merge_results).

The eval folders are written by hand in results.json's schema (as gencodec.evaluation.evaluate writes it),
with small PNGs, so that nothing is encoded or measured here.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image

from gencodec.cli import main
from gencodec.errors import GencodecError
from gencodec.evaluation.merge import FID_NOTE, MERGED_FROM, merge_results

from .conftest import smooth_image

#: photo -> (height, width, seed of its pixels)
PHOTOS = {"a": (24, 32, 1), "b": (32, 24, 2), "c": (16, 16, 3)}
FINGERPRINT = "0123456789abcdef"
NOTES = ["classical sizes count coded bytes only", "gencodec bytes are whole .gcz files",
         "DISTS skipped: no VGG16 weights (--vgg16-weights or GENCODEC_VGG16_WEIGHTS)"]


def _png(folder: Path, relative: str, height: int, width: int, seed: int) -> str:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(smooth_image(height, width, seed=seed)).save(path)
    return relative


def _measures(name: str, level: int, shift: float, lpips: bool = True, psnr_only: bool = False) -> dict:
    """Made-up but deterministic numbers: the same item gets the same ones in every folder.

    psnr_only: the other metrics are None (as where they were not measured), so a report draws one plot.
    """
    base = sum(map(ord, name)) % 7 + level + shift
    measures = {"psnr": 20.0 + base, "thumb_psnr": 25.0 + base, "colour_bias": [0.5, -0.25, 0.125],
                "abs_colour_bias": 0.875 / 3, "mesh": 0.5, "ms_ssim": 0.8, "lpips": 0.5 - 0.01 * base,
                "dists": None}
    if psnr_only:
        measures = {k: (v if k == "psnr" else None) for k, v in measures.items()}
    if not lpips:
        measures["lpips"] = None
    return measures


def make_eval(folder: Path, photos=("a", "b"), levels=(0, 1), realism=(0.0, 1.0), baselines=("jpeg",),
              fingerprint=FINGERPRINT, steps=None, lpips=True, fid=False, timing=0.1, shift=0.0,
              pixels_seed=0, psnr_only=False) -> Path:
    """An eval folder as `gencodec eval` leaves it: originals/, recon/, results.json and results.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    records, originals = [], {}
    for name in photos:
        height, width, seed = PHOTOS[name]
        originals[name] = _png(folder, f"originals/{name}.png", height, width, seed + pixels_seed)
        common = {"image": name, "width": width, "height": height}
        for level in levels:
            nbytes = 40 + 20 * level
            (folder / "recon" / name).mkdir(parents=True, exist_ok=True)
            (folder / "recon" / name / f"gencodec_L{level}.gcz").write_bytes(bytes([level]) * nbytes)
            for r in realism:
                record = {**common, "codec": "gencodec", "level": level, "realism": r, "steps": steps,
                          "bytes": nbytes, "bpp": 8 * nbytes / (width * height),
                          **_measures(name, level, shift - r, lpips, psnr_only), "encode_s": timing, "decode_s": timing,
                          "file": _png(folder, f"recon/{name}/gencodec_L{level}_r{r:g}.png", height, width,
                                       seed + 10 * level)}
                records.append(record)
            for codec in baselines:
                measures = _measures(name, level, shift - 2, lpips, psnr_only)
                record = {**common, "codec": codec, "level": level, "realism": None, "steps": None,
                          "target_bytes": nbytes, "quality": 10, "scale": 2, "bytes": nbytes - 3,
                          "bpp": 8 * (nbytes - 3) / (width * height), **measures,
                          "by_psnr": {"quality": 5, "scale": 1, "bytes": nbytes - 1, "psnr": measures["psnr"] + 1},
                          "encode_s": timing, "decode_s": timing,
                          "file": _png(folder, f"recon/{name}/{codec}_L{level}.png", height, width, seed + 5)}
                records.append(record)
    notes = NOTES + ([] if lpips else ["LPIPS skipped: no AlexNet weights"])
    notes += [] if fid else ["FID/KID not computed (run with --fid)"]
    distribution = [{"codec": "gencodec", "level": levels[0], "realism": realism[0], "bpp": 0.1, "fid": 50.0,
                     "kid": 0.01, "kid_std": 0.001, "patches": 8, "patch_size": 64,
                     "images": len(photos)}] if fid else []
    results = {
        "model": {"name": "tiny", "fingerprint": fingerprint, "trained_steps": 10, "levels": 8,
                  "encoder_search": 0},
        "settings": {"levels": list(levels), "realism": list(realism), "steps": steps, "seed": 0,
                     "baselines": list(baselines), "fid": fid, "patch_size": None, "limit": None},
        "notes": notes,
        "records": records,
        "distribution": distribution,
        "originals": originals,
    }
    (folder / "results.json").write_text(json.dumps(results, indent=1))
    (folder / "results.csv").write_text("image\n")
    return folder


def _keys(results: dict) -> list[tuple]:
    return sorted((r["codec"], r["image"], r["level"], r["realism"] if r["realism"] is not None else -1)
                  for r in results["records"])


class _Sources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        self.sources += [value for key, value in attrs if key == "src"]


def test_two_photo_halves_merge_into_one_report(tmp_path, capsys):
    e1 = make_eval(tmp_path / "e1", photos=("a",), psnr_only=True)
    e2 = make_eval(tmp_path / "e2", photos=("b",), timing=0.3, psnr_only=True)
    out = tmp_path / "all"
    assert main(["report", str(e1), str(e2), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.rstrip().endswith("report.html") and "gencodec" in captured.out
    assert "merged 2 eval folders" in captured.err

    merged = json.loads((out / "results.json").read_text())
    parts = [json.loads((e / "results.json").read_text()) for e in (e1, e2)]
    assert _keys(merged) == sorted(_keys(parts[0]) + _keys(parts[1]))
    assert merged["originals"] == {"a": "originals/a.png", "b": "originals/b.png"}
    assert merged[MERGED_FROM] == [str(e1), str(e2)]
    assert merged["settings"]["levels"] == [0, 1] and merged["settings"]["baselines"] == ["jpeg"]
    assert merged["model"]["fingerprint"] == FINGERPRINT
    # Every picture the records name is there, relative to the merged folder, with our .gcz files beside them.
    for record in merged["records"]:
        assert (out / record["file"]).read_bytes() == (tmp_path / ("e1" if record["image"] == "a" else "e2")
                                                       / record["file"]).read_bytes()
    assert (out / "recon" / "b" / "gencodec_L1.gcz").is_file()
    assert (out / "results.csv").read_text().count("\n") == len(merged["records"]) + 1
    # The report shows both halves' pictures, all from inside the merged folder.
    parser = _Sources()
    parser.feed((out / "report.html").read_text())
    sources = [unquote(s) for s in parser.sources]
    assert all((out / s).is_file() for s in sources)
    assert {"crops/originals/a.png", "crops/originals/b.png", "crops/recon/b/gencodec_L1_r1.png"} <= set(sources)
    assert (out / "plots" / "rd_psnr.png").is_file()
    # The parts are as they were.
    assert not (e1 / "report.html").exists() and json.loads((e1 / "results.json").read_text()) == parts[0]


def test_level_splits_union_their_levels_and_codecs(tmp_path):
    e1 = make_eval(tmp_path / "e1", photos=("a", "b"), levels=(1, 2), baselines=("webp", "jpeg"))
    e2 = make_eval(tmp_path / "e2", photos=("a",), levels=(5,), baselines=("avif",))
    merged = merge_results([e1, e2], tmp_path / "all")
    assert merged["settings"]["levels"] == [1, 2, 5]
    assert merged["settings"]["baselines"] == ["webp", "jpeg", "avif"]  # eval's order, then the new ones
    assert len(merged["records"]) == 2 * 2 * 4 + 1 * 3
    assert {r["level"] for r in merged["records"] if r["image"] == "a"} == {1, 2, 5}
    assert json.loads((tmp_path / "all" / "results.json").read_text()) == merged


def test_an_item_in_two_folders_with_the_same_numbers_is_kept_once(tmp_path):
    e1 = make_eval(tmp_path / "e1", photos=("a", "b"), levels=(0,))
    e2 = make_eval(tmp_path / "e2", photos=("b", "c"), levels=(0,), timing=9.0)  # timings differ: no matter
    merged = merge_results([e1, e2], tmp_path / "all")
    assert len(merged["records"]) == 3 * 3 and len(set(_keys(merged))) == 3 * 3
    assert sorted(merged["originals"]) == ["a", "b", "c"]
    b = [r for r in merged["records"] if r["image"] == "b"]
    assert {r["encode_s"] for r in b} == {0.1}  # the first folder's record


def test_an_item_measured_differently_in_two_folders_is_refused(tmp_path):
    e1 = make_eval(tmp_path / "e1", photos=("a", "b"), levels=(0,))
    e2 = make_eval(tmp_path / "e2", photos=("b",), levels=(0,), shift=0.5)
    with pytest.raises(GencodecError, match="disagree on lpips") as info:
        merge_results([e1, e2], tmp_path / "all")
    message = str(info.value)
    assert str(e1) in message and str(e2) in message and "'b'" in message and "\n" not in message
    assert not (tmp_path / "all").exists()


def test_one_photo_name_for_two_photos_is_refused(tmp_path):
    e1 = make_eval(tmp_path / "e1", photos=("a",), levels=(0,))
    e2 = make_eval(tmp_path / "e2", photos=("a",), levels=(1,), pixels_seed=7)
    with pytest.raises(GencodecError, match="both have a photo 'a', and they differ") as info:
        merge_results([e1, e2], tmp_path / "all")
    assert str(e2) in str(info.value)


@pytest.mark.parametrize("change, words", [
    (dict(fingerprint="fedcba9876543210"), "another model"),
    (dict(realism=(0.0,)), "realisms"),
    (dict(steps=4), "steps"),
    (dict(lpips=False), "without LPIPS"),
])
def test_parts_of_different_experiments_are_refused(tmp_path, change, words):
    e1 = make_eval(tmp_path / "e1", photos=("a",))
    e2 = make_eval(tmp_path / "e2", photos=("b",), **change)
    with pytest.raises(GencodecError, match=words) as info:
        merge_results([e1, e2], tmp_path / "all")
    assert str(e2) in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "all").exists()


def test_fid_is_left_out_with_a_note(tmp_path):
    e1 = make_eval(tmp_path / "e1", photos=("a",), fid=True)
    e2 = make_eval(tmp_path / "e2", photos=("b",), fid=True)
    merged = merge_results([e1, e2], tmp_path / "all")
    assert merged["distribution"] == [] and merged["settings"]["fid"] is False
    assert [n for n in merged["notes"] if n.startswith("FID")] == [FID_NOTE]
    assert "cannot be merged" in FID_NOTE
    # Without FID in any part there is nothing to leave out, and no such note.
    plain = merge_results([make_eval(tmp_path / "p1", photos=("a",)), make_eval(tmp_path / "p2", photos=("b",))],
                          tmp_path / "plain")
    assert FID_NOTE not in plain["notes"] and "FID/KID not computed (run with --fid)" in plain["notes"]


def test_out_must_not_be_an_input(tmp_path):
    e1 = make_eval(tmp_path / "e1", photos=("a",))
    e2 = make_eval(tmp_path / "e2", photos=("b",))
    before = (e2 / "results.json").read_text()
    with pytest.raises(GencodecError, match="is one of the folders to merge"):
        merge_results([e1, e2], e2)
    with pytest.raises(GencodecError, match="holds"):
        merge_results([e1, e2], tmp_path)  # replacing it would delete the inputs
    assert (e2 / "results.json").read_text() == before


def test_out_is_never_an_arbitrary_folder_or_an_evals_own(tmp_path):
    e1 = make_eval(tmp_path / "e1", photos=("a",))
    e2 = make_eval(tmp_path / "e2", photos=("b",))
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(GencodecError, match="not an eval folder"):
        merge_results([e1, e2], precious)
    assert (precious / "thesis.tex").read_text() == "years of work"
    other = make_eval(tmp_path / "other", photos=("c",))
    with pytest.raises(GencodecError, match="run's own results"):
        merge_results([e1, e2], other)
    assert MERGED_FROM not in json.loads((other / "results.json").read_text())
    # An empty folder is used, and an earlier merge is replaced whole.
    out = tmp_path / "empty"
    out.mkdir()
    merge_results([e1], out)
    (out / "stale.txt").write_text("from before")
    merged = merge_results([e1, e2], out)
    assert not (out / "stale.txt").exists() and sorted(merged["originals"]) == ["a", "b"]


def test_cli_several_folders_need_out(tmp_path, capsys):
    e1 = make_eval(tmp_path / "e1", photos=("a",))
    e2 = make_eval(tmp_path / "e2", photos=("b",))
    assert main(["report", str(e1), str(e2)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err.count("\n") == 1 and "--out" in captured.err
    assert not (e1 / "report.html").exists() and not (e2 / "report.html").exists()
    # A merge that is refused is one line too, and a missing folder is named.
    assert main(["report", str(e1), str(tmp_path / "nowhere"), "--out", str(tmp_path / "all")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere" in err and "not an eval folder" in err
    assert not (tmp_path / "all").exists()


def test_cli_one_folder_reports_in_place(tmp_path, capsys):
    e1 = make_eval(tmp_path / "e1", photos=("a",), psnr_only=True)
    before = (e1 / "results.json").read_text()
    assert main(["report", str(e1)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("report.html")
    assert (e1 / "report.html").is_file() and (e1 / "results.json").read_text() == before
