"""What a stage records as it trains: metrics (trackers and metrics.csv), validation, and per-rank reports.

    OUT/<stage>/metrics.csv              one row per logged step
    OUT/<stage>/val/                     validation grids (data.val)
    OUT/<stage>/rank<k>.params.sha256    each process's parameter digest, at the end of the stage
    OUT/<stage>/rank<k>.share.txt        the number of training files each process read
"""

from __future__ import annotations

import csv
import dataclasses
import time
from pathlib import Path

import torch
from accelerate import Accelerator

from ..errors import GencodecError
from ..model import CodecModel, state_dict_sha256
from .config import Stage, TrainConfig, stage_rungs


def flat_config(cfg: TrainConfig, **extra) -> dict:
    """The config (but its stages) as flat scalar key/values, as trackers (TensorBoard hparams) want it."""
    flat = dict(extra)

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        else:
            flat[prefix[:-1]] = value if isinstance(value, (int, float, str, bool)) else str(value)

    walk("", {k: v for k, v in dataclasses.asdict(cfg).items() if k != "stages"})
    return flat


class MetricsLog:
    """Every `every` steps and at the last: the metrics, averaged over processes, to the trackers and
    (on the main process) as a row of metrics.csv; the trackers' step counts from the warm start's."""

    def __init__(self, accelerator: Accelerator, path: Path, every: int, last: int, first: int, offset: int):
        self.accelerator, self.path, self.every, self.last, self.offset = accelerator, path, every, last, offset
        self.first, self.started = first, time.time()

    def due(self, step: int) -> bool:
        return step % self.every == 0 or step == self.last

    def log(self, step: int, lr: float, batch_size: int, metrics: dict[str, torch.Tensor]) -> dict[str, float]:
        acc = self.accelerator
        images = (step - self.first) * batch_size * acc.num_processes
        row = {"step": step, "lr": lr, "images_per_s": images / max(time.time() - self.started, 1e-9)}
        row.update({k: acc.gather(v.float()[None]).mean().item() for k, v in metrics.items()})
        acc.log(row, step=self.offset + step)
        if acc.is_main_process:
            new = not self.path.exists()
            with open(self.path, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(row))
                if new:
                    writer.writeheader()
                writer.writerow(row)
        return row


class PeriodicValidation:
    """Validation on a held-out folder (data.val) every `validate_every` steps: real files, bpp, PSNR,
    LPIPS, a grid in OUT/<stage>/val/."""

    def __init__(self, cfg: TrainConfig, stage: Stage, stage_dir: Path, device, lpips_weights: str | None):
        from .validation import load_validation_images
        self.every = cfg.validate_every
        folder = stage.data.val
        self.images = load_validation_images(folder, cfg.val_images) if folder and self.every else []
        self.levels = cfg.val_levels or [0, len(stage_rungs(stage)) - 1]  # file levels
        self.out_dir = stage_dir / "val"
        self.device = device
        self.lpips_weights = lpips_weights

    def due(self, step: int, last: int) -> bool:
        return bool(self.images) and (step % self.every == 0 or step == last)

    def run(self, model: CodecModel, lpips_net, step: int) -> dict[str, float]:
        """`lpips_net`: the stage's own, or None (a codec stage), to load one here once."""
        from .validation import validate
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return validate(model, self.images, self.levels, out_dir=self.out_dir, step=step,
                        lpips_net=lpips_net if lpips_net is not None else self._own_lpips(), device=self.device)

    def _own_lpips(self):
        """The codec stage has no LPIPS net of its own: load one once, or go without if none is found."""
        if not hasattr(self, "_lpips"):
            from ..evaluation.perceptual import load_lpips
            try:
                self._lpips = load_lpips(self.lpips_weights).to(self.device)
            except GencodecError as exc:
                print(f"validation without LPIPS: {exc}")
                self._lpips = None
        return self._lpips


def write_rank_report(accelerator: Accelerator, model: CodecModel, share_size: int, stage_dir: Path) -> None:
    """Every process records a digest of its parameters and the size of its data share.

    Identical digests on all ranks show that distributed training kept the
    replicas in step; the share sizes show that each process read its own part.
    """
    rank = accelerator.process_index
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / f"rank{rank}.params.sha256").write_text(state_dict_sha256(model.state_dict()) + "\n")
    (stage_dir / f"rank{rank}.share.txt").write_text(f"{share_size}\n")
