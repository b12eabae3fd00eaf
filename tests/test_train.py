"""train/train.py on the tiny config: trains on the CPU, checkpoints, resumes, exports a loadable model."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gencodec

from .conftest import smooth_image

ROOT = Path(__file__).resolve().parents[1]


def _train_module():
    spec = importlib.util.spec_from_file_location("gencodec_train", ROOT / "train" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(6):
        Image.fromarray(smooth_image(96, 96, seed=i)).save(folder / f"p{i}.png")
    return folder


def test_tiny_config_trains_checkpoints_resumes_and_exports(photos, tmp_path):
    train = _train_module()
    out = tmp_path / "run"
    args = ["--config", str(ROOT / "configs" / "tiny.yaml"), "--data", str(photos), "--out", str(out), "--cpu"]
    assert train.main(args + ["--steps", "10"]) == 0
    assert (out / "checkpoints" / "checkpoint-10" / train.COMPLETE).exists()
    # Continue from the checkpoint to a later step.
    assert train.main(args + ["--steps", "15", "--resume", "latest"]) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert int(rows[-1]["step"]) == 15
    codec = gencodec.load(out / "model", device="cpu")
    assert codec.is_trained and codec.model.config.trained_steps == 15
    data = codec.compress(smooth_image(50, 70), level=1)
    assert np.asarray(codec.decompress(data)).shape == (50, 70, 3)


def test_an_unwritten_checkpoint_is_ignored(tmp_path):
    train = _train_module()
    (tmp_path / "checkpoint-5").mkdir()
    (tmp_path / "checkpoint-5" / train.COMPLETE).write_text("5")
    (tmp_path / "checkpoint-9").mkdir()  # killed mid-save: no marker
    assert train.latest_checkpoint(tmp_path).name == "checkpoint-5"
