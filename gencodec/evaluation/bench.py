"""`gencodec bench`: compress / decompress time and file size, as a table of medians.

Beside each real file size it prints the model's information content (the sum
of -log2 p over the coded symbols) and the difference: the container's 10
bytes plus the ANS stream's word padding. Timings on shared machines wander,
so every case runs in the same process, interleaved round by round, and the
table reports medians. The last column is the process's peak memory so far
(cases run from the smallest image up, so growth shows what a size costs).
"""

from __future__ import annotations

import resource
import statistics
import sys
import time

import numpy as np
import torch
from PIL import Image

from ..codec import Codec


def synthetic_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic photo-like image (smooth fields + texture) for timing without data files."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    img = np.stack([0.5 + 0.3 * np.sin(6 * (rng.uniform(-1, 1) * xx + rng.uniform(-1, 1) * yy))
                    + 0.05 * rng.standard_normal((height, width)) for _ in range(3)], -1)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def peak_memory_mb() -> float:
    """Peak resident memory of this process (and, on CUDA, the device's peak allocation)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def _timed(fn, sync: bool):
    t0 = time.perf_counter()
    out = fn()
    if sync:
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def decode_parts(codec: Codec, data: bytes, steps: int | None, realism: float | None) -> dict[str, float]:
    """Seconds of each part of one decompress: the entropy decoder, the synthesis, the denoiser and
    the rendering to pixels (the latent family's autoencoder decoder; 0 for the pixel family).

    Measured as differences of runs that stop early: realism 0 without rendering is the synthesis,
    with it the synthesis and the rendering; the full decode adds the denoiser.
    """
    realism, steps, seed, scheduler = codec._check_decode_options(realism, steps, 0, None)
    sync = codec.device.type == "cuda"
    model = codec.model
    with torch.no_grad():
        (code, header), t_codes = _timed(lambda: codec.decode_code(data), sync)
        level = codec.rungs[header.level].level
        y_hat, t_y = _timed(lambda: model.latent_codec.reconstruct(code, level, model.dtype, codec.device),
                            sync)
        base, t_synthesis = _timed(lambda: model.synthesis(y_hat), sync)
        _, t_render = _timed(lambda: codec._render(base), sync)
        _, t_full = _timed(lambda: codec.reconstruct(y_hat, realism, steps, seed, scheduler), sync)
    return {"entropy_s": t_codes + t_y, "synthesis_s": t_synthesis, "render_s": t_render,
            "denoiser_s": max(0.0, t_full - t_synthesis - t_render) if realism > 0 else 0.0}


def run_bench(codec: Codec, sizes: list[tuple[int, int]], levels: list[int], steps: list[int] | None = None,
              realism: float | None = None, repeats: int = 5, image: np.ndarray | None = None,
              log=print, breakdown: bool = False) -> list[dict]:
    """Time compress and decompress for every (size, level, steps); print and return the rows."""
    steps = steps or [None]
    cases = []
    for (w, h) in sorted(sizes, key=lambda s: s[0] * s[1]):
        img = synthetic_photo(h, w) if image is None else np.asarray(Image.fromarray(image).resize((w, h)))
        for level in levels:
            for n_steps in steps:
                cases.append({"size": f"{w}x{h}", "pixels": w * h, "level": level, "steps": n_steps,
                              "image": img, "enc": [], "dec": []})
    decode = dict(realism=realism)
    for case in cases:  # warm-up (first calls build tables and allocate), and the information content
        case["data"] = codec.compress(case["image"], level=case["level"])
        codec.decompress(case["data"], steps=case["steps"], **decode)
        code, height, width = codec.analyse(case["image"], case["level"])
        case["info_bits"] = codec.entropy_code(code, case["level"], height, width)[1]
        case["memory"] = peak_memory_mb()
    for _ in range(repeats):
        for case in cases:  # interleaved, so drifts in machine speed hit every case alike
            t0 = time.perf_counter()
            case["data"] = codec.compress(case["image"], level=case["level"])
            t1 = time.perf_counter()
            codec.decompress(case["data"], steps=case["steps"], **decode)
            if codec.device.type == "cuda":
                torch.cuda.synchronize()
            t2 = time.perf_counter()
            case["enc"].append(t1 - t0)
            case["dec"].append(t2 - t1)
            if breakdown:
                case.setdefault("parts", []).append(decode_parts(codec, case["data"], case["steps"], realism))
    shown_realism = realism if realism is not None else (1.0 if codec.is_generative else 0.0)
    log(f"device {codec.device}, torch threads {torch.get_num_threads()}, realism {shown_realism:g}, "
        f"{repeats} repeats (medians)")
    log(f"{'size':>11}{'level':>6}{'steps':>6}{'bytes':>8}{'info bytes':>12}{'overhead':>10}{'bpp':>9}"
        f"{'compress s':>12}{'decompress s':>14}{'peak MB':>9}")
    rows = []
    for case in cases:
        row = {"size": case["size"], "level": case["level"], "steps": case["steps"] or 0,
               "bytes": len(case["data"]), "info_bytes": case["info_bits"] / 8,
               "overhead": len(case["data"]) - case["info_bits"] / 8,
               "bpp": 8 * len(case["data"]) / case["pixels"],
               "compress_s": statistics.median(case["enc"]), "decompress_s": statistics.median(case["dec"]),
               "peak_mb": case["memory"]}
        rows.append(row)
        log(f"{row['size']:>11}{row['level']:>6}{row['steps'] or '-':>6}{row['bytes']:>8}{row['info_bytes']:>12.1f}"
            f"{row['overhead']:>10.1f}{row['bpp']:>9.4f}{row['compress_s']:>12.3f}{row['decompress_s']:>14.3f}"
            f"{row['peak_mb']:>9.0f}")
        if breakdown:
            row.update({key: statistics.median(p[key] for p in case["parts"]) for key in case["parts"][0]})
    if breakdown:
        log("decompress by part (medians of separate runs, seconds):")
        log(f"{'size':>11}{'level':>6}{'entropy':>9}{'synthesis':>11}{'denoiser':>10}{'render':>8}")
        for row in rows:
            log(f"{row['size']:>11}{row['level']:>6}{row['entropy_s']:>9.3f}{row['synthesis_s']:>11.3f}"
                f"{row['denoiser_s']:>10.3f}{row['render_s']:>8.3f}")
    return rows
