#!/usr/bin/env python
"""Train gencodec: one plain loop, run with `python` on a CPU or `accelerate launch` on GPUs.

    python train/train.py --config configs/tiny.yaml --data PHOTOS --out runs/tiny --cpu
    accelerate launch --config_file configs/accelerate/1node_8gpu.yaml \\
        train/train.py --config configs/base.yaml --out runs/base
    python train/train.py --config configs/base.yaml --out runs/base --resume latest

The config's `stages` run in order (codec, then decoder, then joint; see
gencodec.training.objectives). Each stage has its own folder in the run:

    OUT/<stage>/checkpoints/checkpoint-<step>/   accelerate state: model, optimizers,
                                                 schedulers, EMA, RNG, step
    OUT/<stage>/metrics.csv                      one row per logged step
    OUT/<stage>/model/                           the exported model (what gencodec.load reads)

A stage starts from the exported model of the stage before it (or from the
model folder its `init` names) and says so; it is done once its exported
model has its steps. `--resume latest` continues an unfinished stage from its
newest complete checkpoint. OUT/model is the final stage's export.
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import inspect
import os
import shutil
import sys
import time
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from gencodec.training.data import make_dataset
from gencodec.errors import GencodecError
from gencodec.model import GenCodecModel
from gencodec.training.objectives import STAGES, GenerativeObjective, LossWeights, codec_objective, random_levels
from gencodec.training.export import export_model

COMPLETE = "COMPLETE"  # marker written last: a checkpoint without it is ignored


class TrainState:
    """The step counter, saved and restored with the accelerate state."""

    def __init__(self):
        self.step = 0

    def state_dict(self):
        return {"step": self.step}

    def load_state_dict(self, state):
        self.step = int(state["step"])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="YAML config (see configs/)")
    p.add_argument("--out", required=True, help="run folder: one sub-folder per stage, and model/")
    p.add_argument("--data", help="training images (folder or tar shards); overrides data.train")
    p.add_argument("--resume", choices=["latest"], help="continue unfinished stages from their newest checkpoint")
    p.add_argument("--steps", type=int, help="override every stage's number of steps (smoke tests)")
    p.add_argument("--stages", help="comma-separated subset of the config's stages to run, in config order")
    p.add_argument("--lpips-weights", help="LPIPS AlexNet weights file (or set GENCODEC_LPIPS_WEIGHTS)")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")
    return p.parse_args(argv)


def load_config(path: str) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def latest_checkpoint(folder: Path) -> Path | None:
    done = [p for p in folder.glob("checkpoint-*") if (p / COMPLETE).exists()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def save_checkpoint(accelerator: Accelerator, folder: Path, step: int, keep: int) -> None:
    """save_state into a temporary folder, then rename: a kill mid-save leaves the last good one."""
    final = folder / f"checkpoint-{step}"
    tmp = folder / f".tmp-checkpoint-{step}"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / COMPLETE).write_text(str(step))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        done = sorted((p for p in folder.glob("checkpoint-*") if (p / COMPLETE).exists()),
                      key=lambda p: int(p.name.split("-")[1]))
        for old in done[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def exported_steps(folder: Path) -> int | None:
    """trained_steps of an exported model folder, or None if there is none."""
    if not (folder / "config.json").exists():
        return None
    return GenCodecModel.load_config(folder).get("trained_steps", 0)


def trained_modules(model: GenCodecModel, stage: str, train_synthesis: bool = False) -> list[torch.nn.Module]:
    """codec: all but the denoiser; decoder: the denoiser (and the base synthesis G with
    `train_synthesis`); joint: everything."""
    if stage == "codec":
        return [m for name, m in model.named_children() if name != "denoiser"]
    if stage == "decoder":
        return [model.denoiser, model.synthesis] if train_synthesis else [model.denoiser]
    return [model]


def trainable_parameters(model: GenCodecModel, stage: str, train_synthesis: bool = False) -> list[torch.nn.Parameter]:
    """The parameters of trained_modules, set to train; all others are frozen."""
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for m in trained_modules(model, stage, train_synthesis) for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params


#: Parameters of the entropy model proper: the z densities, the level gains and level biases.
#: They see small gradients (only the rate term reaches them), so they may train at a higher rate.
ENTROPY_PARAMETERS = ("latent_codec.z_prior.", "latent_codec.log_gain", "latent_codec.log_z_gain",
                      "latent_codec.scale_net.level_bias")


def parameter_groups(model: GenCodecModel, params: list[torch.nn.Parameter], lr: float,
                     entropy_lr_scale: float) -> list[dict]:
    """Optimizer groups: the entropy model's parameters at lr * entropy_lr_scale, the rest at lr."""
    wanted = {id(p) for p in params}
    entropy = [p for name, p in model.named_parameters()
               if id(p) in wanted and name.startswith(ENTROPY_PARAMETERS)]
    entropy_ids = {id(p) for p in entropy}
    groups = [{"params": [p for p in params if id(p) not in entropy_ids], "lr": lr}]
    if entropy:
        groups.append({"params": entropy, "lr": lr * entropy_lr_scale})
    return groups


