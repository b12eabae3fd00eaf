"""`gencodec bench --cold-start`: what a fresh process pays before its first decoded image.

Each row runs in new processes (interleaved, medians): bare Python, `import
torch`, `import gencodec`, loading the model, and the whole `gencodec
decompress` command on a 768x512 file. The gaps between rows show where
start-up goes.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _commands(model: str, data_file: Path, out_file: Path) -> list[tuple[str, list[str]]]:
    python = sys.executable
    load = f"import gencodec; gencodec.load({model!r}, device='cpu')"
    decompress = [python, "-m", "gencodec", "decompress", str(data_file), "-o", str(out_file), "--force",
                  "--model", model, "--device", "cpu"]
    return [("python", [python, "-c", "pass"]),
            ("import torch", [python, "-c", "import torch"]),
            ("import gencodec", [python, "-c", "import gencodec"]),
            ("gencodec.load()", [python, "-c", load]),
            ("gencodec decompress", decompress)]


def _seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - start


def run_cold_start(codec, model: str, repeats: int = 5, size: tuple[int, int] = (768, 512), log=print) -> list[dict]:
    """Time each start-up step in fresh processes; print and return the rows (medians in seconds)."""
    from .bench import synthetic_photo

    with tempfile.TemporaryDirectory() as folder:
        data_file = Path(folder) / "photo.gcz"
        data_file.write_bytes(codec.compress(synthetic_photo(size[1], size[0])))
        commands = _commands(model, data_file, Path(folder) / "photo.png")
        times: dict[str, list[float]] = {name: [] for name, _ in commands}
        for _ in range(repeats):
            for name, command in commands:  # interleaved, so drifts in machine speed hit every row alike
                times[name].append(_seconds(command))
    log(f"cold start, {size[0]}x{size[1]}, model {model!r}, {repeats} runs each (medians, seconds)")
    log(f"{'step':<22}{'median':>8}{'min':>8}{'max':>8}")
    rows = []
    for name, values in times.items():
        row = {"step": name, "median_s": statistics.median(values), "min_s": min(values), "max_s": max(values)}
        rows.append(row)
        log(f"{name:<22}{row['median_s']:>8.2f}{row['min_s']:>8.2f}{row['max_s']:>8.2f}")
    return rows
