"""Fidelity measures: thumb-PSNR, colour bias, and the per-level table against classical files."""

from __future__ import annotations

import numpy as np
import pytest

from gencodec.evaluation import fidelity, metrics
from gencodec.evaluation.report import write_html_report

from .conftest import smooth_image


def test_thumb_psnr_sees_colour_and_not_fine_texture():
    image = (40 + smooth_image(64, 96, seed=1) * 0.6).astype(np.uint8)  # kept off 0 and 255
    # Texture that averages out inside every 8x8 block: thumb-PSNR cannot see it, PSNR can.
    checker = np.indices((64, 96)).sum(0) % 2 * 2 - 1
    textured = np.clip(image.astype(int) + 12 * checker[..., None], 0, 255).astype(np.uint8)
    inside = (image > 12).all() and (image < 243).all()
    assert inside  # no clipping, so the texture is exactly zero-mean per block
    assert metrics.thumb_psnr(textured, image) == metrics.PSNR_CAP
    assert metrics.psnr(textured, image) < 27
    # A blue cast moves every block: thumb-PSNR sees it, as much as PSNR does.
    cast = image.copy()
    cast[..., 2] = np.clip(cast[..., 2].astype(int) + 9, 0, 255)
    assert metrics.thumb_psnr(cast, image) == pytest.approx(metrics.psnr(cast, image), abs=0.05)
    assert metrics.colour_bias(cast, image) == pytest.approx([0.0, 0.0, 9.0], abs=0.05)


def test_area_downsample_leaves_out_partial_blocks_and_averages_tiny_images():
    image = np.arange(20 * 13 * 3, dtype=np.uint8).reshape(20, 13, 3)
    small = metrics.area_downsample(image, 8)
    assert small.shape == (2, 1, 3)
    assert small[0, 0] == pytest.approx(image[:8, :8].reshape(-1, 3).mean(0))
    assert metrics.area_downsample(image[:5, :5], 8).shape == (1, 1, 3)


def _record(image, codec, realism, psnr, thumb, bias, lpips, by_psnr=None, nbytes=200):
    record = {"image": image, "width": 96, "height": 64, "codec": codec, "level": 0, "realism": realism,
              "bytes": nbytes, "bpp": 8 * nbytes / (96 * 64), "psnr": psnr, "thumb_psnr": thumb,
              "abs_colour_bias": bias, "colour_bias": [bias, -bias, bias], "lpips": lpips}
    if by_psnr is not None:
        record["by_psnr"] = {"psnr": by_psnr, "thumb_psnr": by_psnr + 3}
    return record


def _results(our_thumbs, our_r0_psnr=20.0, our_lpips=0.40, bias=1.0):
    records = []
    for i, thumb in enumerate(our_thumbs):
        name = f"p{i}"
        records += [_record(name, "gencodec", 0.0, our_r0_psnr, thumb + 1, bias, 0.7),
                    _record(name, "gencodec", 1.0, our_r0_psnr - 0.5, thumb, bias, our_lpips),
                    # Two codecs: the one shown is the lower LPIPS; the best by PSNR is webp's PSNR-ranked file.
                    _record(name, "jpeg", None, 19.0, 22.0, 2.0, 0.80, by_psnr=19.5, nbytes=190),
                    _record(name, "webp", None, 20.0, 24.0, 1.0, 0.60, by_psnr=20.5, nbytes=195)]
    return {"records": records}


def test_fidelity_table_compares_with_the_classical_file_shown_and_the_best_by_psnr():
    rows = fidelity.fidelity_table(_results([24.0, 23.5, 20.0, 24.5]))
    assert len(rows) == 1
    row = rows[0]
    assert row["images"] == 4 and row["bytes"] == 200
    assert row["cl_lpips"] == pytest.approx(0.60) and row["cl_thumb"] == pytest.approx(24.0)  # webp, by LPIPS
    assert row["clp_psnr"] == pytest.approx(20.5)  # webp's PSNR-ranked file beats jpeg's
    assert row["r1_thumb"] == pytest.approx(23.0)
    assert row["thumb_within"] == "3/4"  # 20.0 is more than 1 dB below 24.0
    assert row["A"] == "yes"  # 20.0 >= 20.5 - 1
    assert row["B"] == "yes"  # mean 23.0 >= 23.0, 3 of 4 within, bias 1
    assert row["C"] == "yes"  # 0.40 <= 0.60 - 0.10
    text = fidelity.format_fidelity(rows)
    assert "r1 thumb" in text and "3/4" in text


