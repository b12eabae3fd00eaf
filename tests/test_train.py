"""train/train.py on the tiny config: trains on the CPU, checkpoints, resumes, exports a loadable model."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import gencodec
from gencodec.bitstream import unpack_file

from .conftest import SHARED, smooth_image

ROOT = Path(__file__).resolve().parents[1]
LPIPS_WEIGHTS = SHARED / "weights" / "alexnet_features.pth"


def _train_module():
    spec = importlib.util.spec_from_file_location("gencodec_train", ROOT / "train" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    assert (out / "codec" / "checkpoints" / "checkpoint-10" / train.COMPLETE).exists()
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
    with pytest.raises(train.GencodecError, match="run the stage before it first"):
        train.main(["--config", str(ROOT / "configs" / "tiny.yaml"), "--data", str(photos),
                    "--out", str(tmp_path / "run"), "--cpu", "--stages", "decoder", "--steps", "2"])


def test_an_unwritten_checkpoint_is_ignored(tmp_path):
    train = _train_module()
    (tmp_path / "checkpoint-5").mkdir()
    (tmp_path / "checkpoint-5" / train.COMPLETE).write_text("5")
    (tmp_path / "checkpoint-9").mkdir()  # killed mid-save: no marker
    assert train.latest_checkpoint(tmp_path).name == "checkpoint-5"


def test_distortion_boost_decays_to_one():
    train = _train_module()
    stage = {"distortion_boost": 16, "boost_steps": 100}
    assert train.distortion_boost(stage, 0) == 16
    assert train.distortion_boost(stage, 50) == pytest.approx(4)
    assert train.distortion_boost(stage, 100) == train.distortion_boost(stage, 10**6) == 1
    assert train.distortion_boost({}, 0) == 1


def test_a_stage_may_override_some_loss_weights():
    train = _train_module()
    cfg = {"loss_weights": {"lpips": 1.0, "adversarial": 0.05}}
    weights = train.stage_loss_weights(cfg, {"name": "decoder_lpips", "loss_weights": {"lpips": 2.5}})
    assert (weights.lpips, weights.adversarial, weights.diffusion) == (2.5, 0.05, 1.0)
    assert train.stage_loss_weights(cfg, {"name": "decoder"}).lpips == 1.0
    with pytest.raises(train.GencodecError, match="unknown loss weight 'lpip'"):
        train.stage_loss_weights(cfg, {"name": "decoder", "loss_weights": {"lpip": 2.0}})


def test_bad_stage_settings_stop_the_run_before_any_stage_starts(photos, tmp_path):
    train = _train_module()
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    bad = {"final_step_fraction": 1.5}, {"loss_weights": {"lpip": 2.0}}
    for i, setting in enumerate(bad):
        cfg["stages"][1:] = [{"name": "decoder", "steps": 2, **setting}]
        config = tmp_path / f"config{i}.yaml"
        config.write_text(yaml.safe_dump(cfg))
        with pytest.raises(train.GencodecError, match="final_step_fraction must be|unknown loss weight"):
            train.main(["--config", str(config), "--data", str(photos), "--out", str(tmp_path / f"run{i}"), "--cpu"])
        assert not (tmp_path / f"run{i}" / "codec").exists()  # the codec stage before it never ran
    with pytest.raises(train.GencodecError, match="trains the codec only: 'final_step_fraction'"):
        train.check_stage(cfg, {"name": "codec", "final_step_fraction": 0.5})
    with pytest.raises(train.GencodecError, match="trains the codec only: 'train_synthesis'"):
        train.check_stage(cfg, {"name": "codec", "train_synthesis": True})
    with pytest.raises(train.GencodecError, match="decoder stages only"):
        train.check_stage(cfg, {"name": "joint", "train_synthesis": True})
    with pytest.raises(train.GencodecError, match="must be true or false"):
        train.check_stage(cfg, {"name": "decoder", "train_synthesis": "yes"})
    with pytest.raises(train.GencodecError, match="'base' applies only with train_synthesis"):
        train.check_stage(cfg, {"name": "decoder", "loss_weights": {"base": 10.0}})
    train.check_stage(cfg, {"name": "decoder", "train_synthesis": True, "loss_weights": {"base": 10.0}})


def test_a_decoder_stage_may_train_the_synthesis_but_never_the_code():
    train = _train_module()
    model = gencodec.GenCodecModel(**yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))["model"])
    names = {id(p): n for n, p in model.named_parameters()}
    with_g = {names[id(p)].split(".")[0] for p in train.trainable_parameters(model, "decoder", train_synthesis=True)}
    assert with_g == {"denoiser", "synthesis"}
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {"denoiser", "synthesis"}
    without = {names[id(p)].split(".")[0] for p in train.trainable_parameters(model, "decoder")}
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
    before = gencodec.load(out / "codec" / "model", device="cpu")
    after = gencodec.load(out / "decoder" / "model", device="cpu")
    old, new = before.model.state_dict(), after.model.state_dict()
    changed = {name.split(".")[0] for name in old if not np.array_equal(old[name].numpy(), new[name].numpy())}
    assert changed == {"denoiser", "synthesis"}  # the EMA of G is exported too
    image = smooth_image(64, 64)
    a, b = before.compress(image, level=2), after.compress(image, level=2)
    assert unpack_file(a)[1] == unpack_file(b)[1]  # the same entropy-coded payload, byte for byte
    assert not np.array_equal(np.asarray(before.decompress(a, realism=0)), np.asarray(after.decompress(b, realism=0)))


def test_rate_quantizer_switches_at_its_step():
    train = _train_module()
    stage = {"rate_quantizer": "ste", "rate_quantizer_from": 10}
    assert [train.rate_quantizer(stage, s) for s in (0, 9, 10, 11)] == ["noise", "noise", "ste", "ste"]
    assert train.rate_quantizer({}, 5) == "noise"


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


def test_a_named_stage_runs_its_objective_with_its_own_lambdas(photos, tmp_path, capsys):
    train = _train_module()
    seen = []
    real_objective = train.codec_objective

    def recording_objective(model, x, level, lambdas):
        seen.append(lambdas.tolist())
        return real_objective(model, x, level, lambdas)

    train.codec_objective = recording_objective
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    cfg["trackers"] = []
    cfg["stages"] = [{"name": "codec", "steps": 2, "lambdas": [0.01, 0.02, 0.04, 0.08]},
                     {"name": "codec_low", "objective": "codec", "steps": 3, "level_init": [1, 1, 2, 3],
                      "level_init_log_gain_offsets": [-0.5, 0, 0, 0]}]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    assert train.main(["--config", str(config), "--data", str(photos), "--out", str(out), "--cpu"]) == 0
    assert seen == [pytest.approx([0.01, 0.02, 0.04, 0.08])] * 2 + [pytest.approx(cfg["lambdas"])] * 3
    printed = capsys.readouterr().out
    assert f"stage 'codec_low': warm start from {out / 'codec' / 'model'}" in printed
    assert "stage 'codec_low': levels start from levels [1, 1, 2, 3]" in printed
    assert gencodec.load(out / "model", device="cpu").model.config.trained_steps == 5


def test_a_bad_level_init_is_a_clear_error(photos, tmp_path):
    train = _train_module()
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    cfg["trackers"] = []
    cfg["stages"] = [{"name": "codec", "steps": 1},
                     {"name": "codec_low", "objective": "codec", "steps": 1, "level_init": [0, 9, 1, 2]}]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(train.GencodecError, match="stage 'codec_low': level_init: copy_levels needs 4 source"):
        train.main(["--config", str(config), "--data", str(photos), "--out", str(tmp_path / "run"), "--cpu"])
    cfg["stages"] = [{"name": "codec", "steps": 1, "level_init": [0, 0, 1, 2]}]
    config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(train.GencodecError, match="stage 'codec' has level_init but no warm start"):
        train.main(["--config", str(config), "--data", str(photos), "--out", str(tmp_path / "run2"), "--cpu"])


def test_a_stage_with_an_unknown_objective_is_a_clear_error(photos, tmp_path):
    train = _train_module()
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    cfg["stages"] = [{"name": "codec_low", "steps": 2}]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(train.GencodecError, match="unknown objective 'codec_low'.*set `objective:`"):
        train.main(["--config", str(config), "--data", str(photos), "--out", str(tmp_path / "run"), "--cpu"])
