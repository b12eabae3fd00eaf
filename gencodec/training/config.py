"""The training config (configs/*.yaml) as dataclasses, checked in full when it is read.

`load_config(path)` returns a TrainConfig, or raises a GencodecError of one
line that names the file and the key path (an unknown key, a wrong type), or
the file and the stage (a stage setting it cannot run with): every stage is
checked before any stage starts. `family:` picks the model family (pixel:
GenCodecModel, latent: LatentCodecModel); `model:` (and a stage's own
`model:`) are keyword arguments of its class, checked against its signature.

A stage's settings fall back to the config's: `TrainConfig.resolve(index)`
gives a Stage with its model, data, optimiser, loss weights and lambdas filled
in, the one place where a stage's own settings meet the config's.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from diffusers.optimization import SchedulerType

from ..errors import GencodecError
from ..model import CodecModel
from ..pretrained import model_class
from ..rungs import rungs_of
from .objectives import STAGES, LossWeights
from .schema import check_keywords, describe, keywords, overrides, parse, show

SCHEDULES = tuple(s.value for s in SchedulerType)  # diffusers.optimization.get_scheduler's names
Objective = Literal[STAGES]  # type: ignore[valid-type]  # codec, decoder, joint
Network = Literal[CodecModel.NETWORKS]  # type: ignore[valid-type]  # what `fresh` may name
GAN_LOSSES = ("hinge", "nonsaturating")
PREVIOUS = "previous"  # a stage's default `init`: the export of the stage before it
Family = Literal["pixel", "latent"]


def model_settings(**settings):
    """Any family's model settings: checked against the family's class once the family is known."""
    return settings



@dataclass(kw_only=True)
class DataConfig:
    """`data:` the training images and how they are cut (a stage may change crops and batches)."""

    train: str | None = None  # a folder of images or of tar shards; --data overrides
    val: str | None = None    # held-out photos for periodic validation (monitoring only)
    crop_size: int
    batch_size: int
    num_workers: int = 0
    render_crop: int | None = None  # latent family: side in px of the crop rendered for LPIPS (null: whole crop)


@dataclass(kw_only=True)
class OptimConfig:
    """`optim:` AdamW, its schedule, and how accelerate runs the steps."""

    lr: float
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = None  # max gradient norm; null or 0: no clipping
    warmup_steps: int = 0
    schedule: Literal[SCHEDULES] = "cosine"  # type: ignore[valid-type]
    gradient_accumulation_steps: int = 1
    mixed_precision: Literal["no", "fp16", "bf16", "fp8"] = "no"
    entropy_lr_scale: float = 1.0  # the entropy model's parameters at lr x this (parameters.ENTROPY_PARAMETERS)


@dataclass(kw_only=True)
class DiscriminatorConfig:
    """`discriminator:` the conditional discriminator of the decoder and joint stages."""

    lr: float = 1.0e-4
    channels: tuple[int, ...] = (64, 128, 256, 256)


@dataclass(kw_only=True)
class StageConfig:
    """One entry of `stages:`; settings it leaves out come from the config (see TrainConfig.resolve)."""

    name: str                           # its folder in the run; unique
    objective: Objective | None = None  # what it trains, when the name is not codec, decoder or joint
    steps: int
    init: str | None = PREVIOUS         # warm start: a model folder, `previous` (none for the first stage) or null
    fresh: list[Network] = field(default_factory=list)  # networks left at their initialisation
    # The latent family: a model folder whose autoencoder (encoder and decoder) replaces the warm start's,
    # e.g. a distilled fast autoencoder put under a trained codec. Its kind must be the stage's.
    autoencoder_from: str | None = None
    model: dict[str, Any] = keywords(model_settings)  # merged into the config's, key by key
    data: dict[str, Any] = overrides(DataConfig)
    optim: dict[str, Any] = overrides(OptimConfig)
    lambdas: list[float] | None = None
    # Codec stages: the rate ladder early on (distortion_boost, rate_quantizer_at) and re-levelling.
    distortion_boost: float = 1.0
    boost_steps: int = 0
    rate_quantizer: Literal["noise", "ste"] = "noise"
    rate_quantizer_from: int = 0
    # The latent family's codec stages: weight of the pixel MSE of a crop of x_bar rendered by the frozen
    # decoder (data.render_crop px), beside the latent MSE: it is pixels that realism 0 should be closest in.
    pixel_distortion: float = 0.0
    # The pixel family's codec stages: weight of the MSE of 1/8 area-downsampled images beside the MSE
    # (objectives.codec_objective): bits go to layout and colours first.
    thumb_distortion: float = 0.0
    level_init: list[int] | None = None  # level l starts from the warm start's level level_init[l]
    # The coding levels the stage trains, drawn uniformly (null: all). A ladder that uses a few coding
    # levels (gencodec.rungs) can spend every step on them; the others are left as they are.
    train_levels: list[int] | None = None
    level_init_log_gain_offsets: list[float] | None = None
    level_init_log_z_gain_offsets: list[float] | None = None
    # Decoder stages (null: not set).
    final_step_fraction: float | None = None  # share of each batch at the last timestep
    train_synthesis: bool | None = None       # train the base synthesis G too (the code stays frozen)
    # The pixel family's decoder stages: the share of each batch sent through the model's downscaled rungs
    # as decoding does (gencodec.training.rung_inputs), and the side of the crop of every sample that the
    # denoiser then trains on (null: all of it). The rungs need whole crops: data.crop_size a multiple of
    # the largest downscale x 64.
    rung_fraction: float | None = None
    denoise_crop: int | None = None
    loss_weights: dict[str, Any] = overrides(LossWeights)

    @property
    def kind(self) -> str:
        """What the stage trains: its objective, or its name when it has none."""
        return self.objective or self.name

    def boost_at(self, step: int) -> float:
        """Factor on every lambda early in a codec stage: `distortion_boost` at step 0, down to 1
        (geometrically) at `boost_steps`.

        From a fresh start the rate term dominates at extreme-rate lambdas, and the
        cheapest move is to send nothing: the transforms then learn little while
        the entropy model learns to price noise. Weighting distortion up first lets
        the transforms learn to carry the picture, and the squeeze to the target
        rates follows.
        """
        if self.distortion_boost == 1.0 or self.boost_steps <= 0 or step >= self.boost_steps:
            return 1.0
        return self.distortion_boost ** (1.0 - step / self.boost_steps)

    def rate_quantizer_at(self, step: int) -> str:
        """How the stage prices the rate at `step`: `rate_quantizer` ("noise" or "ste", see
        HyperpriorLatentCodec) from step `rate_quantizer_from` on, noise before it."""
        return self.rate_quantizer if step >= self.rate_quantizer_from else "noise"


@dataclass(kw_only=True)
class TrainConfig:
    """A whole training config: the model, data, optimiser, rate ladder, stages and bookkeeping."""

    model: dict[str, Any] = keywords(model_settings, required=True)
    family: Family = "pixel"
    autoencoder: str | None = None  # latent family: the folder of the pretrained autoencoder's weights
    data: DataConfig
    optim: OptimConfig
    lambdas: list[float]  # one per level, level 0 the lowest rate
    stages: list[StageConfig]
    loss_weights: LossWeights = field(default_factory=LossWeights)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    ema_decay: float | None = None  # EMA of the networks a decoder stage trains; null or 0: none
    # Validation on data.val
    validate_every: int = 0  # steps; 0: never
    val_images: int = 4
    val_levels: list[int] | None = None  # default: the lowest and the highest level
    # Logging and checkpoints
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])  # [] for none; metrics.csv always
    log_every: int = 10
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    seed: int = 0

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def resolve(self, index: int) -> Stage:
        """Stage `index` with every setting that falls back to the config's filled in."""
        own = self.stages[index]
        return Stage(
            index=index, config=own, family=self.family, autoencoder=self.autoencoder, previous=self.stages[index - 1].name if index > 0 else None,
            model=merge_settings(self.model, own.model),
            data=dataclasses.replace(self.data, **own.data),
            optim=dataclasses.replace(self.optim, **own.optim),
            loss_weights=dataclasses.replace(self.loss_weights, **own.loss_weights),
            lambdas=list(own.lambdas if own.lambdas is not None else self.lambdas),
            final_step_fraction=own.final_step_fraction or 0.0,
            train_synthesis=bool(own.train_synthesis))


