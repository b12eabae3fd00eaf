"""The encoder search (gencodec.encoder_search): per photo, a code that costs less for as good a picture,
found by the encoder alone, so that files decode as before."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import gencodec
from gencodec.codec import Codec
from gencodec.encoder_search import (ENCODER_NAME, SearchSettings, read_settings, search_code, step_size,
                                     write_settings)
from gencodec.errors import GencodecError, ModelNotFoundError
from gencodec.pretrained import load_model

from .conftest import smooth_image

# The shipped pixel model's search lambdas, read from its settings so a new release needs no edit here.
LAMBDAS = tuple(json.loads((Path(gencodec.__file__).parent / "weights" / "pixel" / ENCODER_NAME).read_text())
                ["search"]["lambdas"])


@pytest.fixture(scope="module")
def pixel_model():
    """The shipped pixel model, which has search settings."""
    model = load_model("pixel")
    assert model.encoder_search is not None
    return model


@pytest.fixture(scope="module")
def photo():
    return smooth_image(128, 192, seed=3)


def _loss(codec: Codec, code, level: int, pixels: np.ndarray) -> float:
    """The search's objective with the real file's bits: bpp + lambda * 255^2 * MSE of realism 0."""
    model = codec.model
    height, width = pixels.shape[:2]
    _, bits = model.latent_codec.encode(code, level, (width, height))
    y_hat = model.latent_codec.reconstruct(code, level)
    picture = codec._decode_y_hat(y_hat, height, width, 0.0, 1, 0, "ddim").astype(np.float64)
    mse = np.mean((picture / 255 - pixels / 255) ** 2)
    return bits / (height * width) + model.encoder_search.lambdas[level] * 255 ** 2 * mse


def test_the_steps_follow_the_coded_size():
    settings = SearchSettings(LAMBDAS)
    assert settings.steps_for(768 * 512) == 2
    assert settings.steps_for(384 * 256) == 8
    assert settings.steps_for(192 * 128) == 16  # the cap
    assert settings.steps_for(2000 * 1000) == 0
    assert SearchSettings(LAMBDAS, work=0).steps_for(64 * 64) == 0


@pytest.mark.parametrize("kwargs", [dict(lambdas=()), dict(lambdas=(1e-4, -1.0)), dict(lambdas=(float("nan"),)),
                                    dict(lambdas=(1e-4,), work=-1), dict(lambdas=(1e-4,), max_steps=-2),
                                    dict(lambdas=(1e-4,), thumb_weight=-1.0),
                                    dict(lambdas=(1e-4,), thumb_weight=float("nan"))])
def test_wrong_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        SearchSettings(**kwargs)


def test_the_step_is_larger_when_there_are_few_steps():
    assert step_size(1) == step_size(2) == 0.05
    assert step_size(8) == 0.0125
    assert step_size(100) == 0.01


def test_a_folder_without_encoder_json_has_no_search(tmp_path):
    assert read_settings(tmp_path, 8) is None


@pytest.mark.parametrize("text, message", [
    ("{", "cannot read"),
    (json.dumps({"search": {}}), "cannot read"),
    (json.dumps({"search": {"lambdas": [1e-4] * 3}}), "3 search lambdas for a model of 8"),
    (json.dumps({"search": {"lambdas": [1e-4] * 8, "work": -5}}), "cannot read"),
])
def test_a_broken_encoder_json_is_refused(tmp_path, text, message):
    (tmp_path / ENCODER_NAME).write_text(text)
    with pytest.raises(ModelNotFoundError, match=message):
        read_settings(tmp_path, 8)


def test_the_thumb_weight_is_written_only_where_set(tmp_path):
    write_settings(tmp_path, SearchSettings(LAMBDAS))
    assert "thumb_weight" not in json.loads((tmp_path / ENCODER_NAME).read_text())["search"]
    assert read_settings(tmp_path, 8).thumb_weight == 0.0
    write_settings(tmp_path, SearchSettings(LAMBDAS, thumb_weight=1.5))
    assert read_settings(tmp_path, 8) == SearchSettings(LAMBDAS, thumb_weight=1.5)


def _thumb_mse(codec: Codec, code, level: int, pixels: np.ndarray) -> float:
    """The MSE of realism 0's 1/8 thumbnail against the photo's."""
    height, width = pixels.shape[:2]
    picture = codec._decode_y_hat(codec.model.latent_codec.reconstruct(code, level), height, width, 0.0, 1, 0,
                                  "ddim").astype(np.float64)
    thumb = lambda a: a.reshape(height // 8, 8, width // 8, 8, 3).mean((1, 3))
    return float(np.mean((thumb(picture) - thumb(pixels.astype(np.float64))) ** 2))


def test_a_thumb_weight_makes_the_search_keep_the_thumbnail(pixel_model, photo):
    """The same steps, with and without the thumbnail term: the weighted search's realism-0 thumbnail is
    nearer the photo's, and the codec records the setting with the files it writes."""
    codec = Codec(pixel_model, device="cpu")
    with torch.no_grad():
        y = pixel_model.encode(torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255)
    level = 4
    plain = search_code(pixel_model, y, photo, level, 8, LAMBDAS[level])
    weighted = search_code(pixel_model, y, photo, level, 8, LAMBDAS[level], thumb_weight=20.0)
    assert _thumb_mse(codec, weighted, level, photo) < _thumb_mse(codec, plain, level, photo)
    assert codec.encoder_search.get("thumb_weight", 0.0) == pixel_model.encoder_search.thumb_weight