@pytest.mark.parametrize("change, failed", [
    (dict(our_r0_psnr=19.0), "A"),                 # 19.0 < 20.5 - 1
    (dict(our_thumbs=[24.0, 20.0, 20.0, 24.5]), "B"),  # only 2 of 4 within 1 dB
    (dict(bias=3.5), "B"),                         # a cast over 3 levels
    (dict(our_lpips=0.55), "C"),                   # not 0.10 below the classical 0.60
])
def test_fidelity_targets_fail_where_they_should(change, failed):
    thumbs = change.pop("our_thumbs", [24.0, 23.5, 20.0, 24.5])
    row = fidelity.fidelity_table(_results(thumbs, **change))[0]
    assert row[failed] == "NO"
    assert all(row[t] == "yes" for t in "ABC" if t != failed)


def test_fidelity_table_without_baselines_checks_nothing():
    results = {"records": [r for r in _results([24.0])["records"] if r["codec"] == "gencodec"]}
    row = fidelity.fidelity_table(results)[0]
    assert row["cl_psnr"] is None and (row["A"], row["B"], row["C"]) == ("-", "-", "-")
    assert "-" in fidelity.format_fidelity([row])


def test_html_report_shows_the_fidelity_table(tmp_path):
    results = _results([24.0, 23.0])
    results.update(model={"name": "m"}, originals={})
    page = write_html_report(results, tmp_path).read_text()
    assert "Fidelity beside the classical files" in page and "r1 thumb" in page


def _smooth_with_busy_band() -> np.ndarray:
    """A smooth gradient (a sky) with a band of strong grain across its lower third."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:96, 0:96] / 96.0
    image = np.stack([60 + 120 * xx, 90 + 60 * yy, 160 - 50 * xx], -1)
    image[64:] += rng.normal(0, 25, (32, 96, 1))
    return np.clip(image, 0, 255).round().astype(np.uint8)


def test_detail_ratios_tell_texture_drawn_on_a_sky_from_texture_lost():
    photo = _smooth_with_busy_band()
    assert metrics.detail_ratios(photo, photo) == (pytest.approx(1.0), pytest.approx(1.0))
    # Hatching drawn everywhere: the sky gets far more detail than it has; the busy band about as much.
    hatching = 8 * np.sin(np.add.outer(np.arange(96), np.arange(96)) * 2.0)[..., None]
    drawn = np.clip(photo + hatching, 0, 255).round().astype(np.uint8)
    smooth, busy = metrics.detail_ratios(drawn, photo)
    assert smooth > 10 and 0.7 < busy < 1.6
    # The picture blurred: the band loses its grain, the sky keeps what little it had.
    from PIL import Image, ImageFilter
    blurred = np.asarray(Image.fromarray(photo).filter(ImageFilter.BoxBlur(2)))
    smooth, busy = metrics.detail_ratios(blurred, photo)
    assert busy < 0.1 and 0.5 < smooth < 1.5
    with pytest.raises(Exception, match="differ in shape"):
        metrics.detail_ratios(photo[:8], photo)


def test_detail_measure_is_the_training_terms_measure():
    """The evaluation's numpy measure and the training's torch one see the same detail."""
    import torch
    from gencodec.training import losses
    photo = _smooth_with_busy_band()[:90, :85]   # partial windows are left out alike
    tensor = torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)[None]
    assert metrics.local_detail(photo) == pytest.approx(losses.local_detail(tensor, 8)[0, 0].double().numpy(),
                                                        rel=1e-3, abs=1e-9)


def test_fidelity_table_averages_the_detail_ratios_on_a_log_scale():
    results = _results([24.0, 23.0])
    ours = [r for r in results["records"] if r["codec"] == "gencodec" and r["realism"] == 1.0]
    for record, (smooth, busy) in zip(ours, [(4.0, 0.5), (1.0, 0.125)]):
        record.update(detail_smooth=smooth, detail_busy=busy)
    row = fidelity.fidelity_table(results)[0]
    assert row["r1_smooth"] == pytest.approx(2.0) and row["r1_busy"] == pytest.approx(0.25)
    assert row["cl_smooth"] is None
    assert "r1 smooth x" in fidelity.format_fidelity([row])