@dataclass(frozen=True)
class Stage:
    """A stage as it runs: its own settings (`config`) and those it takes from the config."""

    index: int
    config: StageConfig
    family: str
    autoencoder: str | None
    previous: str | None  # the name of the stage before it in the config
    model: dict[str, Any]
    data: DataConfig
    optim: OptimConfig
    loss_weights: LossWeights
    lambdas: list[float]
    final_step_fraction: float
    train_synthesis: bool

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def has_warm_start(self) -> bool:
        return bool(self.previous) if self.config.init == PREVIOUS else bool(self.config.init)

    def warm_start(self, out: Path) -> Path | None:
        """The model folder the stage starts from, in the run folder `out`; None: from scratch."""
        if not self.has_warm_start:
            return None
        return out / self.previous / "model" if self.config.init == PREVIOUS else Path(self.config.init)

    def model_setting(self, name: str) -> Any:
        """A setting of the stage's model, its class's default where the config has none."""
        if name in self.model:
            return self.model[name]
        return inspect.signature(model_class(self.family).__init__).parameters[name].default


def merge_settings(base: Mapping, update: Mapping) -> dict:
    """`base` updated by `update`, nested mappings key by key.

    So a decoder stage can add a refiner to the denoiser with
    `model: {generative_decoder: {refine_channels: 32}}` and keep the rest of
    the architecture (the warm start must still fit it).
    """
    merged = dict(base)
    for key, value in update.items():
        both = isinstance(value, Mapping) and isinstance(base.get(key), Mapping)
        merged[key] = merge_settings(base[key], value) if both else value
    return merged