def test_the_search_lowers_the_real_loss(pixel_model, photo):
    """Against the analysis transform's own code: the real file's bits and the real picture, per level."""
    codec = Codec(pixel_model, device="cpu")
    with torch.no_grad():
        y = pixel_model.encode(torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255)
    for level in (2, 6):
        plain = pixel_model.latent_codec.analyse(y, level)
        searched = search_code(pixel_model, y, photo, level, 8, LAMBDAS[level])
        assert torch.equal(searched.z_hat, plain.z_hat) and torch.equal(searched.indexes, plain.indexes)
        assert not torch.equal(searched.symbols, plain.symbols)
        assert _loss(codec, searched, level, photo) < _loss(codec, plain, level, photo)


def test_no_steps_is_the_analysis_transform_s_code(pixel_model, photo):
    with torch.no_grad():
        y = pixel_model.encode(torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255)
    plain = pixel_model.latent_codec.analyse(y, 4)
    unsearched = search_code(pixel_model, y, photo, 4, 0, LAMBDAS[4])
    assert torch.equal(unsearched.symbols, plain.symbols) and torch.equal(unsearched.z_hat, plain.z_hat)
    codec = Codec(pixel_model, device="cpu", search_steps=0)
    code, _, _ = codec.analyse(photo, 6)  # level 6: coding level 7 at full size
    assert torch.equal(code.symbols, pixel_model.latent_codec.analyse(y, 7).symbols)


def test_a_searched_file_decodes_with_the_same_model_and_is_smaller(pixel_model, photo):
    searching, plain = Codec(pixel_model, device="cpu"), Codec(pixel_model, device="cpu", search_steps=0)
    assert searching.search_steps_for(*photo.shape[:2]) == 16
    for level in (3, 6):
        searched, unsearched = searching.compress(photo, level), plain.compress(photo, level)
        assert len(searched) < len(unsearched)
        assert searching.info(searched).fingerprint == plain.info(unsearched).fingerprint
        image = np.asarray(plain.decompress(searched, realism=0))
        assert image.shape == photo.shape


def test_a_large_picture_is_not_searched_even_when_asked(pixel_model):
    codec = Codec(pixel_model, device="cpu", search_steps=4)
    assert codec.search_steps_for(128, 192) == 4
    assert codec.search_steps_for(1100, 600) == 0


@pytest.mark.parametrize("steps", [-1, 201, 2.5, True, "4"])
def test_wrong_search_steps_are_refused(pixel_model, steps):
    with pytest.raises(GencodecError, match="search_steps must be an integer"):
        Codec(pixel_model, device="cpu", search_steps=steps)


def test_a_model_without_settings_does_not_search_and_says_so_when_asked(untrained_codec):
    assert untrained_codec.model.encoder_search is None
    assert untrained_codec.search_steps_for(64, 64) == 0
    with pytest.raises(GencodecError, match="no encoder search settings"):
        gencodec.load("untrained", device="cpu", search_steps=3)


