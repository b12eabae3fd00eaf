#!/usr/bin/env python
"""A training burst: one stage of a config for a fixed time, in bf16 on a GPU, from a compact pack.

    python train/gpu_burst.py --config configs/gpu/pixel_1gpu.yaml --stage codec \\
        --pack .gpukit/pack --seconds 300 --out $OUT/burst [--resume-from .gpukit/resume]
    python train/gpu_burst.py ... --cpu-core     # the same recipe on one CPU core, for comparison

It trains the stage until the time is up (gencodec.training.runner with a
deadline), with a constant learning rate after the warmup (a burst does not
know its step count) and no validation (no evaluation photos travel). It
prints the throughput in images per second, counted from the end of the
first step. At the end the stage's trained weights (float16, a few MB; see
gencodec.training.stage_weights) are cut into parts of at most 16 MiB in
OUT/resume/; the next burst, given that folder as --resume-from, joins them
and goes on from there (the optimizer's moments start again). The burst's
metrics go to OUT/metrics.csv; OUT/burst.json holds the figures. The run
folder itself (accelerate's checkpoint, 70 MB for the pixel codec stage) stays
in --work, a temporary folder by default: OUT holds only what should travel.

The pixel family trains from an image pack (gencodec pack). The latent
family trains on cached latents (gencodec cache-latents): pass such a cache
as --pack, with the config's autoencoder folder present.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from gencodec.errors import GencodecError
from gencodec.training.config import load_config
from gencodec.training.file_parts import join_parts, split_file
from gencodec.training.runner import RunOptions, StageRun
from gencodec.training.stage_weights import save_stage_weights

#: The schedule of a burst: its length is set by the clock, not by a step count.
BURST_SCHEDULE = "constant_with_warmup"
#: Steps to schedule (the constant schedule ignores it; the loop stops at the deadline well before).
MANY_STEPS = 10_000_000
#: Warmup of a burst that goes on from an earlier one: only AdamW's moments start again, not the weights.
RESUMED_WARMUP_STEPS = 100
WEIGHTS_SUFFIX = ".safetensors"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="training config (configs/gpu/ holds the GPU-sized ones)")
    p.add_argument("--stage", default="codec", help="the config's stage to train; default: %(default)s")
    p.add_argument("--pack", required=True, help="training data: a pack (gencodec pack) or a latent cache")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--seconds", type=float, help="how long to train, from the start of the script (the last "
                                                    "step ends after it)")
    when.add_argument("--until", type=float, help="train until this time (seconds since the epoch, as time.time())")
    p.add_argument("--out", type=Path, required=True, help="folder for resume/, metrics.csv and burst.json")
    p.add_argument("--work", type=Path, help="run folder; default: a temporary folder, removed at the end")
    p.add_argument("--resume-from", type=Path, help="a folder with the parts of an earlier burst's weights")
    p.add_argument("--init", help="model folder the stage starts from, for a stage that needs a warm start")
    p.add_argument("--lpips-weights", help="LPIPS AlexNet weights, for a decoder stage (or set GENCODEC_LPIPS_WEIGHTS)")
    p.add_argument("--batch-size", type=int, help="override the stage's batch size (dry runs)")
    p.add_argument("--crop-size", type=int, help="override the stage's crop size (dry runs)")
    p.add_argument("--cpu-core", action="store_true",
                   help="train on one CPU core in float32 instead (the throughput baseline); writes no weights")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="NHWC model and batches on a GPU; default: on")
    return p.parse_args(argv)


def burst_stage(args):
    """The config and its stage as a burst runs them: constant rate, no validation, no trackers."""
    cfg = load_config(args.config)
    if args.stage not in cfg.names:
        raise GencodecError(f"stage '{args.stage}' is not in {args.config} (it has {', '.join(cfg.names)})")
    cfg = dataclasses.replace(cfg, validate_every=0, trackers=[], checkpoint_every=MANY_STEPS, keep_checkpoints=1,
                              log_every=min(cfg.log_every, 10))
    stage = cfg.resolve(cfg.names.index(args.stage))
    optim = dataclasses.replace(stage.optim, schedule=BURST_SCHEDULE,
                                mixed_precision="no" if args.cpu_core else stage.optim.mixed_precision,
                                warmup_steps=min(stage.optim.warmup_steps, RESUMED_WARMUP_STEPS)
                                if args.resume_from else stage.optim.warmup_steps)
    data = dataclasses.replace(stage.data, **{k: v for k, v in (("batch_size", args.batch_size),
                                                                ("crop_size", args.crop_size)) if v},
                               num_workers=0 if args.cpu_core else stage.data.num_workers)
    own = stage.config
    if args.init:
        own = dataclasses.replace(own, init=args.init)
    elif stage.has_warm_start:
        raise GencodecError(f"stage '{args.stage}' starts from the stage before it: pass --init MODEL_FOLDER "
                            "(a shipped model such as gencodec/weights/pixel, or an earlier stage's export)")
    return cfg, dataclasses.replace(stage, optim=optim, data=data, config=own)


def joined_weights(folder: Path, stage: str, into: Path) -> Path:
    """The stage's weights file rebuilt from its parts in `folder` (an earlier burst's OUT/resume)."""
    name = f"{stage}{WEIGHTS_SUFFIX}"
    if not (folder / f"{name}.parts.json").is_file():
        raise GencodecError(f"no weights of stage '{stage}' in {str(folder)!r} (expected {name}.parts.json)")
    return join_parts(folder, name, into / name)


def main(argv=None) -> int:
    started = time.time()
    args = parse_args(argv)
    if args.seconds is not None and args.seconds <= 0:
        raise GencodecError(f"--seconds must be positive, got {args.seconds:g}")
    end = args.until if args.until is not None else started + args.seconds  # past it: two steps, to time one
    if args.cpu_core:
        import torch
        torch.set_num_threads(1)
        if hasattr(os, "sched_setaffinity"):  # one core, the last: a GPU run's loaders start at the first
            os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    deadline = time.monotonic() + (end - time.time())
    cfg, stage = burst_stage(args)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        weights = joined_weights(args.resume_from, stage.name, Path(tmp)) if args.resume_from else None
        options = RunOptions(out=args.work or Path(tmp) / "run", data=args.pack, cpu=args.cpu_core, deadline=deadline,
                             steps=MANY_STEPS, stage_weights=weights, lpips_weights=args.lpips_weights,
                             channels_last=args.channels_last and not args.cpu_core)
        run = StageRun(cfg, stage, options)
        run.setup()
        run.train()
        report(args, run, stage)
    return 0


def report(args, run: StageRun, stage) -> None:
    """burst.json, metrics.csv and the weights' parts into OUT; one line of figures."""
    acc = run.accelerator
    figures = {"stage": stage.name, "config": str(args.config), "device": str(acc.device),
               "processes": acc.num_processes, "mixed_precision": stage.optim.mixed_precision,
               "batch_size": stage.data.batch_size, "crop_size": stage.data.crop_size,
               "steps": run.steps_run, "steps_in_all": run.start_steps + run.state.step,
               "images_per_second": run.images_per_second}
    if acc.is_main_process:
        metrics = run.dir / "metrics.csv"
        if metrics.is_file():
            shutil.copyfile(metrics, args.out / "metrics.csv")
        if not args.cpu_core:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"{stage.name}{WEIGHTS_SUFFIX}"
                save_stage_weights(run.raw_model, stage.kind, path, figures["steps_in_all"], stage.name,
                                   stage.train_synthesis)
                figures["weights_bytes"] = path.stat().st_size
                figures["weight_parts"] = [p.name for p in split_file(path, args.out / "resume")]
        (args.out / "burst.json").write_text(json.dumps(figures, indent=1) + "\n")
        speed = "not measured (one step)" if run.images_per_second is None else f"{run.images_per_second:.2f}"
        print(f"burst: stage '{stage.name}' on {acc.device} ({stage.optim.mixed_precision}), batch "
              f"{stage.data.batch_size} x {stage.data.crop_size} px: {run.steps_run} steps "
              f"({figures['steps_in_all']} in all), {speed} images/s")
    acc.wait_for_everyone()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GencodecError as exc:
        print(f"gpu_burst.py: error: {exc}", file=sys.stderr)
        sys.exit(1)