def stage_model_config(cfg: Mapping, stage: Mapping) -> dict:
    """The model settings of `stage`, for a config read as plain YAML (a mapping and one of its stages)."""
    return merge_settings(cfg["model"], stage.get("model") or {})


def load_config(path: str | Path) -> TrainConfig:
    """Read and check a YAML training config; every error is one line naming the file."""
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except OSError as exc:
        raise GencodecError(f"{path}: cannot read the config: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise GencodecError(f"{path}: not valid YAML: {getattr(exc, 'problem', None) or exc}{where}") from None
    return parse_config(raw, str(path))


def parse_config(raw: Any, source: str = "config") -> TrainConfig:
    """A TrainConfig from a mapping as YAML reads it; errors name `source` (the file)."""
    try:
        cfg = parse(TrainConfig, raw)
        check_config(cfg)
    except GencodecError as exc:
        raise GencodecError(f"{source}: {exc}") from None
    return cfg


def check_config(cfg: TrainConfig) -> None:
    """Settings each of the right type, but that no run can use; then every stage's own checks."""
    positive = {"log_every": cfg.log_every, "checkpoint_every": cfg.checkpoint_every,
                "keep_checkpoints": cfg.keep_checkpoints, "data.crop_size": cfg.data.crop_size,
                "data.batch_size": cfg.data.batch_size}
    for key, value in positive.items():
        if value < 1:
            raise GencodecError(f"{key}: must be at least 1, got {value}")
    if not cfg.stages:
        raise GencodecError("stages: the config has no stages")
    twice = sorted({name for name in cfg.names if cfg.names.count(name) > 1})
    if twice:
        raise GencodecError(f"stages: stage names must be unique within a config; '{twice[0]}' is not")
    _check_family(cfg)
    if cfg.loss_weights.gan not in GAN_LOSSES:
        raise GencodecError(f"loss_weights.gan: expected {describe(Literal[GAN_LOSSES])}, "
                            f"got {show(cfg.loss_weights.gan)}")
    for index in range(len(cfg.stages)):
        stage = cfg.resolve(index)
        check_stage(stage)
        levels = len(stage_rungs(stage))
        wrong = [level for level in cfg.val_levels or [] if not 0 <= level < levels]
        if wrong:
            raise GencodecError(f"val_levels: stage '{stage.name}' has file levels 0..{levels - 1} (its model's rungs), "
                                f"not {wrong[0]}")


def stage_rungs(stage: Stage) -> list:
    """The file levels of a stage's model (gencodec.rungs: one per coding level unless model.rungs says)."""
    try:
        return rungs_of(stage.model, stage.model_setting("n_levels"))
    except ValueError as exc:
        raise GencodecError(f"stage '{stage.name}': model.rungs: {exc}") from exc


def _check_family(cfg: TrainConfig) -> None:
    """Model settings the family's class takes, and what the latent family needs besides."""
    init = model_class(cfg.family).__init__
    check_keywords(init, cfg.model, "model")
    for index, stage in enumerate(cfg.stages):
        check_keywords(init, stage.model, f"stages[{index}].model")
    if cfg.family == "latent":
        if cfg.data.crop_size % 64:
            raise GencodecError(f"data.crop_size: the latent family needs a multiple of 64, got {cfg.data.crop_size}")
        first = cfg.stages[0]
        if not cfg.autoencoder and not (first.init and first.init != PREVIOUS):  # else its warm start has them
            raise GencodecError("autoencoder: the latent family needs the folder of the pretrained autoencoder's "
                                "weights (e.g. ../shared/weights/taef2)")
    elif cfg.autoencoder or cfg.data.render_crop:
        raise GencodecError("autoencoder and data.render_crop apply to the latent family only (family: latent)")


def check_stage(stage: Stage) -> None:
    """Settings a stage cannot run with, found before any stage starts rather than hours in."""
    own, name, kind = stage.config, stage.name, stage.kind
    if kind not in STAGES:
        raise GencodecError(f"stage '{name}' has unknown objective '{kind}' (objectives are {', '.join(STAGES)}); "
                            "set `objective:` when the name is not one of them")
    _check_objective_settings(stage)
    if not 0.0 <= stage.final_step_fraction <= 1.0:
        raise GencodecError(f"stage '{name}': final_step_fraction must be from 0 to 1, got {own.final_step_fraction}")
    if own.loss_weights.get("gan", "hinge") not in GAN_LOSSES:
        raise GencodecError(f"stage '{name}': loss weight gan must be {describe(Literal[GAN_LOSSES])}, "
                            f"got {show(own.loss_weights['gan'])}")
    for key, value in (("steps", own.steps), ("boost_steps", own.boost_steps),
                       ("rate_quantizer_from", own.rate_quantizer_from)):
        if value < 0:
            raise GencodecError(f"stage '{name}': {key} must not be negative, got {value}")
    _check_warm_start(stage)
    _check_levels(stage)
    if own.autoencoder_from and stage.family != "latent":
        raise GencodecError(f"stage '{name}': autoencoder_from applies to the latent family only (family: latent)")


def _check_rung_training(stage: Stage) -> None:
    """rung_fraction and denoise_crop: a pixel-family decoder stage whose model has downscaled rungs."""
    own, name = stage.config, stage.name
    if own.rung_fraction is None and own.denoise_crop is None:
        return
    if stage.kind != "decoder" or stage.family != "pixel":
        raise GencodecError(f"stage '{name}': rung_fraction and denoise_crop apply to the pixel family's decoder "
                            f"stages, not a {stage.family} {stage.kind} stage")
    if own.rung_fraction is not None and not 0.0 < own.rung_fraction <= 1.0:
        raise GencodecError(f"stage '{name}': rung_fraction must be above 0 and at most 1, got {own.rung_fraction}")
    if own.rung_fraction and not any(rung.downscale > 1 for rung in stage_rungs(stage)):
        raise GencodecError(f"stage '{name}': rung_fraction needs a model with downscaled rungs (model.rungs)")
    crop = own.denoise_crop
    if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop <= 0 or crop % 64
                             or crop > stage.data.crop_size):
        raise GencodecError(f"stage '{name}': denoise_crop must be a multiple of 64 up to data.crop_size "
                            f"({stage.data.crop_size}), got {crop!r}")


