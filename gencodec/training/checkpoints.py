"""A stage's checkpoints and export in its run folder.

    OUT/<stage>/checkpoints/checkpoint-<step>/   accelerate state: model, optimizers, schedulers,
                                                 EMA, RNG, step; COMPLETE written last
    OUT/<stage>/model/                           the exported model, its trained_steps in config.json

A checkpoint is written under a temporary name and moved into place whole
(gencodec.fileio.atomic_output): a kill mid-save leaves the last good one.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

from ..fileio import atomic_output
from ..model import CodecModel

COMPLETE = "COMPLETE"  # marker written last: a checkpoint without it is ignored


class TrainState:
    """The step counter, saved and restored with the accelerate state."""

    def __init__(self):
        self.step = 0

    def state_dict(self):
        return {"step": self.step}

    def load_state_dict(self, state):
        self.step = int(state["step"])


def complete_checkpoints(folder: Path) -> list[Path]:
    """The checkpoint folders with their COMPLETE marker, oldest step first."""
    done = [p for p in Path(folder).glob("checkpoint-*") if (p / COMPLETE).exists()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(folder: Path) -> Path | None:
    done = complete_checkpoints(folder)
    return done[-1] if done else None


def save_checkpoint(accelerator: Accelerator, folder: Path, step: int, keep: int) -> None:
    """Every process saves its part of the state into one temporary folder, which then moves into place
    as checkpoint-<step>; only the newest `keep` complete checkpoints stay."""
    main = accelerator.is_main_process
    if main:
        folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(folder / f"checkpoint-{step}") if main else contextlib.nullcontext() as tmp:
        tmp = broadcast_object_list([str(tmp) if main else None])[0]  # the main process names the folder
        accelerator.save_state(tmp)
        accelerator.wait_for_everyone()
        if main:
            (Path(tmp) / COMPLETE).write_text(str(step))
    if main:
        for old in complete_checkpoints(folder)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def remove_unfinished_saves(folder: Path) -> None:
    """The temporary folders of saves that a kill interrupted (atomic_output names them .<name>.<hex>.tmp)."""
    for tmp in Path(folder).glob(".checkpoint-*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


def exported_steps(folder: Path) -> int | None:
    """trained_steps of an exported model folder, or None if there is none."""
    if not (Path(folder) / "config.json").exists():
        return None
    return CodecModel.load_config(folder).get("trained_steps", 0)