def distortion_boost(stage: dict, step: int) -> float:
    """Factor on every lambda early in the codec stage: `distortion_boost` at step 0, down to 1
    (geometrically) at `boost_steps`.

    From a fresh start the rate term dominates at extreme-rate lambdas, and the
    cheapest move is to send nothing: the transforms then learn little while
    the entropy model learns to price noise. Weighting distortion up first lets
    the transforms learn to carry the picture, and the squeeze to the target
    rates follows.
    """
    boost, steps = float(stage.get("distortion_boost", 1.0)), int(stage.get("boost_steps", 0))
    if boost == 1.0 or steps <= 0 or step >= steps:
        return 1.0
    return boost ** (1.0 - step / steps)


def rate_quantizer(stage: dict, step: int) -> str:
    """How the stage prices the rate at `step`: `rate_quantizer` ("noise" or "ste", see
    HyperpriorLatentCodec) from step `rate_quantizer_from` on, noise before it."""
    if step >= int(stage.get("rate_quantizer_from", 0)):
        return stage.get("rate_quantizer", "noise")
    return "noise"


def stage_loss_weights(cfg: dict, stage: dict) -> LossWeights:
    """The decoder's loss weights: the config's `loss_weights`, updated by the stage's own."""
    merged = {**cfg.get("loss_weights", {}), **stage.get("loss_weights", {})}
    known = set(LossWeights.__dataclass_fields__)
    unknown = sorted(set(merged) - known)
    if unknown:
        raise GencodecError(f"stage '{stage['name']}': unknown loss weight '{unknown[0]}' "
                            f"(known: {', '.join(sorted(known))})")
    return LossWeights(**merged)


def stage_model_config(cfg: dict, stage: dict) -> dict:
    """The model a stage trains: the config's `model`, updated by the stage's own `model`.

    Nested settings merge key by key, so a decoder stage can add a refiner to
    the denoiser with `model: {generative_decoder: {refine_channels: 32}}`
    and keep the rest of the architecture (the warm start must still fit it).
    """
    def merge(base: dict, update: dict) -> dict:
        merged = dict(base)
        for key, value in update.items():
            merged[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) \
                else value
        return merged

    return merge(cfg["model"], stage.get("model") or {})


