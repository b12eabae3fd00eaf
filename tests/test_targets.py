"""Rate targeting: Codec.compress_to_target / sizes_by_level and `gencodec compress --bpp / --max-bytes`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gencodec.cli import main
from gencodec.codec import SEARCH_MAX_SAVING, TARGET_LOOKAHEAD, Codec, _climb, _rung_starts
from gencodec.errors import GencodecError
from gencodec.pretrained import load_model

from .conftest import smooth_image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HEIGHT, WIDTH = 64, 64
PIXELS = HEIGHT * WIDTH


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return smooth_image(HEIGHT, WIDTH, seed=3)


@pytest.fixture(scope="module")
def ladder(rich_codec, image) -> list[bytes]:
    """The file at every level, compressed the ordinary way."""
    return [rich_codec.compress(image, level=level) for level in range(rich_codec.n_levels)]


@pytest.fixture(scope="module")
def sizes(ladder) -> list[int]:
    sizes = [len(f) for f in ladder]
    assert all(a < b for a, b in zip(sizes, sizes[1:])), sizes  # the premise of these tests
    return sizes


def _expected_level(sizes: list[int], fits) -> int:
    """The highest level whose file fits, by brute force."""
    return max(level for level, s in enumerate(sizes) if fits(s))


# -- the codec --------------------------------------------------------------------------------

def test_sizes_by_level(rich_codec, image, sizes):
    assert rich_codec.sizes_by_level(image) == sizes


def test_max_bytes_at_each_level_size(rich_codec, image, ladder, sizes):
    for level, s in enumerate(sizes):
        data = rich_codec.compress_to_target(image, max_bytes=s)
        assert len(data) <= s
        chosen = rich_codec.info(data).level
        assert chosen == _expected_level(sizes, lambda n: n <= s) == level
        assert data == ladder[level]


def test_max_bytes_between_two_sizes_picks_the_lower_level(rich_codec, image, ladder, sizes):
    for level in range(len(sizes) - 1):
        target = (sizes[level] + sizes[level + 1]) // 2
        data = rich_codec.compress_to_target(image, max_bytes=target)
        assert data == ladder[level] and len(data) <= target
        data = rich_codec.compress_to_target(image, max_bytes=sizes[level + 1] - 1)
        assert data == ladder[level]
    # Above the largest file: the highest level.
    assert rich_codec.compress_to_target(image, max_bytes=10 * sizes[-1]) == ladder[-1]


def test_bpp_targets(rich_codec, image, ladder, sizes):
    for level, s in enumerate(sizes):
        bpp = 8 * s / PIXELS
        data = rich_codec.compress_to_target(image, bpp=bpp)
        assert data == ladder[level]
        assert 8 * len(data) / PIXELS <= bpp
        if level + 1 < len(sizes):
            between = (bpp + 8 * sizes[level + 1] / PIXELS) / 2
            data = rich_codec.compress_to_target(image, bpp=between)
            assert data == ladder[level] and 8 * len(data) / PIXELS <= between
    assert rich_codec.compress_to_target(image, bpp=1000) == ladder[-1]
    assert rich_codec.compress_to_target(image, bpp=np.float32(1000)) == ladder[-1]


def test_equal_sizes_give_the_highest_level(untrained_codec, image):
    """The untrained model's levels give files of one size: the target takes the highest."""
    sizes = untrained_codec.sizes_by_level(image)
    data = untrained_codec.compress_to_target(image, max_bytes=max(sizes))
    assert untrained_codec.info(data).level == _expected_level(sizes, lambda n: n <= max(sizes))
    assert data == untrained_codec.compress(image, level=untrained_codec.info(data).level)


