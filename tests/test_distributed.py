"""Distributed training on the CPU: two real processes under `accelerate launch` (gloo, DDP).

Also checks that the accelerate configs in configs/accelerate/ load the way
`accelerate launch --config_file` loads them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import gencodec

from .conftest import ROOT, smooth_image

ACCELERATE = Path(sys.executable).parent / "accelerate"
N_IMAGES = 8

# accelerate 1.15: `--cpu --num_processes 2` silently starts ONE process. `--multi_gpu` starts two,
# which run as MULTI_CPU because train.py's --cpu makes Accelerator(cpu=True).
TWO_CPU_PROCESSES = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                     "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
                     "--main_process_port", "0"]  # 0: a free port, so parallel runs don't collide


def _run(cmd: list[str], env: dict, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run cmd in its own process group; on timeout kill the whole group (the launcher's workers too)."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(cmd[:3])} ... ran past {timeout} s; output:\n{out[-4000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, None)


def _count(path: Path) -> int:
    match = re.search(r"\d+", path.read_text())
    assert match, f"{path} holds no number: {path.read_text()!r}"
    return int(match.group())


@pytest.mark.slow
@pytest.mark.skipif(not ACCELERATE.exists(), reason=f"no `accelerate` executable next to {sys.executable}")
def test_two_cpu_processes_train_in_step_on_disjoint_shares(tmp_path):
    """Two processes, one job: `accelerate launch` (2 CPU processes) runs 4 codec steps of configs/tiny.yaml.

    Checks that the run exits 0; that BOTH ranks wrote `codec/rank<k>.params.sha256` and the two
    digests are equal (gradients were all-reduced, the replicas stayed identical); that the ranks'
    `rank<k>.share.txt` counts are halves that sum to the number of training images (each process
    read its own share); and that the export loads with gencodec.load. About 20-30 s on 2 cores,
    most of it process start-up.
    """
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(N_IMAGES):
        Image.fromarray(smooth_image(96, 96, seed=i)).save(photos / f"p{i}.png")
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cmd = [str(ACCELERATE), "launch", *TWO_CPU_PROCESSES, str(ROOT / "train" / "train.py"),
           "--config", str(ROOT / "configs" / "tiny.yaml"), "--stages", "codec", "--steps", "4", "--cpu",
           "--data", str(photos), "--out", str(out)]
    result = _run(cmd, env, ROOT, timeout=300)
    assert result.returncode == 0, f"exit code {result.returncode}; output:\n{result.stdout[-4000:]}"

    stage = out / "codec"
    digests = sorted(stage.glob("rank*.params.sha256"))
    assert [p.name for p in digests] == ["rank0.params.sha256", "rank1.params.sha256"], (
        f"expected one digest per rank, found {[p.name for p in digests]} (one rank only: the launch ran "
        f"a single process, or two unconnected ones); output:\n{result.stdout[-2000:]}")
    rank0, rank1 = (p.read_text().strip() for p in digests)
    assert re.fullmatch(r"[0-9a-f]{64}", rank0), rank0
    assert rank0 == rank1, "the ranks' parameters differ after training: gradients were not synchronised"

    shares = [_count(stage / f"rank{k}.share.txt") for k in (0, 1)]
    assert shares == [N_IMAGES // 2, N_IMAGES // 2], f"shares {shares} are not two halves of {N_IMAGES} images"

    codec = gencodec.load(stage / "model", device="cpu")
    assert codec.model.config.trained_steps == 4


@pytest.mark.parametrize("name, machines, processes", [("1node_8gpu", 1, 8), ("multinode", 2, 16),
                                                       ("cpu_2proc", 1, 2)])
def test_accelerate_configs_load_as_accelerate_loads_them(name, machines, processes):
    """Each configs/accelerate/*.yaml loads with accelerate's own loader (unknown keys would fail the launch)."""
    config_args = pytest.importorskip("accelerate.commands.config.config_args")
    cfg = config_args.load_config_from_file(str(ROOT / "configs" / "accelerate" / f"{name}.yaml"))
    # MULTI_GPU selects the multi-process launcher; on a machine without GPUs the processes run as MULTI_CPU.
    assert cfg.distributed_type == "MULTI_GPU"
    assert (cfg.num_machines, cfg.num_processes) == (machines, processes)


@pytest.mark.slow
@pytest.mark.skipif(not ACCELERATE.exists(), reason=f"no `accelerate` executable next to {sys.executable}")
def test_two_cpu_processes_train_the_latent_family(tmp_path):
    """The same for the latent family (configs/tiny_latent.yaml) on a latent cache, both stages.

    The decoder stage needs the LPIPS weights; without ../shared only the codec stage runs.
    """
    import torch
    import yaml
    from safetensors.torch import save_file

    from gencodec.nn.taef2 import DECODER_FILE, ENCODER_FILE, TAEF2Decoder, TAEF2Encoder
    from gencodec.training.latents import cache_latents

    taef2 = tmp_path / "taef2"
    taef2.mkdir()
    torch.manual_seed(0)
    save_file(TAEF2Encoder().state_dict(), str(taef2 / ENCODER_FILE))
    save_file(TAEF2Decoder().state_dict(), str(taef2 / DECODER_FILE))
    (taef2 / "LICENSE").write_text("MIT\n")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(N_IMAGES):
        Image.fromarray(smooth_image(64, 64, seed=i)).save(photos / f"p{i}.png")
    cache = tmp_path / "cache"
    cache_latents(photos, cache, taef2, max_shard_bytes=60_000)  # several shards: one share each
    cfg = yaml.safe_load(open(ROOT / "configs" / "tiny_latent.yaml"))
    cfg["autoencoder"] = str(taef2)
    config = tmp_path / "latent.yaml"
    config.write_text(yaml.safe_dump(cfg))
    lpips = ROOT.parent / "shared" / "weights" / "alexnet_features.pth"
    stages = "codec,decoder" if lpips.exists() else "codec"

    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", GENCODEC_LPIPS_WEIGHTS=str(lpips),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cmd = [str(ACCELERATE), "launch", *TWO_CPU_PROCESSES, str(ROOT / "train" / "train.py"),
           "--config", str(config), "--stages", stages, "--steps", "3", "--cpu",
           "--data", str(cache), "--out", str(out)]
    result = _run(cmd, env, ROOT, timeout=300)
    assert result.returncode == 0, f"exit code {result.returncode}; output:\n{result.stdout[-4000:]}"
    for stage in stages.split(","):
        rank0, rank1 = ((out / stage / f"rank{k}.params.sha256").read_text().strip() for k in (0, 1))
        assert rank0 == rank1, f"stage {stage}: the ranks' parameters differ: gradients were not synchronised"
    codec = gencodec.load(out / stages.split(",")[-1] / "model", device="cpu")
    assert type(codec.model).__name__ == "LatentCodecModel" and codec.model.config.trained_steps == 3 * len(
        stages.split(","))