def _check_objective_settings(stage: Stage) -> None:
    """Settings that apply to some objectives only, and a decoder to train."""
    own, name, kind = stage.config, stage.name, stage.kind
    given = {"final_step_fraction": own.final_step_fraction is not None, "loss_weights": bool(own.loss_weights),
             "train_synthesis": own.train_synthesis is not None, "rung_fraction": own.rung_fraction is not None,
             "denoise_crop": own.denoise_crop is not None}
    decoder_only = [key for key, present in given.items() if present]
    if kind == "codec" and decoder_only:
        raise GencodecError(f"stage '{name}' trains the codec only: '{decoder_only[0]}' has no effect there")
    if own.pixel_distortion and (kind != "codec" or stage.family != "latent" or own.pixel_distortion < 0):
        raise GencodecError(f"stage '{name}': pixel_distortion is a non-negative weight for the latent family's "
                            f"codec stages, got {own.pixel_distortion} in a {stage.family} {kind} stage")
    if own.thumb_distortion and (kind != "codec" or stage.family != "pixel" or own.thumb_distortion < 0):
        raise GencodecError(f"stage '{name}': thumb_distortion is a non-negative weight for the pixel family's "
                            f"codec stages, got {own.thumb_distortion} in a {stage.family} {kind} stage")
    _check_rung_training(stage)
    if given["train_synthesis"] and kind != "decoder":
        raise GencodecError(f"stage '{name}': train_synthesis applies to decoder stages only "
                            "(a joint stage trains the synthesis anyway)")
    if kind != "codec" and stage.loss_weights.base and not stage.train_synthesis:
        raise GencodecError(f"stage '{name}': loss weight 'base' applies only with train_synthesis: true "
                            "(a joint stage weighs the base reconstruction by its lambdas)")
    if stage.loss_weights.periodic and stage.family != "pixel":
        raise GencodecError(f"stage '{name}': loss weight 'periodic' applies to the pixel family only "
                            "(the latent family's mesh is drawn by its frozen autoencoder decoder)")
    if stage.loss_weights.periodic < 0 or stage.loss_weights.lpips_shift < 0:
        raise GencodecError(f"stage '{name}': loss weights 'periodic' and 'lpips_shift' must not be negative")
    for term in ("detail", "detail_excess"):
        weight = getattr(stage.loss_weights, term)
        if weight and (stage.family != "pixel" or weight < 0):
            raise GencodecError(f"stage '{name}': loss weight '{term}' is a non-negative weight for the pixel "
                                f"family only, got {weight} in a {stage.family} stage")
    if kind == "distill":
        _check_distill(stage)
        return
    if kind != "codec" and stage.model_setting("generative_decoder") is None:
        raise GencodecError(f"stage '{name}' trains the generative decoder, but the model config has none")


