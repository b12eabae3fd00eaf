"""`gencodec eval`: records, resume, refusal to mix runs, and the CLI's outputs."""

from __future__ import annotations

import json

import pytest

from gencodec.cli import main
from gencodec.errors import GencodecError
from gencodec.evaluation.evaluate import RECORDS, EvalSettings, Measurer, _EarlierBaselines, run_eval
from gencodec.imageio import load_image, save_image

from .conftest import smooth_image


@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (h, w) in enumerate([(64, 96), (80, 64)]):
        save_image(smooth_image(h, w, seed=10 + i), folder / f"p{i}.png")
    return folder


class CountingMeasurer(Measurer):
    """Counts the images it measures, to see which items a resumed run redoes."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __call__(self, decoded, original):
        self.calls += 1
        return super().__call__(decoded, original)


SETTINGS = dict(levels=[0, 2], realism=[0.0, 1.0], steps=1, baselines=["jpeg", "webp"])


def test_eval_records_every_item_and_matches_bytes(generative_codec, photos, tmp_path):
    out = tmp_path / "eval"
    results = run_eval(generative_codec, photos, out, EvalSettings(**SETTINGS), progress=False, log=lambda m: None)
    records = results["records"]
    ours = [r for r in records if r["codec"] == "gencodec"]
    classical = [r for r in records if r["codec"] != "gencodec"]
    assert len(ours) == 2 * 2 * 2 and len(classical) == 2 * 2 * 2
    for r in ours:
        assert (out / r["file"]).is_file()
        assert r["bytes"] == (out / r["file"]).with_name(f"gencodec_L{r['level']}.gcz").stat().st_size
        assert r["bpp"] == pytest.approx(8 * r["bytes"] / (r["width"] * r["height"]))
    for r in classical:
        target = next(o["bytes"] for o in ours if o["image"] == r["image"] and o["level"] == r["level"])
        assert r["target_bytes"] == target
        if r.get("skipped"):
            assert r["bytes"] is None
        else:
            assert r["bytes"] <= target and (out / r["file"]).is_file()
            # The same search ranked by PSNR: a file that fits, at least as good by PSNR as the one kept.
            assert r["by_psnr"]["bytes"] <= target and r["by_psnr"]["psnr"] >= r["psnr"] - 1e-9
    for r in [o for o in records if not o.get("skipped")]:
        assert len(r["colour_bias"]) == 3 and r["abs_colour_bias"] == pytest.approx(
            sum(abs(v) for v in r["colour_bias"]) / 3)
        assert r["thumb_psnr"] >= r["psnr"] - 0.5  # area averaging removes error, so it rarely costs
        assert r["detail_smooth"] > 0 and r["detail_busy"] > 0
    assert json.loads((out / "results.json").read_text())["records"] == records
    table = (out / "results.csv").read_text()
    assert table.count("\n") == len(records) + 1 and "thumb_psnr" in table and "psnr_by_psnr" in table
    assert "detail_smooth" in table
    assert any("metadata" in n or "ICC" in n for n in results["notes"])


def test_eval_resumes_without_redoing_finished_items(generative_codec, photos, tmp_path):
    out = tmp_path / "eval"
    first = CountingMeasurer()
    run_eval(generative_codec, photos, out, EvalSettings(**SETTINGS), first, progress=False, log=lambda m: None)
    lines = (out / RECORDS).read_text().splitlines()
    # A kill mid-run: drop the last two records and tear the line before them.
    (out / RECORDS).write_text("\n".join(lines[:-3] + [lines[-3][:10]]) + "\n")
    again = CountingMeasurer()
    results = run_eval(generative_codec, photos, out, EvalSettings(**SETTINGS), again, progress=False,
                       log=lambda m: None)
    redone = again.calls
    assert 1 <= redone <= 3 < first.calls
    assert len(results["records"]) == len(lines)
    done = CountingMeasurer()
    run_eval(generative_codec, photos, out, EvalSettings(**SETTINGS), done, progress=False, log=lambda m: None)
    assert done.calls == 0


def test_eval_refuses_to_mix_settings(generative_codec, photos, tmp_path):
    out = tmp_path / "eval"
    quick = dict(SETTINGS, levels=[0], baselines=[])
    run_eval(generative_codec, photos, out, EvalSettings(**quick), progress=False, log=lambda m: None)
    with pytest.raises(GencodecError, match="another steps"):
        run_eval(generative_codec, photos, out, EvalSettings(**dict(quick, steps=2)), progress=False,
                 log=lambda m: None)


def test_eval_rejects_bad_levels_and_codecs(generative_codec, photos, tmp_path):
    with pytest.raises(GencodecError, match="out of range"):
        run_eval(generative_codec, photos, tmp_path / "a", EvalSettings(levels=[99]), progress=False)
    with pytest.raises(GencodecError, match="not available"):
        run_eval(generative_codec, photos, tmp_path / "b", EvalSettings(levels=[0], baselines=["bpg9"]),
                 progress=False)


def test_eval_cli_writes_table_plots_and_report(generative_codec, photos, tmp_path, capsys, monkeypatch):
    from gencodec.training.export import export_model
    monkeypatch.delenv("GENCODEC_LPIPS_WEIGHTS", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # so that the (failing) download is tried
    monkeypatch.setattr("gencodec.evaluation.perceptual.SafeLPIPS", _no_download)
    model = tmp_path / "model"
    export_model(generative_codec.model, model, trained_steps=0)
    out = tmp_path / "eval"
    argv = ["eval", str(photos), "--model", str(model), "--out", str(out), "--levels", "0",
            "--steps", "1", "--baselines", "jpeg", "--no-progress"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "gencodec" in captured.out and "jpeg" in captured.out
    assert "LPIPS skipped" in captured.err and "could not be downloaded" in captured.err
    assert (out / "report.html").is_file() and (out / "plots" / "rd_psnr.png").is_file()
    assert (out / "plots" / "rd_psnr.svg").is_file()
    assert main(argv) == 0  # resumed: nothing left to do, same outputs
    assert main(argv + ["--restart"]) == 0 and (out / "report.html").is_file()  # an eval's folder may go


def test_eval_restart_deletes_only_a_folder_an_eval_made(tmp_path, capsys):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    (precious / "run.json").write_text("{}")  # a run.json that no eval wrote
    photos = tmp_path / "photos"
    photos.mkdir()
    save_image(smooth_image(64, 64, seed=1), photos / "p.png")
    for out in (precious, precious / "thesis.tex"):
        assert main(["eval", str(photos), "--model", "untrained", "--out", str(out), "--restart",
                     "--baselines", "none", "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("not one; give another --out" in err or "is a file" in err), err
    assert (precious / "thesis.tex").read_text() == "years of work"


def _no_download(*args, **kwargs):
    raise RuntimeError("no network")


def test_eval_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing"), "--model", "untrained"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a folder" in err
    assert main(["eval", str(tmp_path), "--model", "untrained", "--lpips-weights", str(tmp_path / "none.pth"),
                 "--no-progress"]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    photos = tmp_path / "photos"
    photos.mkdir()
    save_image(smooth_image(64, 64, seed=1), photos / "p.png")
    assert main(["eval", str(photos), "--model", "untrained", "--levels", "0", "--baselines", "none",
                 "--reuse-baselines", str(tmp_path / "nowhere"), "--out", str(tmp_path / "e"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if not line.startswith("warning:")]
    assert len(errors) == 1 and "no eval records" in errors[0] and "Traceback" not in err


def test_eval_takes_classical_results_from_an_earlier_run_only_where_they_apply(generative_codec, photos,
                                                                                 tmp_path):
    first = CountingMeasurer()
    earlier = run_eval(generative_codec, photos, tmp_path / "first", EvalSettings(**SETTINGS), first,
                       progress=False, log=lambda m: None)
    classical = [r for r in earlier["records"] if r["codec"] != "gencodec"]
    measured = [r for r in classical if not r.get("skipped")]
    assert len(measured) >= 2, "the test needs two classical files that fit"
    # One earlier record no longer applies: its target size is not this run's.
    stale = measured[0]
    lines = [json.loads(line) for line in (tmp_path / "first" / RECORDS).read_text().splitlines()]
    for record in lines:
        if all(record.get(k) == stale[k] for k in ("codec", "image", "level")):
            record["target_bytes"] += 1
        record.pop("detail_smooth", None), record.pop("detail_busy", None)  # an eval from before that measure
    (tmp_path / "first" / RECORDS).write_text("".join(json.dumps(r) + "\n" for r in lines))

    again = CountingMeasurer()
    results = run_eval(generative_codec, photos, tmp_path / "second", EvalSettings(**SETTINGS), again,
                       progress=False, log=lambda m: None, baselines_from=tmp_path / "first")
    ours = [r for r in results["records"] if r["codec"] == "gencodec"]
    assert again.calls == len(ours) + 1          # our decodes, and only the stale classical item
    by_key = {(r["codec"], r["image"], r["level"]): r for r in results["records"]}
    for r in classical:
        taken = by_key[(r["codec"], r["image"], r["level"])]
        assert taken["target_bytes"] == r["target_bytes"] and taken.get("bytes") == r.get("bytes")
        if not r.get("skipped"):
            assert (tmp_path / "second" / taken["file"]).read_bytes() == (tmp_path / "first" / r["file"]).read_bytes()
            # Measures added since the earlier run are measured on its kept picture.
            assert (taken["detail_smooth"], taken["detail_busy"]) == pytest.approx((r["detail_smooth"],
                                                                                     r["detail_busy"]))

    # Records measured with other networks (here: without LPIPS, now with it) are not mixed in.
    lpips_now = Measurer(lpips_net=object())
    fresh = measured[1]
    photo = load_image(tmp_path / "first" / "originals" / f"{fresh['image']}.png")
    take = _EarlierBaselines(tmp_path / "first", Measurer()).take
    assert take(fresh["codec"], fresh["image"], photo, fresh["level"], fresh["target_bytes"], tmp_path / "x")
    take = _EarlierBaselines(tmp_path / "first", lpips_now).take
    assert take(fresh["codec"], fresh["image"], photo, fresh["level"], fresh["target_bytes"], tmp_path / "x") is None

    with pytest.raises(GencodecError, match="no eval records"):
        run_eval(generative_codec, photos, tmp_path / "third", EvalSettings(**SETTINGS), progress=False,
                 log=lambda m: None, baselines_from=tmp_path / "nowhere")
