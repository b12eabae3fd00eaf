#!/usr/bin/env python
"""Rate-quality curves from one or more `gencodec eval` folders, on shared axes.

    python demos/rd_curves.py runs/eval_a runs/eval_b/results.json --out rd

Writes OUT/rd_<metric>.png and .svg for every metric the runs measured
(PSNR, MS-SSIM, LPIPS, DISTS, FID, KID). With several runs each line is
labelled with its model name (and its folder, where two runs share a name).

    python demos/rd_curves.py eval_a eval_b --at-bpp 0.005,0.01,0.02,0.05 --realism 1

also prints each run's mean LPIPS (or --metric) at those rates, read off its
curve of per-level means by linear interpolation in log bpp, and their mean
over the range: how two models compare at matched rate. A rate outside a
run's ladder shows as "-".
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path

from gencodec.errors import GencodecError
from gencodec.evaluation.report import load_results, model_label, plot_rate_quality, summary_table


def _shortest_distinct(names: list[str]) -> list[str]:
    """Model paths cut to their last components, as few as keep them apart ('l32/model', 'fast/model')."""
    parts = [Path(name).parts for name in names]
    for keep in range(1, max(map(len, parts), default=0) + 1):
        short = ["/".join(p[-keep:]) for p in parts]
        if len(set(short)) == len(set(names)):
            return short
    return names


def run_labels(paths: list[Path], runs: list[dict]) -> list[str]:
    """Model names (paths cut short), with the eval folder (or the path as given) added where two runs share
    a name."""
    names = [model_label(r) for r in runs]
    paths_given = [i for i, name in enumerate(names) if "/" in name]
    for i, short in zip(paths_given, _shortest_distinct([names[i] for i in paths_given])):
        names[i] = short
    folders = [(p if p.is_dir() else p.parent).resolve().name for p in paths]
    where = folders if len(set(zip(names, folders))) == len(runs) else [str(p) for p in paths]
    counts = Counter(names)
    return [name if counts[name] == 1 else f"{name}, {w}" for name, w in zip(names, where)]


def at_rates(results: dict, rates: list[float], metric: str = "lpips", realism: float = 1.0) -> list[float | None]:
    """The model's mean `metric` at each bpp in `rates`, interpolated linearly in log bpp between
    its levels' means at `realism`; None outside its ladder."""
    curve = sorted((row["bpp"], row[metric]) for row in summary_table(results)
                   if row["codec"] == "gencodec" and row["realism"] == realism
                   and row.get("bpp") and row.get(metric) is not None)
    values = []
    for rate in rates:
        value = None
        for (b0, m0), (b1, m1) in zip(curve, curve[1:]):
            if b0 <= rate <= b1:
                t = (math.log(rate) - math.log(b0)) / (math.log(b1) - math.log(b0)) if b1 > b0 else 0.0
                value = m0 + t * (m1 - m0)
                break
        values.append(value)
    return values


def print_matched(runs: list[dict], labels: list[str], rates: list[float], metric: str, realism: float) -> None:
    print(f"mean {metric} at realism {realism:g}, at matched bpp (interpolated in log bpp)")
    width = max(24, *(len(label) + 1 for label in labels))
    print(f"{'model':<{width}}" + "".join(f"{r:>9g}" for r in rates) + f"{'mean':>9}")
    for label, run in zip(labels, runs):
        values = at_rates(run, rates, metric, realism)
        known = [v for v in values if v is not None]
        mean = f"{sum(known) / len(known):9.4f}" if len(known) == len(values) else f"{'-':>9}"
        print(f"{label:<{width}}" + "".join(f"{v:9.4f}" if v is not None else f"{'-':>9}" for v in values) + mean)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="DIR", help="an eval folder (gencodec eval --out) or its results.json")
    p.add_argument("--out", default="rd_curves", help="folder for the plots; default: %(default)s")
    p.add_argument("--at-bpp", metavar="R,R,...", type=lambda t: [float(v) for v in t.split(",")],
                   help="also print each run's metric at these bpp (matched rate)")
    p.add_argument("--metric", default="lpips", help="the metric --at-bpp prints; default: %(default)s")
    p.add_argument("--realism", type=float, default=1.0, help="the realism --at-bpp reads; default: %(default)s")
    p.add_argument("--labels", metavar="A,B,...", type=lambda t: t.split(","),
                   help="one label per run, in order; default: each run's model name")
    args = p.parse_args(argv)
    if args.labels is not None and len(args.labels) != len(args.runs):
        p.error(f"--labels gives {len(args.labels)} labels for {len(args.runs)} runs")
    try:
        paths = [Path(r) for r in args.runs]
        runs = [load_results(path) for path in paths]
        labels = args.labels or run_labels(paths, runs)
        written = plot_rate_quality(runs, args.out, labels=labels)
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
    if args.at_bpp:
        print_matched(runs, labels, args.at_bpp, args.metric, args.realism)
    return 0


if __name__ == "__main__":
    sys.exit(main())