@pytest.mark.parametrize("kind", ["max_bytes", "bpp"])
def test_too_small_a_target(rich_codec, image, sizes, kind):
    if kind == "max_bytes":
        kwargs, fragment = {"max_bytes": sizes[0] - 1}, f"cannot meet {sizes[0] - 1} bytes"
    else:
        kwargs, fragment = {"bpp": 8 * (sizes[0] - 1) / PIXELS}, "cannot meet"
    with pytest.raises(GencodecError) as info:
        rich_codec.compress_to_target(image, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert fragment in message
    assert f"smallest file at level 0 is {sizes[0]} bytes" in message


@pytest.mark.parametrize("kwargs", [
    {}, {"bpp": 0.5, "max_bytes": 1000},
    {"max_bytes": 0}, {"max_bytes": -5}, {"max_bytes": 10.5}, {"max_bytes": True}, {"max_bytes": "100"},
    {"bpp": 0}, {"bpp": -0.1}, {"bpp": float("nan")}, {"bpp": float("inf")}, {"bpp": True}, {"bpp": "0.5"},
])
def test_bad_arguments(rich_codec, image, kwargs):
    with pytest.raises(GencodecError):
        rich_codec.compress_to_target(image, **kwargs)


def _count_analysis(monkeypatch, codec) -> list[int]:
    calls = [0]
    original = codec.model.analysis.forward

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(codec.model.analysis, "forward", counted)
    return calls


@pytest.mark.parametrize("target", ["first", "middle", "last", "too small"])
def test_analysis_runs_once_per_call(monkeypatch, rich_codec, image, sizes, target):
    max_bytes = {"first": sizes[0], "middle": sizes[len(sizes) // 2], "last": sizes[-1],
                 "too small": 1}[target]
    calls = _count_analysis(monkeypatch, rich_codec)
    if target == "too small":
        with pytest.raises(GencodecError):
            rich_codec.compress_to_target(image, max_bytes=max_bytes)
    else:
        rich_codec.compress_to_target(image, max_bytes=max_bytes)
    assert calls[0] == 1
    rich_codec.sizes_by_level(image)
    assert calls[0] == 2


def test_the_search_encodes_few_levels(monkeypatch, rich_codec, image, sizes):
    encoded = []
    original = rich_codec._encode_level

    def counted(y, level, height, width, mean, search=True):
        encoded.append(level)
        return original(y, level, height, width, mean, search)

    monkeypatch.setattr(rich_codec, "_encode_level", counted)
    for s in sizes:
        encoded.clear()
        rich_codec.compress_to_target(image, max_bytes=s)
        assert len(encoded) == len(set(encoded))  # each level coded at most once
        assert len(encoded) < len(sizes)          # a search, not a sweep


@pytest.mark.parametrize("ladder_sizes, max_bytes, expected", [
    ([100, 200, 180, 300, 400, 500, 600, 700], 190, 2),   # a dip just above the boundary
    ([100, 200, 180, 300, 400, 500, 600, 700], 250, 2),
    ([150, 120, 300, 400, 500, 600, 700, 800], 130, 1),   # level 0 larger than level 1
    ([100, 200, 300, 400, 500, 490, 700, 800], 495, 5),
    ([100, 200, 300, 400, 500, 600, 700, 650], 660, 7),
    ([100, 200, 300, 400, 500, 600, 700, 800], 99, None),
])
def test_neighbours_are_confirmed_when_sizes_are_not_monotone(monkeypatch, rich_codec, image, ladder_sizes,
                                                               max_bytes, expected):
    assert len(ladder_sizes) == rich_codec.n_levels

    def fake(y, level, height, width, mean, search=True):
        return bytes([level]) * ladder_sizes[level]

    monkeypatch.setattr(rich_codec, "_encode_level", fake)
    if expected is None:
        with pytest.raises(GencodecError, match=f"smallest file at level 0 is {min(ladder_sizes)} bytes"):
            rich_codec.compress_to_target(image, max_bytes=max_bytes)
    else:
        data = rich_codec.compress_to_target(image, max_bytes=max_bytes)
        assert data == bytes([expected]) * ladder_sizes[expected]


class _SearchingLadder:
    """A stand-in for _encode_level of a model whose encoder searches: `plain` and `searched` sizes by
    level, and a log of the searched levels."""

    def __init__(self, plain, searched):
        self.plain, self.searched, self.searches = plain, searched, []

    def __call__(self, y, level, height, width, mean, search=True):
        if search:
            self.searches.append(level)
            return bytes([level, 1]) + bytes(self.searched[level] - 2)
        return bytes([level, 0]) + bytes(self.plain[level] - 2)


@pytest.mark.parametrize("plain, searched, max_bytes, expected", [
    # the searched files are smaller: level 3's searched file fits where its plain file does not
    ([100, 200, 300, 400, 500, 600, 700, 800], [80, 160, 240, 320, 400, 480, 560, 640], 330, (3, 1)),
    # the searched file at the plain answer (2) is larger than the budget: the plain file, which fits
    ([100, 200, 300, 400, 500, 600, 700, 800], [100, 200, 320, 420, 500, 600, 700, 800], 310, (2, 0)),
    # no plain file fits, but level 0's searched file does
    ([100, 200, 300, 400, 500, 600, 700, 800], [90, 190, 290, 390, 490, 590, 690, 790], 95, (0, 1)),
    # the searched files climb two levels above the plain answer
    ([100, 200, 300, 400, 500, 600, 700, 800], [50, 100, 150, 200, 250, 300, 350, 400], 300, (5, 1)),
    # the searched files dip: level 3's does not fit, level 4's does (the lookahead, as in the plain search)
    ([100, 200, 300, 400, 500, 600, 700, 800], [80, 160, 240, 400, 300, 480, 560, 640], 330, (4, 1)),
    # a level whose plain file is over twice the budget is not searched (SEARCH_MAX_SAVING), whatever it
    # would have come to
    ([100, 200, 300, 1000, 1000, 1000, 1000, 1000], [50, 100, 150, 100, 100, 100, 100, 100], 330, (2, 1)),
])
def test_the_search_runs_from_the_plain_answer(monkeypatch, rich_codec, image, plain, searched, max_bytes,
                                               expected):
    ladder = _SearchingLadder(plain, searched)
    monkeypatch.setattr(rich_codec, "_encode_level", ladder)
    monkeypatch.setattr(rich_codec, "search_steps_for", lambda height, width: 4)
    data = rich_codec.compress_to_target(image, max_bytes=max_bytes)
    assert len(data) <= max_bytes
    assert (data[0], data[1]) == expected
    assert SEARCH_MAX_SAVING == 0.5  # the rows above assume it
    # Each level searched at most once, and none beyond the lookahead above the answer.
    highest_tried = expected[0] + TARGET_LOOKAHEAD
    assert len(ladder.searches) == len(set(ladder.searches)) <= highest_tried - min(ladder.searches) + 1


def test_no_search_when_the_encoder_does_not_search_at_that_size(monkeypatch, rich_codec, image):
    ladder = _SearchingLadder([100, 200, 300, 400, 500, 600, 700, 800], [50] * 8)
    monkeypatch.setattr(rich_codec, "_encode_level", ladder)
    monkeypatch.setattr(rich_codec, "search_steps_for", lambda height, width: 0)
    data = rich_codec.compress_to_target(image, max_bytes=450)
    assert (data[0], data[1]) == (3, 0) and ladder.searches == []


@pytest.mark.parametrize("max_bytes, expected", [(118, 3), (138, 5), (142, 5), (110, 3), (105, 0), (170, 5)])
def test_the_climb_finds_a_dip_where_the_coded_picture_grows(max_bytes, expected):
    """Searched files dip where the ladder moves to a larger picture at a lower coding level (the shipped
    model's searched sizes on a 192x128 picture): climbing from level 0, the first level of each size is
    tried, however far above."""
    sizes = [106, 142, 170, 106, 130, 138, 202]
    downscales = [4, 4, 4, 2, 2, 1, 1]
    assert _rung_starts(downscales) == (3, 5)
    tried = []

    def fits(level):
        tried.append(level)
        return sizes[level] <= max_bytes

    assert _climb(fits, 0, len(sizes), TARGET_LOOKAHEAD, _rung_starts(downscales)) == expected
    assert len(tried) == len(set(tried)) < len(sizes) - 1  # each level once; a search, not a sweep


def test_a_searching_model_s_target_is_the_file_compress_makes():
    """The shipped pixel model searches: a target's file is compress()'s at the level brute force picks."""
    codec = Codec(load_model("pixel"), device="cpu")
    image = smooth_image(128, 192, seed=5)
    assert codec.search_steps_for(32, 48) > 0
    sizes = codec.sizes_by_level(image)
    for target in (sizes[1], (sizes[3] + sizes[4]) // 2, sizes[5]):
        data = codec.compress_to_target(image, max_bytes=target)
        level = codec.info(data).level
        assert len(data) <= target and level == _expected_level(sizes, lambda n: n <= target)
        assert data == codec.compress(image, level=level)


# -- the command line -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rich_model_dir(rich_codec, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rich_model")
    rich_codec.model.save_pretrained(folder)
    return folder


@pytest.fixture
def png(tmp_path, image) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)
    return path


def run(capsysbinary, *argv):
    code = main([str(a) for a in argv])
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


def _summary(err: str) -> str:
    return [line for line in err.splitlines() if not line.startswith("warning:")][-1]


def test_cli_max_bytes(capsysbinary, tmp_path, png, rich_model_dir, ladder, sizes):
    model = ["--model", rich_model_dir, "--device", "cpu"]
    for level in (0, 3, len(sizes) - 1):
        gcz = tmp_path / f"max{level}.gcz"
        code, out, err = run(capsysbinary, "compress", png, "-o", gcz, "--max-bytes", sizes[level], *model)
        assert code == 0 and out == b"", err
        assert gcz.read_bytes() == ladder[level]
        assert _summary(err) == (f"{png} -> {gcz}: {sizes[level]} bytes, {8 * sizes[level] / PIXELS:.4f} bpp, "
                                 f"level {level}, {WIDTH}x{HEIGHT}")
    gcz = tmp_path / "between.gcz"
    code, _, err = run(capsysbinary, "compress", png, "-o", gcz, "--max-bytes", sizes[3] + 1, *model)
    assert code == 0 and gcz.read_bytes() == ladder[3] and "level 3," in _summary(err)


def test_cli_bpp(capsysbinary, tmp_path, png, rich_model_dir, ladder, sizes):
    gcz = tmp_path / "bpp.gcz"
    bpp = 8 * sizes[2] / PIXELS + 1e-6
    code, out, err = run(capsysbinary, "compress", png, "-o", gcz, "--bpp", repr(bpp),
                         "--model", rich_model_dir, "--device", "cpu")
    assert code == 0 and out == b"", err
    assert gcz.read_bytes() == ladder[2]
    assert "level 2," in _summary(err)


def test_cli_stdin_stdout(capsysbinary, monkeypatch, png, rich_model_dir, ladder, sizes):
    import io
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(png.read_bytes())))
    code, out, err = run(capsysbinary, "compress", "-", "-o", "-", "--max-bytes", sizes[1],
                         "--model", rich_model_dir, "--device", "cpu")
    assert code == 0 and out == ladder[1], err