def _check_distill(stage: Stage) -> None:
    """A distill stage trains the latent family's fast autoencoder against TAEF2, from its folder."""
    name = stage.name
    if stage.family != "latent" or stage.model_setting("autoencoder") != "taef2-fast":
        raise GencodecError(f"stage '{name}': a distill stage trains the fast autoencoder of the latent family: "
                            "set family: latent and the stage's model: {autoencoder: taef2-fast}")
    if not stage.autoencoder:
        raise GencodecError(f"stage '{name}': a distill stage needs `autoencoder:`, the folder of TAEF2's "
                            "weights (its teachers)")
    if not stage.data.render_crop or stage.data.render_crop % 8:
        raise GencodecError(f"stage '{name}': a distill stage needs data.render_crop, the side of its crops "
                            f"in pixels, a multiple of 8 (got {stage.data.render_crop})")
    if stage.config.final_step_fraction is not None:
        raise GencodecError(f"stage '{name}': final_step_fraction has no effect in a distill stage")
    unused = sorted(set(stage.config.loss_weights) - {"lpips"})
    if unused:
        raise GencodecError(f"stage '{name}': a distill stage weighs LPIPS only; loss weight '{unused[0]}' "
                            "has no effect there")


def _check_warm_start(stage: Stage) -> None:
    own, name = stage.config, stage.name
    if stage.has_warm_start:
        return
    if own.level_init is not None:
        raise GencodecError(f"stage '{name}' has level_init but no warm start to take the levels from")
    if own.fresh:
        raise GencodecError(f"stage '{name}' has fresh but no warm start: every network starts afresh anyway")


def _check_levels(stage: Stage) -> None:
    """One lambda per level, and re-levelling settings that fit the ladder."""
    own, name, n = stage.config, stage.name, stage.model_setting("n_levels")
    if len(stage.lambdas) != n:
        raise GencodecError(f"stage '{name}': {len(stage.lambdas)} lambdas for the model's {n} levels")
    if own.level_init is not None and (len(own.level_init) != n or not all(0 <= s < n for s in own.level_init)):
        raise GencodecError(f"stage '{name}': level_init needs {n} source levels in [0, {n}), got {own.level_init}")
    levels = own.train_levels
    if levels is not None and (not levels or len(set(levels)) != len(levels)
                               or not all(isinstance(v, int) and 0 <= v < n for v in levels)):
        raise GencodecError(f"stage '{name}': train_levels needs distinct levels in [0, {n}), got {levels}")
    for key in ("level_init_log_gain_offsets", "level_init_log_z_gain_offsets"):
        offsets = getattr(own, key)
        if offsets is not None and len(offsets) != n:
            raise GencodecError(f"stage '{name}': {key} needs {n} offsets, got {offsets}")
