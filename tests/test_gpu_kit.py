"""The GPU kit's dry run: train/gpu_kit.py runs every step, tiny, on the CPU, so that the kit cannot rot.

On a GPU machine the same script installs the carried wheels, runs the GPU tests, benchmarks the shipped
models and trains for the rest of its budget (docs/training-gpu.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from PIL import Image

from gencodec.training.data import pack_shards
from gencodec.training.file_parts import join_parts
from gencodec.training.stage_weights import load_stage_weights
from gencodec.pretrained import untrained_model

from .conftest import ROOT, smooth_image

#: The dry run's limit in the suite, on two loaded cores.
DRY_RUN_LIMIT_S = 60


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    photos = tmp_path_factory.mktemp("photos")
    for i in range(6):
        Image.fromarray(smooth_image(80, 112, seed=i)).save(photos / f"p{i}.png")
    out = tmp_path_factory.mktemp("pack")
    pack_shards(photos, out, crop=64, image_format="webp", quality=85)
    return out


def _kit(*args, env=None):
    env = dict(os.environ, HF_HUB_OFFLINE="1", **(env or {}))
    env.pop("OUT", None)
    return subprocess.run([sys.executable, str(ROOT / "train" / "gpu_kit.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_dry_run_goes_through_every_step_in_under_a_minute(pack, tmp_path):
    out = tmp_path / "out"
    start = time.monotonic()
    done = _kit("--dry-run", "--budget-s", "30", "--pack", str(pack), "--out", str(out),
                "--kit", str(tmp_path / "no-kit"))
    seconds = time.monotonic() - start
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = (out / "kit.md").read_text()
    for heading in ("## Versions", "## GPU tests", "## Benchmark", "## Training burst", "## Time"):
        assert heading in report
    assert "skipped" in report and "| pixel | cpu | 64x64 | 1 |" in report
    assert "speed-up over one CPU core" in report and "before the burst:" in report
    burst = json.loads((out / "burst.json").read_text())
    assert burst["steps"] >= 1 and burst["stage"] == "codec"
    # The weights come back in parts and the next burst starts from them.
    weights = join_parts(out / "resume", "codec.safetensors", tmp_path / "codec.safetensors")
    model = untrained_model("pixel", **__import__("yaml").safe_load(open(ROOT / "configs" / "tiny.yaml"))["model"])
    assert load_stage_weights(model, weights, "codec") == burst["steps_in_all"]
    assert len([p for p in out.rglob("*") if p.is_file()]) <= 8  # what comes back from a GPU machine
    assert seconds < DRY_RUN_LIMIT_S, f"the dry run took {seconds:.0f} s"


def test_a_budget_too_small_or_no_wheels_is_one_line(pack, tmp_path):
    small = _kit("--dry-run", "--budget-s", "1", "--pack", str(pack), "--out", str(tmp_path / "a"),
                 "--kit", str(tmp_path / "no-kit"))
    assert small.returncode == 1 and "gpu_kit.py: error: the budget leaves no time" in small.stderr
    no_wheels = _kit("--budget-s", "500", "--out", str(tmp_path / "b"), "--kit", str(tmp_path / "no-kit"))
    assert no_wheels.returncode == 1 and "gpu_kit.py: error: no wheels in" in no_wheels.stderr
