#!/usr/bin/env python
"""Rate-quality curves from one or more `gencodec eval` folders, on shared axes.

    python demos/rd_curves.py runs/eval_a runs/eval_b/results.json --out rd

Writes OUT/rd_<metric>.png and .svg for every metric the runs measured
(PSNR, MS-SSIM, LPIPS, DISTS, FID, KID). With several runs each line is
labelled with its model name (and its folder, where two runs share a name).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from gencodec.errors import GencodecError
from gencodec.evaluation.report import model_label, load_results, plot_rate_quality


def run_labels(paths: list[Path], runs: list[dict]) -> list[str]:
    """Model names, with the eval folder (or the path as given) added where two runs share a name."""
    names = [model_label(r) for r in runs]
    folders = [(p if p.is_dir() else p.parent).resolve().name for p in paths]
    where = folders if len(set(zip(names, folders))) == len(runs) else [str(p) for p in paths]
    counts = Counter(names)
    return [name if counts[name] == 1 else f"{name}, {w}" for name, w in zip(names, where)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="DIR", help="an eval folder (gencodec eval --out) or its results.json")
    p.add_argument("--out", default="rd_curves", help="folder for the plots; default: %(default)s")
    args = p.parse_args(argv)
    try:
        paths = [Path(r) for r in args.runs]
        runs = [load_results(path) for path in paths]
        written = plot_rate_quality(runs, args.out, labels=run_labels(paths, runs))
    except GencodecError as exc:
        print(f"rd_curves.py: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"rd_curves.py: error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if not written:
        print("rd_curves.py: error: the runs have no measured metrics to plot", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
