#!/usr/bin/env python
"""Train gencodec: one plain loop, run with `python` on a CPU or `accelerate launch` on GPUs.

    python train/train.py --config configs/tiny.yaml --data PHOTOS --out runs/tiny
    accelerate launch --config_file configs/accelerate/1node_4gpu.yaml \
        train/train.py --config configs/base.yaml --out runs/base
    python train/train.py --config configs/base.yaml --out runs/base --resume latest

Layout of a run folder:
    checkpoints/checkpoint-<step>/   accelerate state (model, optimizer, scheduler, RNG, step)
    metrics.csv                      one row per logged step
    model/                           the exported model: what gencodec.load() reads
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
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
from tqdm.auto import tqdm

from gencodec.data import make_dataset
from gencodec.errors import GencodecError
from gencodec.model import GenCodecModel
from gencodec.objectives import codec_objective, random_levels

OBJECTIVES = {"codec": codec_objective}
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
    p.add_argument("--out", required=True, help="run folder: checkpoints, metrics.csv, model/")
    p.add_argument("--data", help="training images (folder or tar shards); overrides data.train")
    p.add_argument("--resume", help="'latest' or a checkpoint folder to continue from")
    p.add_argument("--steps", type=int, help="override the total number of steps (all stages)")
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


def export_model(model: GenCodecModel, out: Path, step: int) -> None:
    """The release folder: build the entropy tables, record the steps, save_pretrained atomically."""
    model = copy.deepcopy(model).float().cpu().eval()
    model.update_tables()
    model.register_to_config(trained_steps=step)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = load_config(args.config)
    out = Path(args.out)
    optim_cfg = cfg["optim"]
    accelerator = Accelerator(
        cpu=args.cpu,
        mixed_precision=optim_cfg.get("mixed_precision", "no"),
        gradient_accumulation_steps=optim_cfg.get("gradient_accumulation_steps", 1),
    )
    set_seed(cfg.get("seed", 0), device_specific=True)

    stages = cfg["stages"]
    total_steps = args.steps or sum(s["steps"] for s in stages)
    model = GenCodecModel(**cfg["model"])
    lambdas = torch.tensor(cfg["lambdas"], dtype=torch.float32)
    if len(lambdas) != model.n_levels:
        raise GencodecError(f"config has {len(lambdas)} lambdas for {model.n_levels} levels")

    data_cfg = cfg["data"]
    data_path = args.data or data_cfg.get("train")
    if not data_path:
        raise GencodecError("no training data: pass --data or set data.train in the config")
    dataset = make_dataset(data_path, data_cfg["crop_size"], rank=accelerator.process_index,
                           world_size=accelerator.num_processes, seed=cfg.get("seed", 0))
    loader = torch.utils.data.DataLoader(dataset, batch_size=data_cfg["batch_size"],
                                         num_workers=data_cfg.get("num_workers", 0), drop_last=True)

    optimizer = torch.optim.AdamW(model.parameters(), lr=optim_cfg["lr"],
                                  betas=tuple(optim_cfg.get("betas", (0.9, 0.999))),
                                  weight_decay=optim_cfg.get("weight_decay", 0.0))
    scheduler = get_scheduler(optim_cfg.get("schedule", "cosine"), optimizer,
                              num_warmup_steps=optim_cfg.get("warmup_steps", 0),
                              num_training_steps=total_steps)
    # The dataset already splits files between processes, so the loader is not re-sharded.
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    state = TrainState()
    accelerator.register_for_checkpointing(state)

    ckpt_dir = out / "checkpoints"
    if args.resume:
        resume = latest_checkpoint(ckpt_dir) if args.resume == "latest" else Path(args.resume)
        if resume is None:
            accelerator.print(f"no complete checkpoint in {ckpt_dir}; starting from scratch")
        else:
            accelerator.load_state(str(resume))
            accelerator.print(f"resumed from {resume} at step {state.step}")

    out.mkdir(parents=True, exist_ok=True)
    metrics_file = out / "metrics.csv"
    stage_ends = [sum(s["steps"] for s in stages[: i + 1]) for i in range(len(stages))]
    batches = iter(loader)
    bar = tqdm(total=total_steps, initial=state.step, disable=not accelerator.is_main_process,
               dynamic_ncols=True)
    lambdas = lambdas.to(accelerator.device)
    model.train()
    started = time.time()
    while state.step < total_steps:
        stage = stages[next(i for i, end in enumerate(stage_ends) if state.step < end or i == len(stages) - 1)]
        objective = OBJECTIVES[stage["name"]]
        x = next(batches).to(accelerator.device)
        level = random_levels(x.shape[0], model.module.n_levels if hasattr(model, "module") else
                              model.n_levels, x.device)
        with accelerator.accumulate(model):
            with accelerator.autocast():
                loss, metrics = objective(model, x, level, lambdas)
            if not torch.isfinite(loss):
                raise GencodecError(f"non-finite loss ({loss.item()}) at step {state.step}; "
                                    f"lower the learning rate or resume from an earlier checkpoint")
            accelerator.backward(loss)
            if accelerator.sync_gradients and optim_cfg.get("grad_clip"):
                accelerator.clip_grad_norm_(model.parameters(), optim_cfg["grad_clip"])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        if not accelerator.sync_gradients:
            continue
        state.step += 1
        bar.update(1)
        if state.step % cfg.get("log_every", 10) == 0 or state.step == total_steps:
            row = {"step": state.step, "stage": stage["name"], "lr": scheduler.get_last_lr()[0],
                   "images_per_s": state.step * x.shape[0] * accelerator.num_processes
                   / max(time.time() - started, 1e-9)}
            row.update({k: accelerator.gather(v[None]).mean().item() for k, v in metrics.items()})
            bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k not in ("step", "stage", "lr")})
            if accelerator.is_main_process:
                new = not metrics_file.exists()
                with open(metrics_file, "a", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=list(row))
                    if new:
                        w.writeheader()
                    w.writerow(row)
        if state.step % cfg.get("checkpoint_every", 1000) == 0 or state.step == total_steps:
            save_checkpoint(accelerator, ckpt_dir, state.step, cfg.get("keep_checkpoints", 3))
    bar.close()
    if accelerator.is_main_process:
        export_model(accelerator.unwrap_model(model), out / "model", state.step)
        accelerator.print(f"exported {out / 'model'} after {state.step} steps")
    accelerator.end_training()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GencodecError as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        sys.exit(1)