def check_stage(cfg: dict, stage: dict) -> None:
    """Settings a stage cannot run with, found before any stage starts rather than hours in."""
    name = stage["name"]
    kind = stage.get("objective", name)
    if kind not in STAGES:
        raise GencodecError(f"stage '{name}' has unknown objective '{kind}' (objectives are {', '.join(STAGES)}); "
                            "set `objective:` when the name is not one of them")
    decoder_only = [key for key in ("final_step_fraction", "loss_weights", "train_synthesis") if key in stage]
    if kind == "codec" and decoder_only:
        raise GencodecError(f"stage '{name}' trains the codec only: '{decoder_only[0]}' has no effect there")
    if "train_synthesis" in stage and kind != "decoder":
        raise GencodecError(f"stage '{name}': train_synthesis applies to decoder stages only "
                            "(a joint stage trains the synthesis anyway)")
    if not isinstance(stage.get("model", {}), dict):
        raise GencodecError(f"stage '{name}': model must be a mapping of model settings, got {stage['model']!r}")
    known = set(inspect.signature(GenCodecModel.__init__).parameters) - {"self"}
    unknown = sorted(set(stage.get("model", {})) - known)
    if unknown:
        raise GencodecError(f"stage '{name}': unknown model setting '{unknown[0]}'")
    fresh = stage.get("fresh", [])
    if not isinstance(fresh, list) or not set(fresh) <= set(GenCodecModel.NETWORKS):
        raise GencodecError(f"stage '{name}': fresh must be a list of networks among "
                            f"{', '.join(GenCodecModel.NETWORKS)}, got {fresh!r}")
    if not isinstance(stage.get("train_synthesis", False), bool):
        raise GencodecError(f"stage '{name}': train_synthesis must be true or false, got {stage['train_synthesis']!r}")
    if not 0.0 <= float(stage.get("final_step_fraction", 0.0)) <= 1.0:
        raise GencodecError(f"stage '{name}': final_step_fraction must be from 0 to 1, "
                            f"got {stage['final_step_fraction']}")
    if kind != "codec" and stage_loss_weights(cfg, stage).base and not stage.get("train_synthesis", False):
        raise GencodecError(f"stage '{name}': loss weight 'base' applies only with train_synthesis: true "
                            "(a joint stage weighs the base reconstruction by its lambdas)")


def flat_config(cfg: dict, **extra) -> dict:
    """The config as flat scalar key/values, as trackers (TensorBoard hparams) want it."""
    flat = dict(extra)

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        else:
            flat[prefix[:-1]] = value if isinstance(value, (int, float, str, bool)) else str(value)

    walk("", {k: v for k, v in cfg.items() if k != "stages"})
    return flat


class Validation:
    """Periodic validation on a held-out folder (data.val): real files, bpp, PSNR, LPIPS, a grid."""

    def __init__(self, cfg: dict, args, stage_dir: Path, accelerator: Accelerator):
        from gencodec.training.validation import load_validation_images
        self.every = cfg.get("validate_every", 0)
        folder = cfg["data"].get("val")
        self.images = load_validation_images(folder, cfg.get("val_images", 4)) if folder and self.every else []
        self.levels = cfg.get("val_levels") or [0, len(cfg["lambdas"]) - 1]
        self.out_dir = stage_dir / "val"
        self.device = accelerator.device
        self.lpips_weights = args.lpips_weights

    def due(self, step: int, last: int) -> bool:
        return bool(self.images) and (step % self.every == 0 or step == last)

    def run(self, model: GenCodecModel, objective, step: int) -> dict[str, float]:
        from gencodec.training.validation import validate
        lpips_net = objective.lpips if objective is not None else self._own_lpips()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return validate(model, self.images, self.levels, out_dir=self.out_dir, step=step, lpips_net=lpips_net,
                        device=self.device)

    def _own_lpips(self):
        """The codec stage has no LPIPS net of its own: load one once, or go without if none is found."""
        if not hasattr(self, "_lpips"):
            from gencodec.evaluation.perceptual import load_lpips
            try:
                self._lpips = load_lpips(self.lpips_weights).to(self.device)
            except GencodecError as exc:
                print(f"validation without LPIPS: {exc}")
                self._lpips = None
        return self._lpips


def write_rank_report(accelerator: Accelerator, model: GenCodecModel, dataset, stage_dir: Path) -> None:
    """Every process records a digest of its parameters and the size of its data share.

    Identical digests on all ranks show that distributed training kept the
    replicas in step; the share sizes show that each process read its own part.
    """
    digest = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    rank = accelerator.process_index
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / f"rank{rank}.params.sha256").write_text(digest.hexdigest() + "\n")
    (stage_dir / f"rank{rank}.share.txt").write_text(f"{dataset.share_size}\n")


