"""`gencodec demo`'s page: each photo beside the best classical file at or under our bytes, from disk."""

from __future__ import annotations

import re
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from gencodec.evaluation.crops import cut, most_detailed_box
from gencodec.evaluation.demo import CROP_ZOOM, default_levels, run_demo
from gencodec.evaluation.demo_page import CLASSICAL, plot_results

from .conftest import smooth_image


def _photo(folder, name="p", height=48, width=64, seed=0):
    path = folder / f"{name}.png"
    Image.fromarray(smooth_image(height, width, seed=seed)).save(path)
    return path


def _links(page: str) -> list[str]:
    return [unquote(link) for link in re.findall(r"(?:src|href)='([^']*)'", page)]


@pytest.fixture(scope="module")
def shown(untrained_codec, tmp_path_factory):
    """One photo, one level, our file at realism 0 and 1, jpeg and webp searched (jpeg cannot fit: 266 bytes)."""
    folder = tmp_path_factory.mktemp("demo")
    lines = []
    demo = run_demo(untrained_codec, [_photo(folder, "a photo #1")], folder / "out", [0],
                    baselines=["jpeg", "webp"], model_name="untrained", log=lines.append)
    return demo, folder / "out", lines


def test_the_page_shows_the_original_ours_at_each_realism_and_the_classical_winner(shown):
    demo, out, _ = shown
    (row,) = demo.rows
    assert demo.realisms == [0.0, 1.0] and sorted(row.ours) == [0.0, 1.0]
    assert row.classical is not None and row.classical.codec == "webp"
    assert row.classical.bytes <= row.bytes == (out / row.ours[0.0].coded_file).stat().st_size
    assert (out / row.classical.coded_file).stat().st_size == row.classical.bytes
    page = (out / "index.html").read_text()
    for text in ("original", "realism 0", "realism 1", f"{row.bytes} bytes",
                 f"webp (best at or under {row.bytes} bytes)", f"{row.classical.bytes} bytes"):
        assert text in page
    # No LPIPS net: captions give the fidelity measures alone.
    assert f"PSNR {row.classical.psnr:.1f} dB" in page and f"thumb {row.classical.thumb_psnr:.1f} dB" in page
    assert "colour bias R/G/B" in page and "LPIPS 0" not in page


def test_every_file_the_page_names_exists_and_nothing_comes_from_the_network(shown):
    _, out, _ = shown
    page = (out / "index.html").read_text()
    links = _links(page)
    assert "rd_psnr.png" in links and "crops/a photo #1.png" in links
    assert [link for link in links if not (out / link).is_file()] == []
    assert not re.search(r"https?:|//|@import|url\(", page)


def test_each_photo_s_crops_are_one_window_enlarged(shown):
    demo, out, _ = shown
    (photo,) = demo.photos
    left, top, right, bottom = photo.box
    (row,) = demo.rows
    crops = [photo.crop] + [s.crop for s in row.ours.values()] + [row.classical.crop]
    sizes = {Image.open(out / crop).size for crop in crops}
    assert sizes == {((right - left) * CROP_ZOOM, (bottom - top) * CROP_ZOOM)}
    original = np.asarray(Image.open(out / photo.file))[top:bottom, left:right]
    assert np.array_equal(np.asarray(Image.open(out / photo.crop))[::CROP_ZOOM, ::CROP_ZOOM], original)


def test_the_table_names_the_classical_winner(shown):
    demo, _, lines = shown
    (row,) = demo.rows
    assert "classical" in lines[0] and "PSNR r=1" in lines[0] and "thumb r=1" in lines[0]
    assert lines[1].split()[-5:-3] == ["webp", str(row.classical.bytes)]


def test_a_budget_no_classical_codec_can_meet_is_said_in_the_tile(untrained_codec, tmp_path):
    # jpeg's smallest file is ~284 bytes; our level-0 file of a small photo is ~266.
    demo = run_demo(untrained_codec, [_photo(tmp_path)], tmp_path / "out", [0], baselines=["jpeg"],
                    log=lambda *_: None)
    assert demo.rows[0].classical is None
    page = (tmp_path / "out" / "index.html").read_text()
    assert f"no classical file fits in {demo.rows[0].bytes} bytes" in page and "(tried jpeg)" in page
    assert "No classical point at level 0" in page
    assert {r["codec"] for r in plot_results(demo)["records"]} == {"gencodec"}


def test_a_model_without_generative_decoder_shows_realism_0_only(rich_codec, tmp_path):
    demo = run_demo(rich_codec, [_photo(tmp_path)], tmp_path / "out", [0], baselines=[], log=lambda *_: None)
    assert demo.realisms == [0.0] and list(demo.rows[0].ours) == [0.0]
    page = (tmp_path / "out" / "index.html").read_text()
    assert "realism 0" in page and "realism 1" not in page and "classical file" not in page


def test_the_plot_averages_classical_files_only_where_every_photo_has_one(shown):
    demo, _, _ = shown
    records = plot_results(demo)["records"]
    assert sorted((r["codec"], r["realism"]) for r in records) == [(CLASSICAL, None), ("gencodec", 0.0),
                                                                   ("gencodec", 1.0)]


def test_the_most_detailed_window_finds_the_texture():
    image = np.full((120, 160, 3), 128, np.uint8)
    image[:, :80] = 20  # a strong edge between two flat halves: variance, but no texture
    rng = np.random.default_rng(0)
    image[70:102, 110:142] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    left, top, right, bottom = most_detailed_box(image, 32)
    assert (right - left, bottom - top) == (32, 32)
    assert abs(left - 110) <= 2 and abs(top - 70) <= 2
    assert most_detailed_box(image[:20, :24], 32) == (0, 0, 24, 20)  # a photo smaller than the window


def test_a_crop_is_enlarged_by_nearest_neighbour():
    image = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    crop = np.asarray(cut(image, (1, 1, 3, 3), zoom=2))
    assert crop.shape == (4, 4, 3)
    assert np.array_equal(crop[::2, ::2], np.asarray(image)[1:3, 1:3])
    assert np.array_equal(crop[1::2, 1::2], crop[::2, ::2])


def test_default_levels_spread_over_the_ladder():
    assert default_levels(8) == [0, 4, 6]
    assert default_levels(2) == [0, 1] and default_levels(1) == [0]
