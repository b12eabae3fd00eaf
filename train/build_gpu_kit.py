#!/usr/bin/env python3
"""Build .gpukit/: the wheels a GPU machine lacks and a training pack, checked to travel in 64 MiB.

    python3 train/build_gpu_kit.py [--photos ../shared/data/train] [--kit .gpukit]      (make gpu-kit)

What travels to a lent GPU machine is the working tree (tracked files and untracked ones git does
not ignore) plus the folders named to carry, 64 MiB in all. This script:

  1. downloads, for Python 3.12 on x86-64 Linux, the wheels of the packages the machine lacks
     (train/gpu_kit.py: CARRIED, at the versions installed here) into KIT/wheels;
  2. packs the photos (gencodec pack: one central 256 px crop of each, WebP at quality 85) into
     KIT/pack, in the room that the tree, the wheels and the weights of a later burst leave;
  3. prints what travels and fails if it is over 64 MiB.

KIT/resume (an earlier burst's weights, copied there by hand) counts too when present; otherwise
room for it is kept (RESUME_RESERVE).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "train"))
from gpu_kit import CARRIED  # noqa: E402  (the one list of carried packages)

MIB = 1 << 20
LIMIT = 64 * MIB
#: Room kept for an earlier burst's weights (the pixel codec stage's are 9.2 MB in float16).
RESUME_RESERVE = 10 * MIB
#: Kept free for what changes in the tree between building the kit and using it.
MARGIN = 1 * MIB
#: The most the pack may take, whatever room there is.
MAX_PACK = 40_000_000
PIP_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                 "manylinux1_x86_64")


def travelling_tree_bytes() -> int:
    """Bytes of the files that travel with the working tree: tracked, and untracked but not ignored."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    return sum((ROOT / name.decode()).stat().st_size for name in listed
               if name and (ROOT / name.decode()).is_file())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def download_wheels(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in CARRIED]
    platforms = [arg for p in PIP_PLATFORMS for arg in ("--platform", p)]
    print(f"downloading {', '.join(pins)} for Python 3.12 (x86-64 Linux) into {folder}")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(folder), *pins],
                   check=True)


def build_pack(photos: Path, folder: Path, budget: int) -> dict:
    print(f"packing {photos} into {folder} within {budget / 1e6:.1f} MB")
    subprocess.run([sys.executable, "-m", "gencodec", "pack", str(photos), str(folder), "--max-side", "512",
                    "--crop", "256", "--format", "webp", "--quality", "85", "--budget-mb", f"{budget / 1e6:.3f}"],
                   cwd=ROOT, check=True)
    return json.loads((folder / "index.json").read_text())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "train",
                   help="folder of training photos; default: ../shared/data/train")
    p.add_argument("--kit", type=Path, default=ROOT / ".gpukit", help="the kit folder; default: .gpukit")
    p.add_argument("--skip-wheels", action="store_true", help="keep KIT/wheels as it is")
    args = p.parse_args(argv)
    if not args.photos.is_dir():
        print(f"build_gpu_kit.py: error: no photos folder {args.photos}", file=sys.stderr)
        return 1
    if not args.skip_wheels:
        download_wheels(args.kit / "wheels")
    tree, wheels = travelling_tree_bytes(), folder_bytes(args.kit / "wheels")
    resume = folder_bytes(args.kit / "resume") or RESUME_RESERVE
    room = LIMIT - tree - wheels - resume - MARGIN
    if room < 1_000_000:
        print(f"build_gpu_kit.py: error: no room for a pack: the tree takes {tree / MIB:.1f} MiB, the wheels "
              f"{wheels / MIB:.1f} MiB, the weights {resume / MIB:.1f} MiB of {LIMIT / MIB:.0f} MiB", file=sys.stderr)
        return 1
    index = build_pack(args.photos, args.kit / "pack", min(room, MAX_PACK))
    pack = folder_bytes(args.kit / "pack")
    total = tree + wheels + pack + folder_bytes(args.kit / "resume")
    print(f"what travels: tree {tree / MIB:.1f} MiB + wheels {wheels / MIB:.1f} MiB + pack {pack / MIB:.1f} MiB "
          f"({index['images']} crops) + resume {folder_bytes(args.kit / 'resume') / MIB:.1f} MiB = "
          f"{total / MIB:.1f} MiB of {LIMIT / MIB:.0f} MiB (room kept for a burst's weights: {resume / MIB:.1f} MiB)")
    if total + (RESUME_RESERVE if not (args.kit / "resume").exists() else 0) > LIMIT:
        print("build_gpu_kit.py: error: the kit is over 64 MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
