"""train/train.py on the tiny config: trains on the CPU, checkpoints, resumes, exports a loadable model."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import gencodec
from gencodec.bitstream import unpack_file
from gencodec.errors import GencodecError
from gencodec.training import runner
from gencodec.training.checkpoints import COMPLETE, latest_checkpoint
from gencodec.training.config import StageConfig
from gencodec.training.objectives import random_levels
from gencodec.training.parameters import trainable_parameters

from .conftest import LPIPS_WEIGHTS, ROOT, smooth_image
from .conftest import train_module as _train_module


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(6):
        Image.fromarray(smooth_image(96, 96, seed=i)).save(folder / f"p{i}.png")
    return folder


def test_codec_stage_trains_checkpoints_resumes_and_exports(photos, tmp_path):
    train = _train_module()
    out = tmp_path / "run"
    args = ["--config", str(ROOT / "configs" / "tiny.yaml"), "--data", str(photos), "--out", str(out), "--cpu",
            "--stages", "codec"]
    assert train.main(args + ["--steps", "10"]) == 0
    assert (out / "codec" / "checkpoints" / "checkpoint-10" / COMPLETE).exists()
    # Continue from the checkpoint to a later step.
    assert train.main(args + ["--steps", "15", "--resume", "latest"]) == 0
    rows = list(csv.DictReader(open(out / "codec" / "metrics.csv")))
    assert int(rows[-1]["step"]) == 15
    codec = gencodec.load(out / "codec" / "model", device="cpu")
    assert codec.is_trained and codec.model.config.trained_steps == 15
    data = codec.compress(smooth_image(50, 70), level=1)
    assert np.asarray(codec.decompress(data, realism=0)).shape == (50, 70, 3)


@pytest.mark.skipif(not LPIPS_WEIGHTS.exists(), reason="LPIPS weights (../shared/weights) not present")
def test_all_three_stages_warm_start_in_turn(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENCODEC_LPIPS_WEIGHTS", str(LPIPS_WEIGHTS))
    train = _train_module()
    out = tmp_path / "run"
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    cfg["data"]["val"] = str(photos)
    cfg.update(validate_every=3, val_images=1)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert train.main(["--config", str(config), "--data", str(photos), "--out", str(out),
                       "--cpu", "--steps", "3"]) == 0
    printed = capsys.readouterr().out
    assert f"stage 'decoder': warm start from {out / 'codec' / 'model'}" in printed
    assert f"stage 'joint': warm start from {out / 'decoder' / 'model'}" in printed
    codec = gencodec.load(out / "model", device="cpu")
    assert codec.model.config.trained_steps == 9 and codec.is_generative
    for stage in ("codec", "decoder", "joint"):  # validation grids and TensorBoard logs of every stage
        assert (out / stage / "val" / "val_step0000003.png").exists() or list((out / stage / "val").glob("*.png"))
        assert list((out / stage / "tensorboard").rglob("events.out.tfevents.*"))
    data = codec.compress(smooth_image(64, 64), level=0)
    assert np.asarray(codec.decompress(data, realism=1.0, steps=2)).shape == (64, 64, 3)


def test_a_stage_without_its_predecessor_is_a_clear_error(photos, tmp_path):
    train = _train_module()
    with pytest.raises(GencodecError, match="run the stage before it first"):
        train.main(["--config", str(ROOT / "configs" / "tiny.yaml"), "--data", str(photos),
                    "--out", str(tmp_path / "run"), "--cpu", "--stages", "decoder", "--steps", "2"])


def test_an_unwritten_checkpoint_is_ignored(tmp_path):
    (tmp_path / "checkpoint-5").mkdir()
    (tmp_path / "checkpoint-5" / COMPLETE).write_text("5")
    (tmp_path / "checkpoint-9").mkdir()  # killed mid-save: no marker
    assert latest_checkpoint(tmp_path).name == "checkpoint-5"


def test_distortion_boost_decays_to_one():
    stage = StageConfig(name="codec", steps=1, distortion_boost=16, boost_steps=100)
    assert stage.boost_at(0) == 16
    assert stage.boost_at(50) == pytest.approx(4)
    assert stage.boost_at(100) == stage.boost_at(10**6) == 1
    assert StageConfig(name="codec", steps=1).boost_at(0) == 1


def test_bad_stage_settings_stop_the_run_before_any_stage_starts(photos, tmp_path):
    train = _train_module()
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    bad = {"final_step_fraction": 1.5}, {"loss_weights": {"lpip": 2.0}}
    for i, setting in enumerate(bad):
        cfg["stages"][1:] = [{"name": "decoder", "steps": 2, **setting}]
        config = tmp_path / f"config{i}.yaml"
        config.write_text(yaml.safe_dump(cfg))
        with pytest.raises(GencodecError, match="final_step_fraction must be|loss_weights.lpip: unknown key"):
            train.main(["--config", str(config), "--data", str(photos), "--out", str(tmp_path / f"run{i}"), "--cpu"])
        assert not (tmp_path / f"run{i}" / "codec").exists()  # the codec stage before it never ran


def test_a_decoder_stage_may_train_the_synthesis_but_never_the_code():
    model = gencodec.GenCodecModel(**yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))["model"])
    names = {id(p): n for n, p in model.named_parameters()}
    with_g = {names[id(p)].split(".")[0] for p in trainable_parameters(model, "decoder", train_synthesis=True)}
    assert with_g == {"denoiser", "synthesis"}
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {"denoiser", "synthesis"}
    without = {names[id(p)].split(".")[0] for p in trainable_parameters(model, "decoder")}
    assert without == {"denoiser"}


@pytest.mark.skipif(not LPIPS_WEIGHTS.exists(), reason="LPIPS weights (../shared/weights) not present")
def test_training_the_synthesis_keeps_every_file_byte_and_realism_0_follows_it(photos, tmp_path, monkeypatch):
    monkeypatch.setenv("GENCODEC_LPIPS_WEIGHTS", str(LPIPS_WEIGHTS))
    train = _train_module()
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    cfg["stages"] = [cfg["stages"][0], {"name": "decoder", "steps": 3, "train_synthesis": True,
                                        "loss_weights": {"base": 10.0}}]
    cfg.update(validate_every=0, optim={**cfg["optim"], "lr": 1e-2, "warmup_steps": 0})
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    assert train.main(["--config", str(config), "--data", str(photos), "--out", str(out), "--cpu", "--steps", "3"]) == 0
    # The encoder search measures its codes through G, so the files keep their bytes with it off.
    before = gencodec.load(out / "codec" / "model", device="cpu", search_steps=0)
    after = gencodec.load(out / "decoder" / "model", device="cpu", search_steps=0)
    assert before.model.encoder_search.lambdas == tuple(cfg["lambdas"])  # each export writes its encoder.json
    old, new = before.model.state_dict(), after.model.state_dict()
    changed = {name.split(".")[0] for name in old if not np.array_equal(old[name].numpy(), new[name].numpy())}
    assert changed == {"denoiser", "synthesis"}  # the EMA of G is exported too
    image = smooth_image(64, 64)
    a, b = before.compress(image, level=2), after.compress(image, level=2)
    assert unpack_file(a)[1] == unpack_file(b)[1]  # the same entropy-coded payload, byte for byte
    assert not np.array_equal(np.asarray(before.decompress(a, realism=0)), np.asarray(after.decompress(b, realism=0)))


def test_rate_quantizer_switches_at_its_step():
    stage = StageConfig(name="codec", steps=1, rate_quantizer="ste", rate_quantizer_from=10)
    assert [stage.rate_quantizer_at(s) for s in (0, 9, 10, 11)] == ["noise", "noise", "ste", "ste"]
    assert StageConfig(name="codec", steps=1).rate_quantizer_at(5) == "noise"


def test_straight_through_rate_is_the_real_rate(rich_codec):
    """With rate_quantizer 'ste' the training rate of y follows the exact rate of the coded
    symbols (up to the tables' quantisation and the escape code for the tails); and it has gradients."""
    import copy

    import torch

    model = copy.deepcopy(rich_codec.model)
    x = torch.from_numpy(smooth_image(128, 128, seed=3)).permute(2, 0, 1)[None].float() / 255
    level = torch.tensor([2])
    with torch.no_grad():
        y = model.analysis(x)
        exact = model.latent_codec.eval()(y, level)["bits_y"].item()
    model.latent_codec.train()
    model.latent_codec.rate_quantizer = "ste"
    y = y.requires_grad_()
    ste = model.latent_codec(y, level)["bits_y"]
    ste.sum().backward()
    assert ste.item() == pytest.approx(exact, rel=0.1)
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    model.latent_codec.rate_quantizer = "nonsense"
    with pytest.raises(ValueError, match="rate_quantizer"):
        model.latent_codec(y, level)


def _record_codec_objective(monkeypatch) -> list[tuple[list[float], list[int]]]:
    """The codec objective, recording the (lambdas, levels) of each call."""
    seen = []
    real_objective = runner.codec_objective

    def recording_objective(model, x, level, lambdas, *space):
        seen.append((lambdas.tolist(), level.tolist()))
        return real_objective(model, x, level, lambdas, *space)

    monkeypatch.setattr(runner, "codec_objective", recording_objective)
    return seen


def test_a_named_stage_runs_its_objective_with_its_own_lambdas(photos, tmp_path, capsys, monkeypatch):
    train = _train_module()
    seen = _record_codec_objective(monkeypatch)
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    cfg["trackers"] = []
    cfg["stages"] = [{"name": "codec", "steps": 2, "lambdas": [0.01, 0.02, 0.04, 0.08]},
                     {"name": "codec_low", "objective": "codec", "steps": 3, "level_init": [1, 1, 2, 3],
                      "level_init_log_gain_offsets": [-0.5, 0, 0, 0]}]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    assert train.main(["--config", str(config), "--data", str(photos), "--out", str(out), "--cpu"]) == 0
    assert [lambdas for lambdas, _ in seen] == ([pytest.approx([0.01, 0.02, 0.04, 0.08])] * 2
                                                + [pytest.approx(cfg["lambdas"])] * 3)
    printed = capsys.readouterr().out
    assert f"stage 'codec_low': warm start from {out / 'codec' / 'model'}" in printed
    assert "stage 'codec_low': levels start from levels [1, 1, 2, 3]" in printed
    assert gencodec.load(out / "model", device="cpu").model.config.trained_steps == 5


def test_a_stage_trains_only_its_train_levels(photos, tmp_path, monkeypatch):
    train = _train_module()
    seen = _record_codec_objective(monkeypatch)
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    cfg["trackers"] = []
    cfg["stages"] = [{"name": "codec", "steps": 6, "train_levels": [1, 3]}]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert train.main(["--config", str(config), "--data", str(photos), "--out", str(tmp_path / "run"),
                       "--cpu"]) == 0
    levels = [level for _, batch in seen for level in batch]
    assert len(levels) == 6 * cfg["data"]["batch_size"] and set(levels) == {1, 3}


def test_random_levels_draws_from_the_given_levels():
    generator = torch.Generator().manual_seed(0)
    assert set(random_levels(400, 8, "cpu", generator).tolist()) == set(range(8))
    assert set(random_levels(400, 8, "cpu", generator, levels=[5, 6, 7]).tolist()) == {5, 6, 7}


def test_a_bad_level_init_stops_the_run_before_any_stage_starts(photos, tmp_path):
    train = _train_module()
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    cfg["trackers"] = []
    cfg["stages"] = [{"name": "codec", "steps": 1},
                     {"name": "codec_low", "objective": "codec", "steps": 1, "level_init": [0, 9, 1, 2]}]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(GencodecError, match=r"stage 'codec_low': level_init needs 4 source levels in \[0, 4\)"):
        train.main(["--config", str(config), "--data", str(photos), "--out", str(tmp_path / "run"), "--cpu"])
    assert not (tmp_path / "run").exists()
    cfg["stages"] = [{"name": "codec", "steps": 1, "level_init": [0, 0, 1, 2]}]
    config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(GencodecError, match="stage 'codec' has level_init but no warm start"):
        train.main(["--config", str(config), "--data", str(photos), "--out", str(tmp_path / "run2"), "--cpu"])


def test_a_stage_with_an_unknown_objective_is_a_clear_error(photos, tmp_path):
    train = _train_module()
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    cfg["stages"] = [{"name": "codec_low", "steps": 2}]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(GencodecError, match="unknown objective 'codec_low'.*set `objective:`"):
        train.main(["--config", str(config), "--data", str(photos), "--out", str(tmp_path / "run"), "--cpu"])


def test_a_stage_in_the_run_but_not_the_config_is_a_clear_error(photos, tmp_path):
    train = _train_module()
    with pytest.raises(GencodecError, match="stage 'decodr' is not in the config"):
        train.main(["--config", str(ROOT / "configs" / "tiny.yaml"), "--data", str(photos),
                    "--out", str(tmp_path / "run"), "--cpu", "--stages", "codec,decodr"])
    assert not (tmp_path / "run").exists()


def test_a_missing_training_extra_is_one_line(monkeypatch, capsys):
    """Without a package of the `train` extra, train.py names the extra and exits 1 (no traceback)."""
    import runpy
    import sys

    monkeypatch.setitem(sys.modules, "lpips", None)  # as if it were not installed
    monkeypatch.setattr(sys, "argv", ["train.py", "--help"])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(ROOT / "train" / "train.py"), run_name="__main__")
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("train.py: error: ") and "'lpips'" in err and "gencodec[train]" in err
    assert err.count("\n") == 1
