"""Training converges, and a run killed mid-way resumes with exactly its model, optimizer and RNG state."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from .conftest import ROOT, smooth_image

pytestmark = pytest.mark.slow  # every test here trains in a subprocess


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """One left-right symmetric photo exactly the crop size: every batch is the same whatever the
    data order or flips, so a run's path depends only on model, optimizer, scheduler and RNG state."""
    root = tmp_path_factory.mktemp("resume")
    half = smooth_image(64, 32, seed=5)
    (root / "data").mkdir()
    Image.fromarray(np.concatenate([half, half[:, ::-1]], axis=1)).save(root / "data" / "sym.png")
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))
    cfg.update(checkpoint_every=3, keep_checkpoints=5, log_every=1, validate_every=0, trackers=[])
    cfg["data"].update(batch_size=2, num_workers=0)
    with open(root / "config.yaml", "w") as f:
        yaml.safe_dump(cfg, f)
    return root


def _command(setup: Path, out: Path, steps: int, resume: bool = False) -> list[str]:
    cmd = [sys.executable, str(ROOT / "train" / "train.py"), "--config", str(setup / "config.yaml"),
           "--data", str(setup / "data"), "--out", str(out), "--cpu", "--stages", "codec", "--steps", str(steps)]
    return cmd + (["--resume", "latest"] if resume else [])


def _env():
    return dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def test_loss_goes_down(setup):
    out = setup / "converge"
    subprocess.run(_command(setup, out, 40), env=_env(), check=True, capture_output=True, timeout=300)
    rows = list(csv.DictReader(open(out / "codec" / "metrics.csv")))
    losses, mse = ([float(r[k]) for r in rows] for k in ("loss", "mse"))
    assert len(losses) == 40
    # Each step draws random levels (each with its own lambda), so compare averages.
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
    assert np.mean(mse[-10:]) < 0.8 * np.mean(mse[:10])


def test_killed_run_resumes_with_the_same_state(setup):
    steps = 8
    straight = setup / "straight"
    subprocess.run(_command(setup, straight, steps), env=_env(), check=True, capture_output=True, timeout=300)

    killed = setup / "killed"
    ckpts = killed / "codec" / "checkpoints"
    proc = subprocess.Popen(_command(setup, killed, steps), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (ckpts / "checkpoint-3" / "COMPLETE").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (ckpts / "checkpoint-3" / "COMPLETE").exists()
    # Whatever the kill left beyond step 3 goes; a half-written checkpoint stays, as a crash leaves it.
    for later in ckpts.glob("checkpoint-*"):
        if int(later.name.split("-")[1]) > 3:
            subprocess.run(["rm", "-rf", str(later)], check=True)
    subprocess.run(["rm", "-rf", str(killed / "codec" / "model")], check=True)
    (ckpts / "checkpoint-6").mkdir()
    (ckpts / "checkpoint-6" / "model.safetensors").write_bytes(b"partial")

    resumed = subprocess.run(_command(setup, killed, steps, resume=True), env=_env(), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout and "checkpoint-3 at step 3" in resumed.stdout

    a = load_file(str(straight / "codec" / "model" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(killed / "codec" / "model" / "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ after resuming, e.g. {different[:3]}"
    rows = list(csv.DictReader(open(killed / "codec" / "metrics.csv")))
    assert [int(r["step"]) for r in rows][-steps + 3:] == list(range(4, steps + 1))
