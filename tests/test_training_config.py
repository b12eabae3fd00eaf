"""The training config: read into dataclasses, every key and value checked before any stage starts."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from gencodec.errors import GencodecError
from gencodec.training.config import (DataConfig, OptimConfig, TrainConfig, load_config, parse_config,
                                      stage_model_config)

from .conftest import ROOT

CONFIGS = ("tiny", "pixel", "latent", "tiny_latent", "base", "base_cpu",
           "gpu/pixel_1gpu", "gpu/pixel_8gpu", "gpu/latent_1gpu", "gpu/latent_8gpu")
#: The GPU-sized configs (configs/gpu/) and the shipped model each one trains.
GPU_CONFIGS = {"gpu/pixel_1gpu": "pixel", "gpu/pixel_8gpu": "pixel",
               "gpu/latent_1gpu": "latent", "gpu/latent_8gpu": "latent"}


def _tiny() -> dict:
    return yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))


def _error(raw: dict) -> str:
    """The message of the error that `raw` is (one line, naming the source)."""
    with pytest.raises(GencodecError) as info:
        parse_config(raw, "configs/x.yaml")
    message = str(info.value)
    assert "\n" not in message and message.startswith("configs/x.yaml: ")
    return message.removeprefix("configs/x.yaml: ")


def _with(change) -> dict:
    raw = _tiny()
    change(raw)
    return raw


@pytest.mark.parametrize("name", CONFIGS)
def test_the_shipped_configs_load(name):
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    raw = yaml.safe_load(open(ROOT / "configs" / f"{name}.yaml"))
    assert isinstance(cfg, TrainConfig) and cfg.names == [s["name"] for s in raw["stages"]]
    assert cfg.model == raw["model"] and cfg.lambdas == raw["lambdas"]
    assert cfg.optim.lr == raw["optim"]["lr"] and cfg.data.crop_size == raw["data"]["crop_size"]
    for index, stage in enumerate(map(cfg.resolve, range(len(cfg.stages)))):
        assert stage.model == stage_model_config(raw, raw["stages"][index])
        assert stage.warm_start(Path("run")) == (Path("run") / raw["stages"][index - 1]["name"] / "model"
                                                 if index else None)


@pytest.mark.parametrize("name, shipped", GPU_CONFIGS.items())
def test_the_gpu_configs_train_a_shipped_architecture_in_bf16_at_gpu_scale(name, shipped):
    import json
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    family = shipped
    cpu = load_config(ROOT / "configs" / f"{family}.yaml")
    assert cfg.family == family and cfg.optim.mixed_precision == "bf16"
    shipped_config = json.loads((ROOT / "gencodec" / "weights" / shipped / "config.json").read_text())
    final = cfg.resolve(len(cfg.stages) - 1).model
    for key, value in final.items():
        if key == "generative_decoder":
            assert {k: shipped_config[key][k] for k in value} == value
        elif key in shipped_config:
            assert shipped_config[key] == (list(value) if isinstance(value, (list, tuple)) else value), key
    # Larger batches than the CPU recipe, at least its crops, and more images in all.
    assert cfg.data.batch_size >= 8 * cpu.data.batch_size and cfg.data.crop_size >= cpu.data.crop_size
    images = lambda c: sum(s.steps * c.resolve(i).data.batch_size for i, s in enumerate(c.stages))  # noqa: E731
    nodes = 8 if name.endswith("8gpu") else 1
    assert images(cfg) * nodes > 20 * images(cpu)


def test_a_stage_takes_what_it_leaves_out_from_the_config():
    cfg = load_config(ROOT / "configs" / "pixel.yaml")
    codec, decoder, lpips, wide = (cfg.resolve(cfg.names.index(n))
                                   for n in ("codec", "decoder", "decoder_lpips", "decoder_wide"))
    assert codec.lambdas != cfg.lambdas and decoder.lambdas == cfg.lambdas  # its own ladder, or the config's
    assert (decoder.data.crop_size, decoder.data.batch_size, decoder.data.train) == (128, 8, cfg.data.train)
    assert (decoder.optim.lr, decoder.optim.warmup_steps, decoder.optim.entropy_lr_scale) == (3.0e-4, 100, 10.0)
    assert (codec.optim.lr, codec.optim.warmup_steps) == (cfg.optim.lr, cfg.optim.warmup_steps)
    assert (lpips.loss_weights.lpips, lpips.loss_weights.adversarial) == (2.5, cfg.loss_weights.adversarial)
    assert decoder.loss_weights == cfg.loss_weights
    assert (lpips.final_step_fraction, decoder.final_step_fraction, decoder.train_synthesis) == (0.5, 0.0, False)
    # A stage's model settings merge into the config's key by key.
    assert wide.model["generative_decoder"] == {**cfg.model["generative_decoder"],
                                                "block_out_channels": [64, 96, 128]}
    assert wide.model["latent_channels"] == cfg.model["latent_channels"]
    assert cfg.stages[0].boost_at(0) == 30 and cfg.stages[0].rate_quantizer_at(2250) == "ste"


def test_defaults_fill_in_what_a_config_leaves_out():
    raw = _tiny()
    for key in ("ema_decay", "validate_every", "trackers", "discriminator", "loss_weights"):
        del raw[key]
    del raw["optim"]["grad_clip"]
    cfg = parse_config(raw)
    assert cfg.ema_decay is None and cfg.validate_every == 0 and cfg.trackers == ["tensorboard"]
    assert cfg.optim.grad_clip is None and cfg.optim.betas == (0.9, 0.999) and cfg.loss_weights.gan == "hinge"
    assert cfg.discriminator.channels == (64, 128, 256, 256)
    assert DataConfig(crop_size=64, batch_size=2).num_workers == 0 and OptimConfig(lr=1.0).schedule == "cosine"


@pytest.mark.parametrize("change, message", [
    (lambda c: c["optim"].update(lrr=1.0), "optim.lrr: unknown key (known: lr, weight_decay, betas, "),
    (lambda c: c.update(sead=1), "sead: unknown key (known: model, family, autoencoder, data, optim, "),
    (lambda c: c["stages"][1].update(step=3), "stages[1].step: unknown key (known: name, objective, steps, "),
    (lambda c: c["stages"][1].update(loss_weights={"lpip": 2.0}), "stages[1].loss_weights.lpip: unknown key "
                                                                  "(known: diffusion, lpips, adversarial, "),
    (lambda c: c["stages"][1].update(data={"crop": 64}), "stages[1].data.crop: unknown key (known: train, val, "),
    (lambda c: c["model"].update(latent_chanels=8), "model.latent_chanels: unknown key (known: latent_channels, "),
    (lambda c: c["stages"][1].update(model={"refine": 8}), "stages[1].model.refine: unknown key (known: "),
])
def test_an_unknown_key_is_one_line_naming_it(change, message):
    assert _error(_with(change)).startswith(message)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["stages"][1].update(steps="ten"), "stages[1].steps: expected an integer, got 'ten'"),
    (lambda c: c["stages"][1].update(steps=2.5), "stages[1].steps: expected an integer, got 2.5"),
    (lambda c: c["stages"][1].update(steps=True), "stages[1].steps: expected an integer, got true"),
    (lambda c: c["optim"].update(lr="fast"), "optim.lr: expected a number, got 'fast'"),
    (lambda c: c["optim"].update(lr="1e-3"), "optim.lr: expected a number, got '1e-3' (YAML reads"),
    (lambda c: c["optim"].update(betas=[0.9]), "optim.betas: expected a list of 2, got [0.9]"),
    (lambda c: c["optim"].update(schedule="cosin"), "optim.schedule: expected one of linear, cosine, "),
    (lambda c: c["optim"].update(mixed_precision="bf17"), "optim.mixed_precision: expected one of no, fp16, bf16"),
    (lambda c: c.update(lambdas=[0.1, "x", 0.3, 0.4]), "lambdas[1]: expected a number, got 'x'"),
    (lambda c: c.update(trackers="tensorboard"), "trackers: expected a list, got 'tensorboard'"),
    (lambda c: c.update(data=[64]), "data: expected a mapping, got [64]"),
    (lambda c: c["data"].pop("crop_size"), "data.crop_size: required, but not given"),
    (lambda c: c["stages"][1].pop("name"), "stages[1].name: required, but not given"),
    (lambda c: c["stages"][1].update(objective="codex"), "stages[1].objective: expected one of codec, decoder, "
                                                         "joint, distill, got 'codex'"),
    (lambda c: c["stages"][1].update(train_synthesis="yes"), "stages[1].train_synthesis: expected true or false, "
                                                             "got 'yes'"),
    (lambda c: c["stages"][0].update(rate_quantizer="round"), "stages[0].rate_quantizer: expected one of noise, ste"),
    (lambda c: c["stages"][1].update(fresh="denoiser"), "stages[1].fresh: expected a list, got 'denoiser'"),
    (lambda c: c["stages"][1].update(fresh=["decoder"]), "stages[1].fresh[0]: expected one of analysis, synthesis, "
                                                         "latent_codec, denoiser, got 'decoder'"),
    (lambda c: c["stages"][1].update(model=8), "stages[1].model: expected a mapping, got 8"),
    (lambda c: c["model"].update(n_levels="4"), "model.n_levels: expected an integer, got '4'"),
])
def test_a_wrong_type_is_one_line_naming_the_key(change, message):
    assert _error(_with(change)).startswith(message)


def test_a_config_file_error_names_the_file(tmp_path):
    config = tmp_path / "x.yaml"
    config.write_text(yaml.safe_dump(_with(lambda c: c["stages"][1].update(steps="ten"))))
    with pytest.raises(GencodecError, match=rf"^{config}: stages\[1\].steps: expected an integer, got 'ten'$"):
        load_config(config)
    config.write_text("optim: {lr: [1\nstages: 2\n")
    with pytest.raises(GencodecError) as info:
        load_config(config)
    assert str(info.value).startswith(f"{config}: not valid YAML: ") and "\n" not in str(info.value)
    with pytest.raises(GencodecError, match="cannot read the config"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("stage, message", [
    ({"name": "codec_low", "steps": 1}, "stage 'codec_low' has unknown objective 'codec_low' (objectives are "
                                        "codec, decoder, joint, distill); set `objective:`"),
    ({"name": "codec", "steps": 1, "final_step_fraction": 0.5}, "stage 'codec' trains the codec only: "
                                                                "'final_step_fraction' has no effect there"),
    ({"name": "codec", "steps": 1, "train_synthesis": True}, "stage 'codec' trains the codec only: 'train_synthesis'"),
    ({"name": "codec_b", "objective": "codec", "steps": 1, "loss_weights": {"lpips": 2.0}},
     "stage 'codec_b' trains the codec only: 'loss_weights'"),
    ({"name": "joint", "steps": 1, "train_synthesis": True}, "stage 'joint': train_synthesis applies to decoder "
                                                             "stages only"),
    ({"name": "decoder", "steps": 1, "final_step_fraction": 1.5}, "stage 'decoder': final_step_fraction must be "
                                                                  "from 0 to 1, got 1.5"),
    ({"name": "decoder", "steps": 1, "loss_weights": {"base": 10.0}}, "stage 'decoder': loss weight 'base' "
                                                                      "applies only with train_synthesis: true"),
    ({"name": "decoder", "steps": 1, "loss_weights": {"periodic": -0.1}}, "stage 'decoder': loss weights "
                                                                          "'periodic' and 'lpips_shift' must not be"),
    ({"name": "decoder", "steps": 1, "loss_weights": {"gan": "hinj"}}, "stage 'decoder': loss weight gan must be "
                                                                       "one of hinge, nonsaturating, got 'hinj'"),
    ({"name": "decoder", "steps": 1, "model": {"generative_decoder": None}}, "stage 'decoder' trains the generative "
                                                                             "decoder, but the model config has none"),
    ({"name": "codec_b", "objective": "codec", "steps": 1, "init": None, "fresh": ["denoiser"]},
     "stage 'codec_b' has fresh but no warm start"),
    ({"name": "codec_b", "objective": "codec", "steps": 1, "init": None, "level_init": [0, 0, 1, 2]},
     "stage 'codec_b' has level_init but no warm start"),
    ({"name": "codec_b", "objective": "codec", "steps": 1, "level_init": [0, 9, 1, 2]},
     "stage 'codec_b': level_init needs 4 source levels in [0, 4), got [0, 9, 1, 2]"),
    ({"name": "codec_b", "objective": "codec", "steps": 1, "level_init": [0, 1, 2, 3],
      "level_init_log_gain_offsets": [0.0]}, "stage 'codec_b': level_init_log_gain_offsets needs 4 offsets"),
    ({"name": "codec_b", "objective": "codec", "steps": 1, "train_levels": [1, 4]},
     "stage 'codec_b': train_levels needs distinct levels in [0, 4), got [1, 4]"),
    ({"name": "codec_b", "objective": "codec", "steps": 1, "train_levels": [2, 2]},
     "stage 'codec_b': train_levels needs distinct levels in [0, 4), got [2, 2]"),
    ({"name": "codec_b", "objective": "codec", "steps": 1, "train_levels": []},
     "stage 'codec_b': train_levels needs distinct levels in [0, 4), got []"),
    ({"name": "codec_b", "objective": "codec", "steps": 1, "thumb_distortion": -1.0},
     "stage 'codec_b': thumb_distortion is a non-negative weight for the pixel family's codec stages"),
    ({"name": "decoder_b", "objective": "decoder", "steps": 1, "thumb_distortion": 1.0},
     "stage 'decoder_b': thumb_distortion is a non-negative weight for the pixel family's codec stages"),
    ({"name": "codec_b", "objective": "codec", "steps": 1, "lambdas": [0.1, 0.2]},
     "stage 'codec_b': 2 lambdas for the model's 4 levels"),
    ({"name": "codec_b", "objective": "codec", "steps": -1}, "stage 'codec_b': steps must not be negative"),
    ({"name": "first", "objective": "codec", "steps": 1}, "stages: stage names must be unique within a config; "
                                                          "'first' is not"),
])
def test_a_stage_a_run_cannot_use_is_one_line_naming_the_stage(stage, message):
    """The stage comes second, after a codec stage (its warm start)."""
    first = {"name": "first", "objective": "codec", "steps": 1}
    assert _error(_with(lambda c: c.update(stages=[first, stage]))).startswith(message)


def test_the_periodic_term_is_refused_for_the_latent_family():
    raw = yaml.safe_load(open(ROOT / "configs" / "tiny_latent.yaml"))
    decoder = next(stage for stage in raw["stages"] if stage.get("objective", stage["name"]) == "decoder")
    decoder["loss_weights"] = {**decoder.get("loss_weights", {}), "periodic": 0.1}
    assert "loss weight 'periodic' applies to the pixel family only" in _error(raw)


def test_the_rules_let_through_what_a_stage_can_use():
    stages = [{"name": "codec", "steps": 1},
              {"name": "decoder", "steps": 1, "train_synthesis": True, "loss_weights": {"base": 10.0}},
              {"name": "decoder_b", "objective": "decoder", "steps": 1, "train_synthesis": False,
               "final_step_fraction": 1.0, "fresh": ["denoiser"], "model": {"generative_decoder": {"fold": 2}}},
              {"name": "codec_b", "objective": "codec", "steps": 1, "level_init": [0, 0, 1, 2],
               "level_init_log_gain_offsets": [-1, 0, 0, 0], "init": "somewhere/model"}]
    cfg = parse_config(_with(lambda c: c.update(stages=stages)))
    assert cfg.resolve(1).train_synthesis and cfg.resolve(1).loss_weights.base == 10.0
    assert cfg.resolve(2).model["generative_decoder"]["fold"] == 2
    assert cfg.stages[3].level_init_log_gain_offsets == [-1.0, 0.0, 0.0, 0.0]  # numbers, as floats
    assert cfg.resolve(3).warm_start(Path("run")) == Path("somewhere/model")


@pytest.mark.parametrize("key, value", [("log_every", 0), ("checkpoint_every", 0), ("keep_checkpoints", 0)])
def test_counts_that_must_be_positive(key, value):
    assert _error(_with(lambda c: c.update({key: value}))) == f"{key}: must be at least 1, got {value}"


def test_the_checks_do_not_change_the_config():
    raw = _tiny()
    before = copy.deepcopy(raw)
    parse_config(raw)
    assert raw == before
