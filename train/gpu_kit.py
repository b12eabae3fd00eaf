#!/usr/bin/env python3
"""The GPU kit's one command: install, test, benchmark, then train for the rest of a time budget.

    python3 train/gpu_kit.py --budget-s 500                  # on a CUDA machine, from the repository root
    python3 train/gpu_kit.py --budget-s 60 --dry-run --pack P --out O   # the same steps, tiny, on the CPU

It is made for a lent GPU machine with no network, where the kit folder
(.gpukit/, built by `make gpu-kit`) travels beside the code:

  1. install  the wheels in KIT/wheels (offline, into a temporary folder on PYTHONPATH), then print the
              versions of everything the code needs and check that the carried ones are the ones in use;
  2. tests    `pytest -m gpu` over GPU_TEST_FILES: bf16 training steps, accelerate launch with resume,
              files encoded on the GPU decoding on the CPU to the same symbols and bytes;
  3. bench    train/gpu_bench.py: compress and decompress at 768x512 and 1920x1080, batch 1 and 16,
              both shipped models;
  4. burst    train/gpu_burst.py: one stage of --config (the pixel family's codec stage by default) in bf16
              from KIT/pack until the budget is spent, beside the same recipe on one CPU core.

Everything it reports goes to OUT ($OUT when set, else --out): kit.md (versions, test summary, the
benchmark table, the burst's figures and how long each step took), kit.log (every line printed), and
the burst's metrics.csv, burst.json and resume/ (its weights in parts of at most 16 MiB). Copy resume/
into KIT/resume and the next run goes on from there. The script itself needs only the standard
library: the packages it installs are not there before step 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Packages the GPU machine lacks, carried as wheels (KIT/wheels), and what they need that it lacks too.
CARRIED = ("diffusers", "constriction", "lpips", "importlib_metadata")
#: Distributions the code needs, printed with their versions (read from their metadata: importing
#: them all would cost a dry run more than its steps).
NEEDED = ("torch", "torchvision", "accelerate", "diffusers", "constriction", "lpips", "safetensors", "numpy",
          "pillow", "pyyaml", "einops", "tqdm", "importlib_metadata", "pytest")
#: Seconds kept at the end of the budget for the burst's last step, saving its weights and the report.
RESERVE_S = {"gpu": 20.0, "dry": 3.0}
#: A burst with less time than this (its start-up included) is not worth starting.
MIN_BURST_S = {"gpu": 90.0, "dry": 2.0}
#: The issue's targets, printed beside the measurements.
PRE_BURST_TARGET_S = 240
SPEEDUP_TARGET = 200
#: The files that hold tests marked `gpu`.
GPU_TEST_FILES = ("tests/test_gpu.py", "tests/test_determinism.py", "tests/test_integer_scale.py")
#: The longest the GPU tests and the benchmark may take on a GPU: a hang must not eat the window.
STEP_LIMIT_S = {"tests": 180.0, "bench": 150.0}


class KitError(Exception):
    """Stops the kit with one line and a non-zero exit."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-s", type=float, required=True, help="seconds for the whole kit, burst included")
    p.add_argument("--kit", type=Path, default=ROOT / ".gpukit", help="the kit folder; default: .gpukit")
    p.add_argument("--pack", type=Path, help="training pack; default: KIT/pack")
    p.add_argument("--config", default=str(ROOT / "configs" / "gpu" / "pixel_1gpu.yaml"),
                   help="config of the burst; default: configs/gpu/pixel_1gpu.yaml")
    p.add_argument("--stage", default="codec", help="the config's stage the burst trains; default: codec")
    p.add_argument("--init", help="model folder for a stage that starts from another (e.g. gencodec/weights/pixel)")
    p.add_argument("--resume-from", type=Path, help="an earlier burst's resume/ folder; default: KIT/resume if there")
    p.add_argument("--out", type=Path, help="report folder; default: $OUT")
    p.add_argument("--dry-run", action="store_true",
                   help="on the CPU, tiny: configs/tiny.yaml, small benchmark sizes, no wheels needed")
    return p.parse_args(argv)