@pytest.mark.parametrize("options", [
    ["--level", "2", "--max-bytes", "3000"],
    ["--level", "2", "--bpp", "0.5"],
    ["--bpp", "0.5", "--max-bytes", "3000"],
    ["--max-bytes", "lots"],
    ["--bpp", "high"],
])
def test_cli_targets_are_exclusive_with_level(capsysbinary, tmp_path, png, options):
    gcz = tmp_path / "x.gcz"
    code, out, err = run(capsysbinary, "compress", png, "-o", gcz, *options, "--model", "untrained",
                         "--device", "cpu")
    assert code == 2 and out == b""
    assert "usage:" in err
    if "--level" in options or options[0] == "--bpp" and len(options) == 4:
        assert "not allowed with argument" in err
    assert not gcz.exists()


def _assert_one_line_error(code, out, err, *fragments):
    assert code == 1 and out == b""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gencodec: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_too_small_a_target(capsysbinary, tmp_path, png, rich_model_dir, sizes):
    gcz = tmp_path / "x.gcz"
    code, out, err = run(capsysbinary, "compress", png, "-o", gcz, "--max-bytes", sizes[0] - 1,
                         "--model", rich_model_dir, "--device", "cpu")
    _assert_one_line_error(code, out, err, f"cannot meet {sizes[0] - 1} bytes",
                           f"smallest file at level 0 is {sizes[0]} bytes")
    assert not gcz.exists() and list(tmp_path.iterdir()) == [png]

    code, out, err = run(capsysbinary, "compress", png, "-o", gcz, "--bpp", "0.001",
                         "--model", rich_model_dir, "--device", "cpu")
    _assert_one_line_error(code, out, err, "cannot meet 0.001 bpp", f"smallest file at level 0 is {sizes[0]} bytes")
    assert not gcz.exists()


@pytest.mark.parametrize("options", [["--max-bytes", "0"], ["--max-bytes", "-3"], ["--bpp", "0"],
                                     ["--bpp", "-1"], ["--bpp", "nan"], ["--bpp", "inf"]])
def test_cli_bad_targets(capsysbinary, tmp_path, png, options):
    code, out, err = run(capsysbinary, "compress", png, "-o", tmp_path / "x.gcz", *options,
                         "--model", "untrained", "--device", "cpu")
    _assert_one_line_error(code, out, err, options[0])


def test_cli_help_explains_targets(capsysbinary):
    code, out, _ = run(capsysbinary, "compress", "--help")
    text = " ".join(out.decode().split())
    assert code == 0
    assert "--bpp X" in text and "--max-bytes N" in text
    assert "highest level" in text and "fail" in text
