"""The stage runner: the stages of a TrainConfig in turn, each one plain accelerate loop.

`run(cfg, options)` trains the stages `options` asks for, in config order
(train/train.py is its command line). Each stage has its own folder in the run:

    OUT/<stage>/checkpoints/   accelerate state (gencodec.training.checkpoints)
    OUT/<stage>/metrics.csv    one row per logged step (gencodec.training.tracking)
    OUT/<stage>/model/         the exported model (what gencodec.load reads)

A stage starts from its warm start (gencodec.training.warm_start) and is done
once its exported model has its steps; `resume` continues an unfinished stage
from its newest complete checkpoint. OUT/model is the final stage's export.
"""

from __future__ import annotations

import copy
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import broadcast, set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from ..encoder_search import SearchSettings
from ..errors import GencodecError
from ..fileio import atomic_output
from ..rungs import rungs_of
from .checkpoints import TrainState, exported_steps, latest_checkpoint, remove_unfinished_saves, save_checkpoint
from .config import Stage, TrainConfig
from .data import make_dataset
from .export import export_model
from .objectives import DistillObjective, GenerativeObjective, Space, codec_objective, random_levels
from .parameters import averaged_parameters, parameter_groups, trainable_parameters
from .rung_inputs import RungInputs, downscaled_rungs, random_crop, rung_inputs
from .stage_weights import load_stage_weights
from .tracking import MetricsLog, PeriodicValidation, flat_config, write_rank_report
from .warm_start import build_stage_model


@dataclass
class RunOptions:
    """What the command line adds to a config (train/train.py)."""

    out: Path                          # the run folder
    data: str | None = None            # training images; overrides data.train
    resume: bool = False               # continue unfinished stages from their newest checkpoint
    steps: int | None = None           # every stage's number of steps (smoke tests)
    stages: list[str] | None = None    # the stages to run (in config order); None: all
    lpips_weights: str | None = None   # LPIPS AlexNet weights (or GENCODEC_LPIPS_WEIGHTS)
    cpu: bool = False                  # train on the CPU even if a GPU is present
    deadline: float | None = None      # time.monotonic() after which a stage stops (checkpointed; 2 steps at least)
    stage_weights: Path | None = None  # a stage's trained weights to start from (gencodec.training.stage_weights)
    channels_last: bool = False        # the model and batches in NHWC (faster convolutions on some GPUs)


def run(cfg: TrainConfig, options: RunOptions) -> Path | None:
    """Train the stages asked for, in config order; returns the last one's export folder."""
    wanted = options.stages or cfg.names
    unknown = [n for n in wanted if n not in cfg.names]
    if unknown:
        raise GencodecError(f"stage '{unknown[0]}' is not in the config (it has {', '.join(cfg.names)})")
    final = None
    for index, name in enumerate(cfg.names):
        if name in wanted:
            final = run_stage(cfg, cfg.resolve(index), options)
    last = options.out / cfg.names[-1] / "model"
    if final == last and (last / "config.json").exists() and PartialState().is_main_process:
        with atomic_output(options.out / "model") as tmp:
            shutil.copytree(last, tmp)
    PartialState().destroy_process_group()  # once every stage is done (see StageRun.finish)
    return final


def run_stage(cfg: TrainConfig, stage: Stage, options: RunOptions) -> Path:
    """Train one stage to its step count (unless its export has them); returns its exported model folder."""
    stage_run = StageRun(cfg, stage, options)
    if stage_run.done():
        stage_run.accelerator.print(f"stage '{stage.name}' is done ({stage_run.export_dir}); skipping")
        return stage_run.export_dir
    stage_run.setup()
    stage_run.train()
    stage_run.finish()
    return stage_run.export_dir