def run_stage(args, cfg: dict, index: int, out: Path) -> Path:
    """Train one stage to its step count; returns its exported model folder."""
    stage = cfg["stages"][index]
    name = stage["name"]
    # What the stage trains (checked by check_stage); its name (and folder) may differ,
    # so that a schedule can, say, run a second codec stage with other lambdas.
    kind = stage.get("objective", name)
    stage_dir = out / name
    steps = args.steps or stage["steps"]
    optim_cfg = {**cfg["optim"], **stage.get("optim", {})}
    trackers = cfg.get("trackers", ["tensorboard"])
    accelerator = Accelerator(cpu=args.cpu, mixed_precision=optim_cfg.get("mixed_precision", "no"),
                              gradient_accumulation_steps=optim_cfg.get("gradient_accumulation_steps", 1),
                              log_with=trackers or None, project_dir=str(stage_dir))

    # Warm start, explicitly: the previous stage's export, or the folder `init` names.
    init = stage.get("init", "previous" if index > 0 else None)
    if init == "previous":
        init = out / cfg["stages"][index - 1]["name"] / "model"
    if stage.get("level_init") and not init:
        raise GencodecError(f"stage '{name}' has level_init but no warm start to take the levels from")
    if stage.get("fresh") and not init:
        raise GencodecError(f"stage '{name}' has fresh but no warm start: every network starts afresh anyway")
    set_seed(cfg.get("seed", 0) + index, device_specific=True)  # before building: the init is seeded too
    model_cfg = stage_model_config(cfg, stage)
    model = GenCodecModel(**model_cfg)
    start_steps = 0
    if init:
        init = Path(init)
        if exported_steps(init) is None:
            raise GencodecError(f"stage '{name}' starts from '{init}', which holds no exported model; "
                                "run the stage before it first")
        try:
            added = model.load_warm_start(GenCodecModel.from_pretrained(init, low_cpu_mem_usage=False).state_dict(),
                                          fresh=tuple(stage.get("fresh", ())))
        except ValueError as exc:
            raise GencodecError(f"stage '{name}': the warm start {init} does not fit the config's model: {exc}") \
                from None
        start_steps = exported_steps(init)
        accelerator.print(f"stage '{name}': warm start from {init} ({start_steps} steps)")
        for module in added:
            accelerator.print(f"stage '{name}': {module} is new (it starts as the identity)")
        for network in stage.get("fresh", ()):
            accelerator.print(f"stage '{name}': the {network} starts afresh, not from the warm start")
        if stage.get("level_init"):  # re-levelling: level l starts from the warm start's level_init[l]
            try:
                model.latent_codec.copy_levels(list(stage["level_init"]), stage.get("level_init_log_gain_offsets"),
                                               stage.get("level_init_log_z_gain_offsets"))
            except ValueError as exc:
                raise GencodecError(f"stage '{name}': level_init: {exc}") from None
            accelerator.print(f"stage '{name}': levels start from levels {list(stage['level_init'])}")
    done = exported_steps(stage_dir / "model")
    if done is not None and done >= start_steps + steps:
        accelerator.print(f"stage '{name}' is done ({stage_dir / 'model'}); skipping")
        return stage_dir / "model"
    if kind != "codec" and model.denoiser is None:
        raise GencodecError(f"stage '{name}' trains the generative decoder, but the model config has none")

    data_cfg = {**cfg["data"], **stage.get("data", {})}  # a stage may change crops and batches
    data_path = args.data or data_cfg.get("train")
    if not data_path:
        raise GencodecError("no training data: pass --data or set data.train in the config")
    dataset = make_dataset(data_path, data_cfg["crop_size"], rank=accelerator.process_index,
                           world_size=accelerator.num_processes, seed=cfg.get("seed", 0) + index)
    loader = torch.utils.data.DataLoader(dataset, batch_size=data_cfg["batch_size"],
                                         num_workers=data_cfg.get("num_workers", 0), drop_last=True)

    # A decoder stage may train the base synthesis G too: G only turns y^ into
    # pixels, so the files keep their bytes (the codec proper stays frozen).
    train_synthesis = bool(stage.get("train_synthesis", False))
    params = trainable_parameters(model, kind, train_synthesis)
    groups = parameter_groups(model, params, optim_cfg["lr"], optim_cfg.get("entropy_lr_scale", 1.0))
    optimizer = torch.optim.AdamW(groups, lr=optim_cfg["lr"], betas=tuple(optim_cfg.get("betas", (0.9, 0.999))),
                                  weight_decay=optim_cfg.get("weight_decay", 0.0))
    scheduler = get_scheduler(optim_cfg.get("schedule", "cosine"), optimizer,
                              num_warmup_steps=optim_cfg.get("warmup_steps", 0), num_training_steps=steps)
    state = TrainState()
    objective = None
    if kind == "codec":
        # The dataset already splits files between processes: the loader is not re-sharded.
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    else:
        from gencodec.training.discriminator import ConditionalDiscriminator
        from gencodec.evaluation.perceptual import load_lpips
        disc_cfg = cfg.get("discriminator", {})
        discriminator = ConditionalDiscriminator(model_cfg.get("latent_channels", 128),
                                                 channels=tuple(disc_cfg.get("channels", (64, 128, 256, 256))))
        d_optimizer = torch.optim.AdamW(discriminator.parameters(), lr=disc_cfg.get("lr", 1e-4), betas=(0.5, 0.9))
        model, optimizer, scheduler, discriminator, d_optimizer = accelerator.prepare(
            model, optimizer, scheduler, discriminator, d_optimizer)
        lpips_net = load_lpips(args.lpips_weights).to(accelerator.device)
        objective = GenerativeObjective(lpips_net, discriminator, stage_loss_weights(cfg, stage),
                                        train_codec=(kind == "joint"),
                                        final_step_fraction=float(stage.get("final_step_fraction", 0.0)),
                                        train_synthesis=(kind == "joint" or train_synthesis))
    raw_model = accelerator.unwrap_model(model)
    ema = None

    def averaged(m: GenCodecModel) -> list[torch.nn.Parameter]:
        """What the EMA averages: the networks a decoder stage trains."""
        return [p for mod in trained_modules(m, "decoder", train_synthesis) for p in mod.parameters()]

    if kind != "codec" and cfg.get("ema_decay"):
        ema = EMAModel(averaged(raw_model), decay=cfg["ema_decay"])
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    accelerator.register_for_checkpointing(state)

    # The loader draws its seed from the global RNG when iterated: draw it before
    # a resume restores the RNG, so the restored state is exactly the saved one.
    batches = iter(loader)
    ckpt_dir = stage_dir / "checkpoints"
    if args.resume:
        resume = latest_checkpoint(ckpt_dir)
        if resume is not None:
            accelerator.load_state(str(resume))
            accelerator.print(f"stage '{name}': resumed from {resume} at step {state.step}")
    stage_dir.mkdir(parents=True, exist_ok=True)
    metrics_file = stage_dir / "metrics.csv"
    if trackers:
        accelerator.init_trackers("tensorboard", config=flat_config(cfg, stage=name, steps=steps))
    validation = Validation(cfg, args, stage_dir, accelerator) if accelerator.is_main_process else None
    lambdas = torch.tensor(stage.get("lambdas", cfg["lambdas"]), dtype=torch.float32, device=accelerator.device)
    if len(lambdas) != raw_model.n_levels:
        raise GencodecError(f"config has {len(lambdas)} lambdas for {raw_model.n_levels} levels")

    bar = tqdm(total=steps, initial=state.step, desc=name, disable=not accelerator.is_main_process,
               dynamic_ncols=True)
    model.train()
    started, first_step = time.time(), state.step
    while state.step < steps:
        x = next(batches).to(accelerator.device)
        level = random_levels(x.shape[0], raw_model.n_levels, x.device)
        raw_model.latent_codec.rate_quantizer = rate_quantizer(stage, state.step)
        with accelerator.accumulate(model):
            with accelerator.autocast():
                if objective is None:
                    boost = distortion_boost(stage, state.step)
                    loss, metrics = codec_objective(model, x, level, lambdas * boost)
                else:
                    loss, metrics = objective.generator_loss(model, x, level, lambdas)
            if not torch.isfinite(loss):
                raise GencodecError(f"non-finite loss ({loss.item()}) in stage '{name}' at step {state.step}; "
                                    "lower the learning rate or resume from an earlier checkpoint")
            accelerator.backward(loss)
            if accelerator.sync_gradients and optim_cfg.get("grad_clip"):
                accelerator.clip_grad_norm_(params, optim_cfg["grad_clip"])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        if objective is not None:
            with accelerator.accumulate(discriminator):
                d_loss, d_metrics = objective.discriminator_loss()
                d_optimizer.zero_grad(set_to_none=True)  # drop what the generator's loss left on D
                accelerator.backward(d_loss)
                d_optimizer.step()
                d_optimizer.zero_grad(set_to_none=True)
            metrics.update(d_metrics)
        if not accelerator.sync_gradients:
            continue
        if ema is not None:
            ema.step(averaged(raw_model))
        state.step += 1
        bar.update(1)
        if state.step % cfg.get("log_every", 10) == 0 or state.step == steps:
            row = {"step": state.step, "lr": scheduler.get_last_lr()[0],
                   "images_per_s": (state.step - first_step) * x.shape[0] * accelerator.num_processes
                   / max(time.time() - started, 1e-9)}
            row.update({k: accelerator.gather(v.float()[None]).mean().item() for k, v in metrics.items()})
            bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k not in ("step", "lr")})
            accelerator.log(row, step=start_steps + state.step)
            if accelerator.is_main_process:
                new = not metrics_file.exists()
                with open(metrics_file, "a", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=list(row))
                    if new:
                        writer.writeheader()
                    writer.writerow(row)
        if validation is not None and validation.due(state.step, steps):
            val_metrics = validation.run(raw_model, objective, start_steps + state.step)
            accelerator.log(val_metrics, step=start_steps + state.step)
            bar.write(" ".join(f"{k}={v:.4g}" for k, v in val_metrics.items()))
        if state.step % cfg.get("checkpoint_every", 1000) == 0 or state.step == steps:
            save_checkpoint(accelerator, ckpt_dir, state.step, cfg.get("keep_checkpoints", 3))
    bar.close()
    write_rank_report(accelerator, raw_model, dataset, stage_dir)
    if accelerator.is_main_process:
        export = copy.deepcopy(raw_model)
        if ema is not None:  # the release uses the averaged decoder weights
            ema.copy_to(averaged(export))
        export_model(export, stage_dir / "model", start_steps + steps)
        accelerator.print(f"stage '{name}': exported {stage_dir / 'model'}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return stage_dir / "model"


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = load_config(args.config)
    out = Path(args.out)
    names = [s["name"] for s in cfg["stages"]]
    if len(set(names)) != len(names):
        raise GencodecError("stage names must be unique within a config")
    wanted = args.stages.split(",") if args.stages else names
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise GencodecError(f"stage '{unknown[0]}' is not in the config (it has {', '.join(names)})")
    for stage in cfg["stages"]:
        check_stage(cfg, stage)
    final = None
    for index, name in enumerate(names):
        if name in wanted:
            final = run_stage(args, cfg, index, out)
    if final is not None and final == out / names[-1] / "model" and (final / "config.json").exists():
        if (out / "model").exists():
            shutil.rmtree(out / "model")
        shutil.copytree(final, out / "model")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GencodecError as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        sys.exit(1)