class Kit:
    """The steps, their log and their report."""

    def __init__(self, args):
        self.args, self.started = args, time.monotonic()
        self.mode = "dry" if args.dry_run else "gpu"
        out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else None)
        if out is None:
            raise KitError("no report folder: set $OUT or pass --out")
        self.out = out
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="gencodec-kit-"))
        self.log = open(self.out / "kit.log", "w")
        self.report: list[str] = ["# gencodec GPU kit", ""]
        self.times: list[tuple[str, float]] = []
        self.env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
        if self.mode == "dry":  # tiny tensors: threads only contend, on a machine shared with other work
            self.env["OMP_NUM_THREADS"] = "1"

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()

    def run(self, name: str, command: list[str], check: bool = True, timeout: float | None = None) -> tuple[int, str]:
        """Run a command with the kit's environment, its output printed and logged, killed after `timeout`
        seconds; returns (exit code, output)."""
        self.say(f"$ {' '.join(command)}")
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, start_new_session=True,
                                   stderr=subprocess.STDOUT, text=True, errors="replace")
        # Its own process group, killed whole: children (accelerate launch) would hold the output open.
        watchdog = threading.Timer(timeout, os.killpg, (process.pid, 9)) if timeout else None
        if watchdog:
            watchdog.start()
        lines = []
        for line in process.stdout:
            line = line.rstrip("\n")
            if "\r" in line:  # progress bars: keep their last state
                line = line.rsplit("\r", 1)[-1]
            lines.append(line)
            self.say(line)
        code = process.wait()
        if watchdog:
            watchdog.cancel()
            if watchdog.finished.is_set() and code != 0:
                self.say(f"{name}: stopped after {timeout:.0f} s")
        if check and code != 0:
            raise KitError(f"{name} failed (exit {code}); see kit.log")
        return code, "\n".join(lines)

    def step(self, name: str, function) -> None:
        start = time.monotonic()
        self.say(f"\n== {name} ({self.elapsed():.0f} s into the kit)")
        function()
        self.times.append((name, time.monotonic() - start))

    # -- 1. install --------------------------------------------------------------------------------
    def install(self) -> None:
        wheels = self.args.kit / "wheels"
        found = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
        if not found and self.mode == "dry":
            self.say(f"no wheels in {wheels}: the dry run uses the packages installed here")
        elif not found:
            raise KitError(f"no wheels in {wheels}: build the kit with `make gpu-kit` and carry .gpukit")
        else:
            site = self.work / "site"
            self.run("install", [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                                 "--no-compile", "--no-cache-dir", "--upgrade", "--target", str(site),
                                 *map(str, found)])
            self.env["PYTHONPATH"] = f"{site}{os.pathsep}{ROOT}"
        carried = {wheel_name(w): wheel_version(w) for w in found}
        probe = ("import json, sys\nfrom importlib.metadata import PackageNotFoundError, version\n"
                 "def find(name):\n    try:\n        return version(name)\n"
                 "    except PackageNotFoundError:\n        return None\n"
                 f"versions = {{name: find(name) for name in {list(NEEDED)!r}}}\n"
                 "versions['python'] = sys.version.split()[0]\n"
                 + ("import torch\nversions['cuda'] = torch.version.cuda if torch.cuda.is_available() else None\n"
                    "versions['device'] = torch.cuda.get_device_name() if torch.cuda.is_available() else None\n"
                    if self.mode == "gpu" else "")
                 + "print('VERSIONS ' + json.dumps(versions))")
        _, output = self.run("version check", [sys.executable, "-c", probe])
        versions = json.loads(output.split("VERSIONS ", 1)[1].splitlines()[0])
        missing = [name for name, version in versions.items() if version is None and name != "cuda"]
        if self.mode == "gpu" and versions.get("device") is None:
            raise KitError("no CUDA device: run with --dry-run on a machine without a GPU")
        if missing:
            raise KitError(f"missing packages: {', '.join(missing)} (carry their wheels in {wheels})")
        wrong = [f"{name} {versions.get(name)} (carried {version})" for name, version in carried.items()
                 if versions.get(name) != version]
        if wrong:
            raise KitError(f"the carried wheels are not the ones in use: {', '.join(wrong)}")
        self.versions = versions
        self.report += ["## Versions", "", " ".join(f"{k} {v}," for k, v in versions.items()).rstrip(","),
                        f"(carried: {', '.join(f'{k} {v}' for k, v in carried.items()) or 'nothing'})", ""]

    # -- 2. tests ----------------------------------------------------------------------------------
    def tests(self) -> None:
        code, output = self.run("gpu tests", [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-rs",
                                              "-p", "no:cacheprovider", *GPU_TEST_FILES], check=False,
                                timeout=STEP_LIMIT_S["tests"])
        summary = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)]
        self.tests_passed = code == 0
        self.report += ["## GPU tests", "", f"`pytest -m gpu {' '.join(GPU_TEST_FILES)}`: "
                        f"{summary[-1].strip('= ') if summary else 'no summary'} (exit {code})", ""]

    # -- 3. bench ----------------------------------------------------------------------------------
    def bench(self) -> None:
        rows = self.work / "bench.json"
        sizes = ["--sizes", "64x64", "--batches", "1", "--models", "pixel", "--device", "cpu", "--no-warm-up"] \
            if self.mode == "dry" else []
        code, output = self.run("benchmark", [sys.executable, "train/gpu_bench.py", "--out", str(rows), *sizes],
                                check=False, timeout=STEP_LIMIT_S["bench"])
        table = [line for line in output.splitlines() if line.startswith("|")]
        targets = [line for line in output.splitlines() if line.startswith("target:")]
        rows_done = [line for line in output.splitlines() if re.match(r"\S+ \d+x\d+ batch \d+: ", line)]
        self.report += ["## Benchmark", "", *(table or rows_done), "", *targets,
                        *([f"(stopped: exit {code}; see kit.log)"] if code else []), ""]

    # -- 4. burst ----------------------------------------------------------------------------------
    def burst(self) -> None:
        args = self.args
        seconds = args.budget_s - self.elapsed() - RESERVE_S[self.mode]
        if seconds < MIN_BURST_S[self.mode]:
            raise KitError(f"the budget leaves {seconds:.0f} s for the burst, under its {MIN_BURST_S[self.mode]:.0f} s"
                           f" least: give --budget-s at least {args.budget_s - seconds + MIN_BURST_S[self.mode]:.0f}")
        pack = args.pack or args.kit / "pack"
        if not pack.exists():
            raise KitError(f"no training pack at {pack}: build the kit with `make gpu-kit` or pass --pack")
        resume = args.resume_from or (args.kit / "resume" if (args.kit / "resume").is_dir() else None)
        config = str(ROOT / "configs" / "tiny.yaml") if self.mode == "dry" else args.config
        common = [sys.executable, "train/gpu_burst.py", "--config", config, "--stage", args.stage,
                  "--pack", str(pack), *(["--init", args.init] if args.init else []),
                  *(["--resume-from", str(resume)] if resume else [])]
        # The same recipe on one CPU core, beside the burst (a core the GPU run's loaders leave alone):
        # it ends a minute before the burst so that its last, slow step does not outlast it.
        until = time.time() + seconds
        cpu_until = until - (seconds / 2 if self.mode == "dry" else min(60.0, seconds / 2))
        cpu_log = open(self.work / "cpu_core.log", "w")
        baseline = subprocess.Popen([*common, "--cpu-core", "--until", f"{cpu_until:.1f}",
                                     "--out", str(self.work / "cpu_core")], cwd=ROOT, env=self.env,
                                    stdout=cpu_log, stderr=subprocess.STDOUT)
        self.say(f"burst: {seconds:.0f} s of stage '{args.stage}' of {config}"
                 + (f", going on from {resume}" if resume else "") + "; the same recipe on one CPU core beside it")
        try:
            self.run("burst", [*common, "--until", f"{until:.1f}", "--out", str(self.out)])
            baseline.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        finally:  # the baseline never outlives the burst
            if baseline.poll() is None:
                baseline.kill()
                baseline.wait()
            cpu_log.close()
        cpu_lines = (self.work / "cpu_core.log").read_text().strip().splitlines()
        self.say(f"one CPU core: {cpu_lines[-1] if cpu_lines else 'no output'}")
        gpu = json.loads((self.out / "burst.json").read_text())
        cpu_file = self.work / "cpu_core" / "burst.json"
        cpu = json.loads(cpu_file.read_text()) if cpu_file.is_file() else {}
        gpu_ips, cpu_ips = gpu.get("images_per_second"), cpu.get("images_per_second")
        ratio = f"{gpu_ips / cpu_ips:.0f}x" if gpu_ips and cpu_ips else "not measured"
        self.report += [
            "## Training burst", "",
            f"stage '{gpu['stage']}' of {gpu['config']}, batch {gpu['batch_size']} x {gpu['crop_size']} px",
            "", "| where | precision | steps | images/s |", "| --- | --- | --- | --- |",
            f"| {gpu['device']} | {gpu['mixed_precision']} | {gpu['steps']} ({gpu['steps_in_all']} in all) | "
            f"{_figure(gpu_ips)} |",
            f"| one CPU core | {cpu.get('mixed_precision', '-')} | {cpu.get('steps', '-')} | {_figure(cpu_ips)} |",
            "", f"speed-up over one CPU core: {ratio} (target: at least {SPEEDUP_TARGET}x)",
            f"weights: resume/ ({', '.join(gpu.get('weight_parts', []))}, {gpu.get('weights_bytes', 0) / 1e6:.1f} MB); "
            "copy resume/ to .gpukit/resume to go on from them", ""]

    def finish(self, error: str | None = None) -> None:
        before = sum(seconds for name, seconds in self.times if name != "burst")
        self.report += ["## Time", "", *(f"- {name}: {seconds:.0f} s" for name, seconds in self.times),
                        f"- before the burst: {before:.0f} s (target: at most {PRE_BURST_TARGET_S} s)",
                        f"- in all: {self.elapsed():.0f} s of a {self.args.budget_s:.0f} s budget", ""]
        if error:
            self.report += [f"**stopped**: {error}", ""]
        (self.out / "kit.md").write_text("\n".join(self.report) + "\n")
        self.say("\n" + "\n".join(self.report))
        self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)


def _figure(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def wheel_name(wheel: Path) -> str:
    return wheel.name.split("-")[0].lower()


def wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def main(argv=None) -> int:
    args = parse_args(argv)
    least = MIN_BURST_S["dry" if args.dry_run else "gpu"] + RESERVE_S["dry" if args.dry_run else "gpu"]
    if args.budget_s < least:  # before any work: a window too short for a burst is better spent otherwise
        raise KitError(f"the budget leaves no time for the burst: give --budget-s at least {least:.0f} "
                       "beyond the time the other steps take")
    kit = Kit(args)
    error = None
    try:
        kit.step("install", kit.install)
        kit.step("tests", kit.tests)
        kit.step("bench", kit.bench)
        kit.step("burst", kit.burst)
    except KitError as exc:
        error = str(exc)
    kit.finish(error)
    if error:
        print(f"gpu_kit.py: error: {error}", file=sys.stderr)
        return 1
    return 0 if kit.tests_passed else 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KitError as exc:
        print(f"gpu_kit.py: error: {exc}", file=sys.stderr)
        sys.exit(1)