class StageRun:
    """One stage's training: the model from its warm start (on construction), then setup(), train(), finish()."""

    def __init__(self, cfg: TrainConfig, stage: Stage, options: RunOptions):
        self.cfg, self.stage, self.options = cfg, stage, options
        self.dir = options.out / stage.name
        self.export_dir = self.dir / "model"
        self.checkpoint_dir = self.dir / "checkpoints"
        self.steps = options.steps or stage.config.steps
        self.accelerator = Accelerator(cpu=options.cpu, mixed_precision=stage.optim.mixed_precision,
                                       gradient_accumulation_steps=stage.optim.gradient_accumulation_steps,
                                       log_with=cfg.trackers or None, project_dir=str(self.dir))
        set_seed(cfg.seed + stage.index, device_specific=True)  # before building: the init is seeded too
        self.model, self.start_steps = build_stage_model(stage, options.out, self.accelerator.print)
        if options.stage_weights is not None:
            self.start_steps += load_stage_weights(self.model, options.stage_weights, stage.name)
            self.accelerator.print(f"stage '{stage.name}': trained weights from {options.stage_weights} "
                                   f"({self.start_steps} steps in all)")
        if options.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.images_per_second: float | None = None  # measured by train(), after its first step

    def done(self) -> bool:
        steps = exported_steps(self.export_dir)
        return steps is not None and steps >= self.start_steps + self.steps

    def setup(self) -> None:
        """Data, optimizers, objective, EMA, the resumed state, and what the stage records."""
        self._licences()  # fails now, not at the export hours later
        self._data()
        self._optimizers()
        self._objective()
        self._ema_and_state()
        # The rungs a stage with rung_fraction draws from, read once from the model's config.
        self.rung_ladder = downscaled_rungs(rungs_of(self.raw_model.config, self.raw_model.n_levels))
        # The loader draws its seed from the global RNG when iterated: draw it before
        # a resume restores the RNG, so the restored state is exactly the saved one.
        self.batches = iter(self.loader)
        self._resume()
        self._tracking()

    def _data(self) -> None:
        data = self.stage.data
        path = self.options.data or data.train
        if not path:
            raise GencodecError("no training data: pass --data or set data.train in the config")
        acc = self.accelerator
        shares = dict(rank=acc.process_index, world_size=acc.num_processes, seed=self.cfg.seed + self.stage.index)
        if self.stage.family == "latent":  # cached latents (and, for LPIPS, their images)
            from .latents import LatentShardDataset, check_latent_cache
            check_latent_cache(path)
            with_images = self.stage.kind != "codec" or bool(self.stage.config.pixel_distortion)  # LPIPS, distill
            self.dataset = LatentShardDataset(path, data.crop_size, with_images=with_images, **shares)
        else:
            self.dataset = make_dataset(path, data.crop_size, **shares)
        # The dataset already splits files between processes: the loader is not re-sharded.
        self.loader = torch.utils.data.DataLoader(self.dataset, batch_size=data.batch_size,
                                                  num_workers=data.num_workers, drop_last=True)

    def _optimizers(self) -> None:
        """AdamW over what the stage trains (a decoder stage may train the base synthesis G too: G only
        turns y^ into pixels, so the files keep their bytes, but for the encoder search), and its
        learning-rate schedule."""
        optim, stage = self.stage.optim, self.stage
        self.params = trainable_parameters(self.model, stage.kind, stage.train_synthesis)
        groups = parameter_groups(self.model, self.params, optim.lr, optim.entropy_lr_scale)
        self.optimizer = torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas),
                                           weight_decay=optim.weight_decay)
        self.scheduler = get_scheduler(optim.schedule, self.optimizer, num_warmup_steps=optim.warmup_steps,
                                       num_training_steps=self.steps)

    def _objective(self) -> None:
        """The codec objective, or the generative one with its discriminator and LPIPS net; then prepare."""
        acc, stage = self.accelerator, self.stage
        self.objective = self.discriminator = self.d_optimizer = None
        if stage.kind == "codec":
            self.model, self.optimizer, self.scheduler = acc.prepare(self.model, self.optimizer, self.scheduler)
            return
        from ..evaluation.perceptual import load_lpips
        if stage.kind == "distill":
            from ..nn.taef2 import load_taef2
            teachers = [t.to(acc.device) for t in load_taef2(stage.autoencoder)]
            self.model, self.optimizer, self.scheduler = acc.prepare(self.model, self.optimizer, self.scheduler)
            self.objective = DistillObjective(*teachers, load_lpips(self.options.lpips_weights).to(acc.device),
                                              stage.loss_weights, Space.of(acc.unwrap_model(self.model),
                                                                           stage.data.render_crop))
            return
        from .discriminator import ConditionalDiscriminator
        disc = self.cfg.discriminator
        # It judges the denoiser's output in the model's working space (for the latent family, the
        # latent: see gencodec.training.discriminator), given y^ upsampled to that resolution.
        den, synthesis = self.model.denoiser, self.model.synthesis
        discriminator = ConditionalDiscriminator(self.stage.model_setting("latent_channels"),
                                                 channels=tuple(disc.channels),
                                                 image_channels=den.residual_channels // den.fold ** 2,
                                                 upsample=synthesis.upsampling)
        d_optimizer = torch.optim.AdamW(discriminator.parameters(), lr=disc.lr, betas=(0.5, 0.9))
        self.model, self.optimizer, self.scheduler, self.discriminator, self.d_optimizer = acc.prepare(
            self.model, self.optimizer, self.scheduler, discriminator, d_optimizer)
        lpips_net = load_lpips(self.options.lpips_weights).to(acc.device)
        self.objective = GenerativeObjective(lpips_net, self.discriminator, stage.loss_weights,
                                             train_codec=(stage.kind == "joint"),
                                             final_step_fraction=stage.final_step_fraction,
                                             train_synthesis=(stage.kind == "joint" or stage.train_synthesis),
                                             space=Space.of(acc.unwrap_model(self.model), stage.data.render_crop))

    def _ema_and_state(self) -> None:
        """The EMA of the decoder's weights (the export uses it) and the step, both checkpointed."""
        acc = self.accelerator
        self.raw_model = acc.unwrap_model(self.model)
        self.ema = None
        if self.stage.kind in ("decoder", "joint") and self.cfg.ema_decay:
            self.ema = EMAModel(self._averaged(self.raw_model), decay=self.cfg.ema_decay)
            self.ema.to(acc.device)
            acc.register_for_checkpointing(self.ema)
        self.state = TrainState()
        acc.register_for_checkpointing(self.state)

    def _averaged(self, model) -> list[torch.nn.Parameter]:
        return averaged_parameters(model, self.stage.train_synthesis)

    def _resume(self) -> None:
        if self.accelerator.is_main_process:
            remove_unfinished_saves(self.checkpoint_dir)
        if not self.options.resume:
            return
        latest = latest_checkpoint(self.checkpoint_dir)
        if latest is not None:
            self.accelerator.load_state(str(latest))
            self.accelerator.print(f"stage '{self.stage.name}': resumed from {latest} at step {self.state.step}")

    def _tracking(self) -> None:
        acc, cfg = self.accelerator, self.cfg
        self.dir.mkdir(parents=True, exist_ok=True)
        if cfg.trackers:
            acc.init_trackers("tensorboard", config=flat_config(cfg, stage=self.stage.name, steps=self.steps))
        self.metrics_log = MetricsLog(acc, self.dir / "metrics.csv", cfg.log_every, last=self.steps,
                                      first=self.state.step, offset=self.start_steps)
        self.validation = PeriodicValidation(cfg, self.stage, self.dir, acc.device, self.options.lpips_weights) \
            if acc.is_main_process else None
        self.lambdas = torch.tensor(self.stage.lambdas, dtype=torch.float32, device=acc.device)

    def train(self) -> None:
        """The loop: a generator step (and a discriminator step), then the EMA, logs, validation, checkpoints."""
        acc, state = self.accelerator, self.state
        bar = tqdm(total=self.steps, initial=state.step, desc=self.stage.name, disable=not acc.is_main_process,
                   dynamic_ncols=True)
        self.model.train()
        first_step, timed_from = state.step, None
        while state.step < self.steps:
            x, image = self._split(next(self.batches))
            metrics = self.generator_step(x, image)
            if self.discriminator is not None:
                metrics.update(self.discriminator_step())
            if not acc.sync_gradients:
                continue
            if self.ema is not None:
                self.ema.step(self._averaged(self.raw_model))
            state.step += 1
            bar.update(1)
            if timed_from is None:  # the first step warms kernels up: throughput counts from its end
                timed_from = (_synchronized(acc.device), state.step)
            if self.metrics_log.due(state.step):
                row = self.metrics_log.log(state.step, self.scheduler.get_last_lr()[0], x.shape[0], metrics)
                bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k not in ("step", "lr")})
            if self.validation is not None and self.validation.due(state.step, self.steps):
                self.validate(bar)
            # A deadline stops a stage after its second step at the soonest: one to warm up, one to time.
            late = state.step - first_step >= 2 and self._out_of_time()
            if state.step % self.cfg.checkpoint_every == 0 or state.step == self.steps or late:
                save_checkpoint(acc, self.checkpoint_dir, state.step, self.cfg.keep_checkpoints)
            if late:
                acc.print(f"stage '{self.stage.name}': out of time at step {state.step} of {self.steps}")
                break
        bar.close()
        if timed_from is not None and state.step > timed_from[1]:
            images = (state.step - timed_from[1]) * self.stage.data.batch_size * acc.num_processes \
                * self.stage.optim.gradient_accumulation_steps
            self.images_per_second = images / (_synchronized(acc.device) - timed_from[0])
        self.steps_run = state.step - first_step

    def _out_of_time(self) -> bool:
        """Whether the deadline has passed (every process agrees: the main process decides)."""
        if self.options.deadline is None:
            return False
        late = torch.tensor([time.monotonic() >= self.options.deadline], device=self.accelerator.device)
        return bool(broadcast(late, from_process=0).item())

    def _split(self, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A batch -> (the model's input in its working space, the images where there are any), on the device."""
        device = self.accelerator.device
        layout = torch.channels_last if self.options.channels_last else torch.contiguous_format
        if isinstance(batch, dict):  # the latent family: {"latent", "image"}
            image = batch.get("image")
            return (batch["latent"].to(device, memory_format=layout),
                    None if image is None else image.to(device, memory_format=layout))
        batch = batch.to(device, memory_format=layout)
        return batch, batch

    def generator_step(self, x: torch.Tensor, image: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One optimizer step of the model (or one micro-batch of it, with gradient accumulation)."""
        acc, own, step = self.accelerator, self.stage.config, self.state.step
        rungs = rung_photos = None
        if own.rung_fraction or own.denoise_crop:
            x, rungs, rung_photos = self._rung_batch(x)
            image = x
        level = random_levels(x.shape[0], self.raw_model.n_levels, x.device, levels=own.train_levels)
        self.raw_model.latent_codec.rate_quantizer = own.rate_quantizer_at(step)
        with acc.accumulate(self.model):
            with acc.autocast():
                if self.objective is None:
                    loss, metrics = codec_objective(self.model, x, level, self.lambdas * own.boost_at(step),
                                                    Space.of(self.raw_model, self.stage.data.render_crop), image,
                                                    own.pixel_distortion, own.thumb_distortion)
                else:
                    loss, metrics = self.objective.generator_loss(self.model, x, level, self.lambdas, image,
                                                                  rungs, rung_photos)
            if not torch.isfinite(loss):
                raise GencodecError(f"non-finite loss ({loss.item()}) in stage '{self.stage.name}' at step {step}; "
                                    "lower the learning rate or resume from an earlier checkpoint")
            acc.backward(loss)
            if acc.sync_gradients and self.stage.optim.grad_clip:
                acc.clip_grad_norm_(self.params, self.stage.optim.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        return metrics

    def _rung_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, RungInputs | None, torch.Tensor | None]:
        """A batch of crops -> (the samples as they are, the rung samples' inputs, their photos), each cut to
        denoise_crop: the last round(rung_fraction x batch) crops go through the model's downscaled rungs
        whole (gencodec.training.rung_inputs), before they are cut."""
        own = self.stage.config
        n_rungs = round((own.rung_fraction or 0.0) * x.shape[0])
        plain, photos = x[:x.shape[0] - n_rungs], x[x.shape[0] - n_rungs:]
        rungs = None
        if n_rungs:
            rungs = rung_inputs(self.raw_model, photos, self.rung_ladder)
        crop = own.denoise_crop
        if crop is None:
            return plain, rungs, (photos if n_rungs else None)
        plain = random_crop([plain], crop)[0]
        if not n_rungs:
            return plain, None, None
        photos, pictures, low_pass = random_crop([photos, rungs.pictures, rungs.low_pass], crop)
        return plain, RungInputs(pictures, rungs.levels, low_pass), photos

    def discriminator_step(self) -> dict[str, torch.Tensor]:
        """One step of the discriminator on the generator step's real and generated images."""
        with self.accelerator.accumulate(self.discriminator):
            d_loss, d_metrics = self.objective.discriminator_loss()
            self.d_optimizer.zero_grad(set_to_none=True)  # drop what the generator's loss left on D
            self.accelerator.backward(d_loss)
            self.d_optimizer.step()
            self.d_optimizer.zero_grad(set_to_none=True)
        return d_metrics

    def validate(self, bar) -> None:
        step = self.start_steps + self.state.step
        lpips_net = self.objective.lpips if self.objective is not None else None
        val_metrics = self.validation.run(self.raw_model, lpips_net, step)
        self.accelerator.log(val_metrics, step=step)
        bar.write(" ".join(f"{k}={v:.4g}" for k, v in val_metrics.items()))

    def _licences(self) -> dict[str, Path]:
        """The licence of the pretrained weights a latent-family model holds, to ship beside them."""
        if self.stage.family != "latent":
            return {}
        from ..latent_model import LICENSE_NAME
        init = self.stage.warm_start(self.options.out)
        candidates = ([init / LICENSE_NAME] if init is not None else []) + (
            [Path(self.stage.autoencoder).expanduser() / "LICENSE"] if self.stage.autoencoder else [])
        found = next((path for path in candidates if path.is_file()), None)
        if found is None:
            raise GencodecError(f"stage '{self.stage.name}': the autoencoder's licence is missing "
                                f"(looked for {', '.join(map(str, candidates))})")
        return {LICENSE_NAME: found}

    def finish(self) -> None:
        """Every process's report, then the export (with the EMA's weights, where there is one)."""
        acc = self.accelerator
        write_rank_report(acc, self.raw_model, self.dataset.share_size, self.dir)
        if acc.is_main_process:
            export = copy.deepcopy(self.raw_model)
            if self.ema is not None:  # the release uses the averaged decoder weights
                self.ema.copy_to(self._averaged(export))
            # The encoder searches for codes on the trade-off the codec trained for (gencodec.encoder_search).
            export.encoder_search = SearchSettings(tuple(float(v) for v in self.stage.lambdas))
            export_model(export, self.export_dir, self.start_steps + self.state.step, files=self._licences())
            acc.print(f"stage '{self.stage.name}': exported {self.export_dir}")
        acc.wait_for_everyone()
        # Not acc.end_training(): it also destroys the process group, which the next stage,
        # in the same processes, still needs.
        for tracker in acc.trackers:
            tracker.finish()


def _synchronized(device: torch.device) -> float:
    """A clock reading once the device's queued work is done (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