def test_export_keeps_the_settings_and_the_fingerprint(tmp_path, pixel_model):
    import copy

    from gencodec.training.export import export_model

    model = copy.deepcopy(pixel_model)
    model.encoder_search = SearchSettings(LAMBDAS, work=1000, max_steps=3)
    export_model(model, tmp_path / "m", model.config.trained_steps, half=True)
    loaded = load_model(tmp_path / "m")
    assert loaded.encoder_search == model.encoder_search
    assert loaded.fingerprint() == pixel_model.fingerprint()
    model.encoder_search = None
    export_model(model, tmp_path / "n", model.config.trained_steps, half=True)
    assert not (tmp_path / "n" / ENCODER_NAME).exists() and load_model(tmp_path / "n").encoder_search is None


def test_export_script_sets_the_search_lambdas(tmp_path):
    from .conftest import load_script

    export = load_script("export")
    lambdas = json.dumps([1e-4] * 8)
    assert export.main(["--model", "pixel", "--half", "--search-lambdas", lambdas, "--out", str(tmp_path / "m")]) == 0
    assert load_model(tmp_path / "m").encoder_search.lambdas == (1e-4,) * 8
    assert export.main(["--model", str(tmp_path / "m"), "--half", "--search-lambdas", "none",
                        "--out", str(tmp_path / "n")]) == 0
    assert load_model(tmp_path / "n").encoder_search is None
    with pytest.raises(GencodecError, match="--search-lambdas: give a JSON list of 8"):
        export.main(["--model", "pixel", "--search-lambdas", "[1e-4]", "--out", str(tmp_path / "o")])


# -- the command line ------------------------------------------------------------------------------

def _run(capsysbinary, *argv):
    from gencodec.cli import main
    code = main([str(a) for a in argv])
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


def test_compress_takes_search_steps(capsysbinary, tmp_path, pixel_model, photo):
    from PIL import Image
    png = tmp_path / "photo.png"
    Image.fromarray(photo).save(png)
    files = {}
    for steps in ("0", "3"):
        out = tmp_path / f"s{steps}.gcz"
        code, _, err = _run(capsysbinary, "compress", png, "-o", out, "--level", 5, "--model", "pixel",
                            "--device", "cpu", "--search-steps", steps)
        assert code == 0, err
        files[steps] = out.read_bytes()
    assert files["0"] == Codec(pixel_model, device="cpu", search_steps=0).compress(photo, 5)
    assert files["3"] == Codec(pixel_model, device="cpu", search_steps=3).compress(photo, 5)


@pytest.mark.parametrize("value", ["-1", "201", "some"])
def test_wrong_search_steps_are_a_usage_error(capsysbinary, tmp_path, value):
    code, _, err = _run(capsysbinary, "compress", tmp_path / "x.png", "--search-steps", value)
    assert code == 2 and "--search-steps" in err and "Traceback" not in err


def test_search_steps_with_a_model_that_cannot_search_is_a_one_line_error(capsysbinary, tmp_path, photo):
    from PIL import Image
    png = tmp_path / "photo.png"
    Image.fromarray(photo).save(png)
    code, out, err = _run(capsysbinary, "compress", png, "-o", tmp_path / "x.gcz", "--model", "untrained",
                          "--device", "cpu", "--search-steps", 2)
    assert code == 1 and out == b"" and err.splitlines() == [
        "gencodec: error: this model has no encoder search settings (encoder.json in its folder), so its "
        "encoder cannot search (give no search steps)"]


def test_an_evaluation_records_the_search_and_does_not_mix_two(tmp_path, pixel_model, untrained_codec):
    from gencodec.evaluation.evaluate import EvalSettings, _open_run

    searching, plain = Codec(pixel_model, device="cpu"), Codec(pixel_model, device="cpu", search_steps=0)
    assert searching.encoder_search == {"steps": None, "lambdas": list(LAMBDAS), "work": 2 * 768 * 512,
                                        "max_steps": 16}
    assert plain.encoder_search is None and untrained_codec.encoder_search is None
    settings = EvalSettings(levels=[0])
    _open_run(tmp_path, searching, settings, "pixel")
    assert json.loads((tmp_path / "run.json").read_text())["encoder_search"]["work"] == 2 * 768 * 512
    with pytest.raises(GencodecError, match="another encoder_search"):
        _open_run(tmp_path, plain, settings, "pixel")
