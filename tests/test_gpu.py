"""On a CUDA GPU: bf16 training of every stage, accelerate launch with resume, and files encoded on
the GPU that decode on the CPU to the same symbols, with the same bytes as a CPU encode.

Every test here is marked `gpu` and skips without CUDA (CI has none); train/gpu_kit.py runs them on a
lent GPU machine: `pytest -m gpu tests/test_gpu.py`. They need nothing from ../shared: the LPIPS
backbone and the TAEF2 autoencoder are freshly initialised stand-ins (their values do not matter to
what is checked), the photos are built on the spot or come with scikit-image.
GENCODEC_GPU_TEST_DEVICE=cpu runs them on the CPU instead, to check the tests themselves.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import gencodec
from gencodec.pretrained import untrained_model
from gencodec.training.config import parse_config
from gencodec.training.runner import RunOptions, run

from .conftest import ROOT, smooth_image
from .golden.make_golden import CASES as GOLDEN_CASES
from .golden.make_golden import code_digest
from .mixed_precision_checks import check_a_bf16_codec_step, check_entropy_model_ignores_autocast

DEVICE = os.environ.get("GENCODEC_GPU_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                                                  reason="needs a CUDA GPU (none here)")]

GOLDEN = Path(__file__).resolve().parent / "golden"
SHIPPED = ("latent", "pixel")


# The cross-device check first: it is the one whose result matters most if the kit runs out of time.

# -- encoded on the GPU, decoded on the CPU ---------------------------------------------------------

def _sample_photos() -> list[tuple[str, np.ndarray, int | None]]:
    """(name, image, level or None for the model's default) for the golden crops and the demo's photos."""
    skimage_data = pytest.importorskip("skimage.data", reason="the sample photos come with scikit-image")
    from gencodec.evaluation.demo import sample_photos
    folder = Path(skimage_data.__file__).parent
    photos = []
    for photo, (left, top, width, height), level in GOLDEN_CASES:
        image = Image.open(folder / photo).convert("RGB").crop((left, top, left + width, top + height))
        photos.append((f"{Path(photo).stem}_{width}x{height}_level{level}", np.asarray(image), level))
    for path in sample_photos():
        photos.append((path.stem, np.asarray(Image.open(path).convert("RGB")), None))
    return photos


@pytest.fixture(scope="module")
def codecs():
    return {name: (gencodec.load(name, device=DEVICE), gencodec.load(name, device="cpu")) for name in SHIPPED}


@pytest.mark.parametrize("model", SHIPPED)
def test_files_encoded_on_the_gpu_decode_on_the_cpu_to_the_same_symbols(model, codecs):
    gpu, cpu = codecs[model]
    golden = {case["file"]: case for case in json.loads((GOLDEN / model / "golden.json").read_text())["cases"]}
    report = []
    for name, image, level in _sample_photos():
        levels = [level] if level is not None else [0, gpu.default_level, gpu.n_levels - 1]
        for lv in levels:
            code, height, width = gpu.analyse(image, lv)
            on_gpu = gpu.encode_code(code, lv, height, width)
            decoded, _ = cpu.decode_code(on_gpu)
            on_cpu = cpu.compress(image, level=lv)
            cpu_code, _ = cpu.decode_code(on_cpu)
            differ = int((cpu_code.symbols != code.symbols).sum()) + int((cpu_code.z_hat != code.z_hat).sum())
            # The colour offset is measured on a float decode: it may round the other way on another device
            # (a level at most). It travels in the file, so decoding stays exact either way.
            offset_gap = (0 if code.colour_offset is None
                          else int(np.abs(code.colour_offset - cpu_code.colour_offset).max()))
            report.append((f"{name} level {lv}", code_digest(decoded) == code_digest(code), on_gpu == on_cpu,
                           differ, code.symbols.numel() + code.z_hat.numel(), offset_gap))
            if f"{name}.gcz" in golden and offset_gap == 0:
                assert on_gpu == (GOLDEN / model / f"{name}.gcz").read_bytes(), f"{name}: not the golden file"
    lines = [f"{what}: symbols {'same' if same else 'DIFFER'}, bytes {'same' if equal else 'DIFFER'} as a CPU "
             f"encode ({differ} of {total} symbols differ; colour offset {gap} level(s) apart)"
             for what, same, equal, differ, total, gap in report]
    print(f"\n{model}:\n" + "\n".join(lines))
    assert all(same for _, same, *_ in report), "a GPU file decodes on the CPU to other symbols:\n" + "\n".join(lines)
    assert all(r[3] == 0 and r[5] <= 1 for r in report), "a GPU encode differs from the CPU's:\n" + "\n".join(lines)
    assert all(r[2] for r in report if r[5] == 0), "a GPU encode differs from the CPU's:\n" + "\n".join(lines)


# -- bf16 training --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """Photos, an LPIPS backbone file and TAEF2 weights, all made here."""
    import torchvision
    from safetensors.torch import save_file

    from gencodec.nn.taef2 import DECODER_FILE, ENCODER_FILE, TAEF2Decoder, TAEF2Encoder

    root = tmp_path_factory.mktemp("stand_ins")
    (root / "photos").mkdir()
    for i in range(8):
        Image.fromarray(smooth_image(128, 160, seed=i)).save(root / "photos" / f"p{i}.png")
    torch.manual_seed(0)
    features = {k: v for k, v in torchvision.models.alexnet(weights=None).state_dict().items()
                if k.startswith("features.")}
    torch.save(features, root / "alexnet_features.pth")
    (root / "taef2").mkdir()
    for module, name in ((TAEF2Encoder(), ENCODER_FILE), (TAEF2Decoder(), DECODER_FILE)):
        save_file({k: v.half() for k, v in module.state_dict().items()}, str(root / "taef2" / name))
    (root / "taef2" / "LICENSE").write_text("MIT License (test copy)\n")
    return root


def _bf16_config(name: str, stand_ins: Path) -> dict:
    raw = yaml.safe_load(open(ROOT / "configs" / f"{name}.yaml"))
    raw["optim"]["mixed_precision"] = "bf16"
    raw.update(validate_every=0, trackers=[], log_every=1, checkpoint_every=100)
    if raw.get("family") == "latent":
        raw["autoencoder"] = str(stand_ins / "taef2")
    return raw


@pytest.mark.parametrize("config", ["tiny", "tiny_latent"])
def test_every_stage_trains_in_bf16(config, stand_ins, tmp_path, monkeypatch):
    monkeypatch.setenv("GENCODEC_LPIPS_WEIGHTS", str(stand_ins / "alexnet_features.pth"))
    raw = _bf16_config(config, stand_ins)
    data = stand_ins / "photos"
    if raw.get("family") == "latent":
        from gencodec.training.latents import cache_latents
        data = tmp_path / "latents"
        cache_latents(stand_ins / "photos", data, stand_ins / "taef2", device=DEVICE)
    out = tmp_path / "run"
    run(parse_config(raw), RunOptions(out=out, data=str(data), steps=3, channels_last=config == "tiny",
                                      cpu=DEVICE == "cpu"))
    for stage in raw["stages"]:
        rows = list(csv.DictReader(open(out / stage["name"] / "metrics.csv")))
        assert [int(r["step"]) for r in rows] == [1, 2, 3], stage["name"]
        assert all(np.isfinite(float(v)) for r in rows for k, v in r.items() if k != "step"), stage["name"]
    codec = gencodec.load(out / "model", device=DEVICE)
    data = codec.compress(smooth_image(64, 96), level=0)
    assert np.asarray(codec.decompress(data)).shape == (64, 96, 3)


@pytest.mark.parametrize("family", ["pixel", "latent"])
def test_the_entropy_model_ignores_cuda_autocast(family):
    model = untrained_model(family, **yaml.safe_load(open(ROOT / "configs" / (
        "tiny.yaml" if family == "pixel" else "tiny_latent.yaml")))["model"])
    model.update_tables()
    check_entropy_model_ignores_autocast(model, DEVICE)


@pytest.mark.parametrize("channels_last", [False, True])
def test_a_bf16_codec_step_of_the_shipped_pixel_model(channels_last):
    model = gencodec.load_model("pixel")
    check_a_bf16_codec_step(model, DEVICE, channels_last)


# -- accelerate launch ------------------------------------------------------------------------------

def test_accelerate_launch_on_one_gpu_resumes_from_its_checkpoint(stand_ins, tmp_path):
    raw = _bf16_config("tiny", stand_ins)
    raw.update(checkpoint_every=2)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
              "--mixed_precision", "bf16", "--dynamo_backend", "no", str(ROOT / "train" / "train.py"),
              "--config", str(config), "--data", str(stand_ins / "photos"), "--out", str(out), "--stages", "codec",
              *(["--cpu"] if DEVICE == "cpu" else [])]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    first = subprocess.run(launch + ["--steps", "4"], env=env, capture_output=True, text=True, timeout=150)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    second = subprocess.run(launch + ["--steps", "6", "--resume", "latest"], env=env, capture_output=True,
                            text=True, timeout=150)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "resumed from" in second.stdout and "at step 4" in second.stdout
    rows = list(csv.DictReader(open(out / "codec" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert gencodec.load(out / "codec" / "model", device="cpu").model.config.trained_steps == 6
