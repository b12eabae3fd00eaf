"""`gencodec eval`: a model on a folder of photos, against classical codecs at the same bytes.

For every photo and rate level it writes a real gencodec file, decodes it at
each realism, and measures PSNR, thumb-PSNR (layout and colour: PSNR of the
1/8 area-downsampled images), the per-channel colour bias, MS-SSIM, LPIPS (and
DISTS where available). For each of those files it then searches every
classical codec's quality and downscale factor for its best file of at most
the same size (gencodec.evaluation.baselines), ranked by LPIPS (else PSNR),
and measures that too; each classical record also keeps that codec's best
file by PSNR (`by_psnr`), since the two rankings pick different files. FID and KID on patches
(gencodec.evaluation.metrics) compare each (codec, level, realism) group with the
originals once everything is decoded.

    DIR/run.json          the model and the settings the records belong to
    DIR/records.jsonl     one record per finished item, appended as it finishes
    DIR/originals/        the photos as RGB PNG
    DIR/recon/<photo>/    every reconstruction
    DIR/results.json      records + FID/KID + notes (gencodec.evaluation.report reads it)
    DIR/results.csv       the records as a table

A run that stops part-way (a kill, a crash, Ctrl-C) loses at most the item in
progress: run the same command again and finished items are skipped.

The classical searches take most of the time. A run can take them from an
earlier run's folder (`baselines_from`) wherever they still apply: the same
photo, the same target size, the same metrics. A new decoder on an unchanged
codec writes files of the same sizes, so only its own decoding is redone.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import GencodecError
from ..fileio import write_atomic
from ..imageio import find_images, load_image, save_image

if TYPE_CHECKING:
    from ..codec import Codec

RESULTS = "results.json"
RECORDS = "records.jsonl"
RUN = "run.json"
CSV_FIELDS = ("image", "width", "height", "codec", "level", "realism", "steps", "target_bytes", "quality", "scale",
              "bytes", "bpp", "psnr", "thumb_psnr", "bias_r", "bias_g", "bias_b", "abs_colour_bias", "mesh",
              "detail_smooth", "detail_busy", "ms_ssim", "lpips", "dists", "psnr_by_psnr", "encode_s", "decode_s", "file", "skipped")
#: Sets with fewer photos than this use 64-px FID patches (HiFiC's choice for Kodak), others 256 px.
SMALL_SET = 100


@dataclass
class EvalSettings:
    levels: list[int]
    realism: list[float] = field(default_factory=lambda: [0.0, 1.0])
    steps: int | None = None
    seed: int = 0
    baselines: list[str] = field(default_factory=list)
    fid: bool = False
    patch_size: int | None = None   # None: 64 for small sets, 256 otherwise
    limit: int | None = None         # evaluate only the first N photos


class Measurer:
    """The per-image metrics, with the networks loaded once."""

    def __init__(self, lpips_net=None, dists_net=None):
        self.lpips_net = lpips_net
        self.dists_net = dists_net

    def __call__(self, decoded: np.ndarray, original: np.ndarray) -> dict:
        from . import metrics
        return {
            "psnr": metrics.psnr(decoded, original),
            **self.fidelity(decoded, original),
            "ms_ssim": metrics.ms_ssim(decoded, original),
            "lpips": _or_none(metrics.lpips, self.lpips_net, decoded, original),
            "dists": _or_none(metrics.dists, self.dists_net, decoded, original),
        }

    @staticmethod
    def fidelity(decoded: np.ndarray, original: np.ndarray) -> dict:
        """Layout and colour: thumb-PSNR, the per-channel colour bias and its mean absolute value; the
        fixed pattern a decoder draws (mesh); and the texture where the photo is smooth and where it is busy."""
        from . import metrics
        bias = metrics.colour_bias(decoded, original)
        return {"thumb_psnr": metrics.thumb_psnr(decoded, original), "colour_bias": bias,
                "abs_colour_bias": float(np.mean(np.abs(bias))), "mesh": metrics.mesh(decoded, original),
                **Measurer.detail(decoded, original)}

    @staticmethod
    def detail(decoded: np.ndarray, original: np.ndarray) -> dict:
        from . import metrics
        smooth, busy = metrics.detail_ratios(decoded, original)
        return {"detail_smooth": smooth, "detail_busy": busy}

    def selection_score(self, original: np.ndarray):
        """How a baseline's candidates are ranked: by LPIPS when it is available, else by PSNR."""
        from . import metrics
        if self.lpips_net is not None:
            return lambda decoded: -metrics.lpips(self.lpips_net, decoded, original)
        return lambda decoded: metrics.psnr(decoded, original)


def _or_none(metric, net, decoded: np.ndarray, original: np.ndarray) -> float | None:
    """A network metric, or None without its network or on images too small for it (AlexNet: 31 px)."""
    if net is None:
        return None
    try:
        return metric(net, decoded, original)
    except GencodecError:
        return None


def _key(codec: str, image: str, level: int, realism: float | None) -> str:
    return f"{codec}|{image}|{level}|{'' if realism is None else f'{realism:g}'}"


def _record_key(record: dict) -> str:
    return _key(record["codec"], record["image"], record["level"], record.get("realism"))


def read_records(path: Path) -> dict[str, dict]:
    """Finished records by key; a torn last line (a kill mid-write) is ignored."""
    records: dict[str, dict] = {}
    if not path.exists():
        return records
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        records[_record_key(record)] = record
    return records


def check_restartable(out: Path) -> None:
    """`eval --restart` deletes `out`: only an empty folder or one that an eval made (its run.json) may go."""
    if not out.exists():
        return
    if not out.is_dir():
        raise GencodecError(f"--out '{out}' is a file, not an eval folder")
    marker = out / RUN
    try:
        made_by_eval = "fingerprint" in json.loads(marker.read_text())
    except (OSError, ValueError, TypeError):
        made_by_eval = False
    if not made_by_eval and any(out.iterdir()):
        raise GencodecError(f"--restart deletes only a folder that gencodec eval made (with its {RUN}): "
                            f"'{out}' is not one; give another --out")


def _check_run(out: Path, run: dict) -> None:
    """Refuse to mix records of another model or other sampling settings into one folder."""
    path = out / RUN
    if path.exists():
        old = json.loads(path.read_text())
        for key in ("fingerprint", "encoder_search", "steps", "seed"):
            if old.get(key) != run.get(key):
                raise GencodecError(
                    f"{out} holds results for another {key} ({old.get(key)!r}, now {run.get(key)!r}); "
                    "use another --out, or --restart to discard them")
    write_atomic(path, json.dumps(run, indent=1))


class _RecordLog:
    def __init__(self, path: Path):
        self.path = path
        self.records = read_records(path)

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def add(self, record: dict) -> None:
        self.records[_record_key(record)] = record
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


class _EarlierBaselines:
    """Classical records of an earlier run, handed out only where they still hold for this one."""

    def __init__(self, folder: str | os.PathLike | None, measurer: Measurer):
        self.folder = Path(folder) if folder is not None else None
        self.records = {}
        if self.folder is not None:
            if not (self.folder / RECORDS).is_file():
                raise GencodecError(f"{str(self.folder)!r} holds no eval records ({RECORDS}) to take baselines from")
            self.records = {k: r for k, r in read_records(self.folder / RECORDS).items() if r["codec"] != "gencodec"}
        # Records measured with other networks would mix metrics (and a PSNR-ranked search
        # picks other files than an LPIPS-ranked one), so they must agree on which exist.
        self.metrics = {"lpips": measurer.lpips_net is not None, "dists": measurer.dists_net is not None}
        self._same_photo: dict[str, bool] = {}

    def take(self, codec_name: str, image_name: str, image: np.ndarray, level: int, target_bytes: int,
             out: Path) -> dict | None:
        """The earlier record for this item, its reconstruction copied into `out`; None if it does not apply."""
        record = self.records.get(_key(codec_name, image_name, level, None))
        if record is None or record.get("target_bytes") != target_bytes or not self._photo_matches(image_name, image):
            return None
        if not record.get("skipped"):
            if any((record.get(k) is not None) != wanted for k, wanted in self.metrics.items()):
                return None
            if "thumb_psnr" not in record or "by_psnr" not in record:
                return None  # an eval from before the fidelity measures
            source = self.folder / record["file"]
            if not source.is_file():
                return None
            target = out / record["file"]
            if target.resolve() != source.resolve():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
            if "mesh" not in record:  # an eval from before the mesh measure: measured on the kept picture
                from . import metrics
                record = dict(record, mesh=metrics.mesh(load_image(source), image))
            if "detail_smooth" not in record:  # likewise for the detail measure
                record = dict(record, **Measurer.detail(load_image(source), image))
        return dict(record)

    def _photo_matches(self, image_name: str, image: np.ndarray) -> bool:
        if image_name not in self._same_photo:
            original = self.folder / "originals" / f"{image_name}.png"
            self._same_photo[image_name] = original.is_file() and np.array_equal(load_image(original), image)
        return self._same_photo[image_name]


@dataclass
class _Job:
    """What every item of one run needs."""

    codec: Codec
    out: Path
    settings: EvalSettings
    realisms: list[float]
    measurer: Measurer
    earlier: _EarlierBaselines
    log_file: _RecordLog


@dataclass
class _Photo:
    """One photo under evaluation."""

    name: str
    image: np.ndarray
    score: Callable[[np.ndarray], float] | None = None  # ranks classical candidates; made on first need

    @property
    def width(self) -> int:
        return self.image.shape[1]

    @property
    def height(self) -> int:
        return self.image.shape[0]

    def common(self) -> dict:
        return {"image": self.name, "width": self.width, "height": self.height}


def run_eval(codec, data_dir, out_dir, settings: EvalSettings, measurer: Measurer | None = None,
             inception=None, model_name: str = "", progress: bool = True, log=print,
             baselines_from: str | os.PathLike | None = None) -> dict:
    """Evaluate, resuming whatever `out_dir` already holds; returns (and writes) the results dict.

    `baselines_from`: an earlier run's folder, whose classical records are taken
    wherever they still apply instead of searching again.
    """
    measurer = measurer or Measurer()
    out = Path(out_dir)
    photos = _photos_to_evaluate(data_dir, settings)
    _check_settings(codec, settings)
    realisms = codec.realism_values(settings.realism)
    earlier = _EarlierBaselines(baselines_from, measurer)
    log_file = _open_run(out, codec, settings, model_name)
    job = _Job(codec, out, settings, realisms, measurer, earlier, log_file)
    originals = _evaluate_photos(job, photos, _unique_names(photos, Path(data_dir)), progress)
    return _write_results(job, originals, inception, model_name, log)


def _photos_to_evaluate(data_dir, settings: EvalSettings) -> list[Path]:
    photos = find_images(data_dir)
    if not photos:
        raise GencodecError(f"no images (.jpg .jpeg .png .webp) in {str(data_dir)!r}")
    return photos[: settings.limit] if settings.limit else photos


def _check_settings(codec: Codec, settings: EvalSettings) -> None:
    from .baselines import available_codecs

    bad = [lv for lv in settings.levels if not 0 <= lv < codec.n_levels]
    if bad:
        raise GencodecError(f"level {bad[0]} is out of range: this model has levels 0..{codec.n_levels - 1}")
    missing = [b for b in settings.baselines if b not in available_codecs()]
    if missing:
        raise GencodecError(f"classical codec '{missing[0]}' is not available here "
                            f"(available: {', '.join(available_codecs())})")


def _open_run(out: Path, codec: Codec, settings: EvalSettings, model_name: str) -> _RecordLog:
    """The output folder's record log, once its run record agrees with this run."""
    out.mkdir(parents=True, exist_ok=True)
    run = {"model": model_name, "fingerprint": codec.fingerprint, "encoder_search": codec.encoder_search,
           "steps": settings.steps, "seed": settings.seed}
    _check_run(out, run)
    return _RecordLog(out / RECORDS)


def _unique_names(photos: list[Path], root: Path) -> list[str]:
    """Photo stems, made unique with their folder when two photos share one."""
    stems = [p.stem for p in photos]
    if len(set(stems)) == len(stems):
        return stems
    return [str(p.relative_to(root).with_suffix("")).replace(os.sep, "__") for p in photos]


def _evaluate_photos(job: _Job, photos: list[Path], names: list[str], progress: bool) -> dict[str, str]:
    """Every item not yet recorded; returns each photo's original file, by photo name."""
    from tqdm.auto import tqdm

    per_image = len(job.settings.levels) * (len(job.realisms) + len(job.settings.baselines))
    bar = tqdm(total=len(photos) * per_image, desc="eval", unit="item", disable=not progress, dynamic_ncols=True)
    originals = {}
    for photo, name in zip(photos, names):
        originals[name] = _evaluate_photo(job, photo, name, bar)
    bar.close()
    return originals


def _evaluate_photo(job: _Job, path: Path, name: str, bar) -> str:
    """All levels of one photo; returns its original file."""
    image = load_image(path)
    original_file = f"originals/{name}.png"
    if not (job.out / original_file).exists():
        (job.out / "originals").mkdir(exist_ok=True)
        save_image(image, job.out / original_file)
    (job.out / "recon" / name).mkdir(parents=True, exist_ok=True)
    photo = _Photo(name, image)
    for level in job.settings.levels:
        _evaluate_level(job, photo, level, bar)
    return original_file


def _evaluate_level(job: _Job, photo: _Photo, level: int, bar) -> None:
    """Our file at one level, decoded at each realism, and each classical codec at its size."""
    realisms, baselines = job.realisms, job.settings.baselines
    todo = [r for r in realisms if _key("gencodec", photo.name, level, r) not in job.log_file]
    base_todo = [b for b in baselines if _key(b, photo.name, level, None) not in job.log_file]
    if not todo and not base_todo:
        bar.update(len(realisms) + len(baselines))
        return
    # Classical codecs are matched to the size of a real file, so it is made even when
    # only they are left to do.
    t0 = time.perf_counter()
    data = job.codec.compress(photo.image, level=level)
    encode_s = time.perf_counter() - t0
    (job.out / "recon" / photo.name / f"gencodec_L{level}.gcz").write_bytes(data)
    bar.update(len(realisms) - len(todo))
    for realism in todo:
        job.log_file.add(_our_record(job, photo, level, realism, data, encode_s))
        bar.update(1)
    bar.update(len(baselines) - len(base_todo))
    for codec_name in base_todo:
        job.log_file.add(_classical_record(job, photo, level, codec_name, len(data)))
        bar.update(1)


def _our_record(job: _Job, photo: _Photo, level: int, realism: float, data: bytes, encode_s: float) -> dict:
    """Decodes our file at one realism, saving the reconstruction; returns its record."""
    settings = job.settings
    t0 = time.perf_counter()
    decoded = np.asarray(job.codec.decompress(data, realism=realism, steps=settings.steps, seed=settings.seed))
    decode_s = time.perf_counter() - t0
    file = f"recon/{photo.name}/gencodec_L{level}_r{realism:g}.png"
    save_image(decoded, job.out / file)
    return {**photo.common(), "codec": "gencodec", "level": level, "realism": realism, "steps": settings.steps,
            "bytes": len(data), "bpp": 8 * len(data) / (photo.width * photo.height),
            **job.measurer(decoded, photo.image), "encode_s": encode_s, "decode_s": decode_s, "file": file}


def _classical_record(job: _Job, photo: _Photo, level: int, codec_name: str, target_bytes: int) -> dict:
    """One classical codec's best file of at most `target_bytes`, from an earlier run or searched for."""
    from . import metrics
    from .baselines import best_candidate, candidates, decode as baseline_decode

    reused = job.earlier.take(codec_name, photo.name, photo.image, level, target_bytes, job.out)
    if reused is not None:
        return reused
    photo.score = photo.score or job.measurer.selection_score(photo.image)
    t0 = time.perf_counter()
    files = candidates(photo.image, codec_name, target_bytes, score=photo.score)
    search_s = time.perf_counter() - t0
    record = {**photo.common(), "codec": codec_name, "level": level, "realism": None, "steps": None,
              "target_bytes": target_bytes}
    found = best_candidate(files)
    if found is None:
        record.update(bytes=None, bpp=None, skipped=f"no setting fits {target_bytes} bytes")
        return record
    t0 = time.perf_counter()
    decoded = baseline_decode(found.data, codec_name, (photo.width, photo.height))
    decode_s = time.perf_counter() - t0
    file = f"recon/{photo.name}/{codec_name}_L{level}.png"
    save_image(decoded, job.out / file)
    # The same search ranked by PSNR: at extreme rates it often picks a smaller scale than LPIPS does.
    by_psnr = max(files, key=lambda r: metrics.psnr(r.decoded, photo.image))
    record.update(quality=found.quality, scale=found.scale, bytes=found.bytes,
                  bpp=8 * found.bytes / (photo.width * photo.height), **job.measurer(decoded, photo.image),
                  by_psnr={"quality": by_psnr.quality, "scale": by_psnr.scale, "bytes": by_psnr.bytes,
                           "psnr": metrics.psnr(by_psnr.decoded, photo.image),
                           **Measurer.fidelity(by_psnr.decoded, photo.image)},
                  encode_s=search_s, decode_s=decode_s, file=file)
    return record


def _write_results(job: _Job, originals: dict[str, str], inception, model_name: str, log) -> dict:
    """FID/KID over this run's photos, then results.json and results.csv."""
    records = [r for r in job.log_file.records.values() if r["image"] in originals]
    distribution = []
    if job.settings.fid:
        distribution = distribution_metrics(job.out, records, originals, inception, job.settings, log)
    results = {
        "model": {"name": model_name, "fingerprint": job.codec.fingerprint,
                  "trained_steps": int(job.codec.model.config.trained_steps), "levels": job.codec.n_levels,
                  "encoder_search": job.codec.encoder_search},
        "settings": {**asdict(job.settings), "realism": job.realisms},
        "notes": notes(job.settings, job.measurer, inception),
        "records": records,
        "distribution": distribution,
        "originals": originals,
    }
    write_atomic(job.out / RESULTS, json.dumps(results, indent=1))
    write_csv(job.out / "results.csv", records)
    return results


def distribution_metrics(out: Path, records: list[dict], originals: dict, inception, settings: EvalSettings,
                         log=print) -> list[dict]:
    """FID and KID per (codec, level, realism) group, on patches, against the originals' patches."""
    from . import metrics

    if inception is None:
        return []
    size = settings.patch_size or (64 if len(originals) < SMALL_SET else 256)

    def features(files: list[str]) -> np.ndarray:
        patches = [p for f in files for p in metrics.extract_patches(load_image(out / f), size)]
        return inception(patches)

    reference = features(list(originals.values()))
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r.get("file"):
            groups.setdefault((r["codec"], r["level"], r.get("realism")), []).append(r)
    rows = []
    if len(reference) < 2:
        log(f"FID/KID skipped: the photos give fewer than 2 patches of {size} px")
        return []
    for (codec_name, level, realism), group in sorted(groups.items(), key=lambda kv: str(kv[0])):
        feats = features([r["file"] for r in group])
        if len(feats) < 2:
            continue
        kid, kid_std = metrics.kernel_inception_distance(feats, reference)
        rows.append({"codec": codec_name, "level": level, "realism": realism,
                     "bpp": float(np.mean([r["bpp"] for r in group])),
                     "fid": metrics.frechet_distance(feats, reference), "kid": kid, "kid_std": kid_std,
                     "patches": len(feats), "patch_size": size, "images": len(group)})
        log(f"FID/KID {codec_name} level {level} realism {realism}: {rows[-1]['fid']:.2f} / {kid:.4f}")
    return rows


def notes(settings: EvalSettings, measurer: Measurer, inception) -> list[str]:
    from . import baselines
    out = [baselines.BYTES_COUNTED,
           "gencodec bytes are whole .gcz files (8-byte header, ANS stream, 2-byte checksum)",
           "each classical codec's quality and downscale factor are searched for the best file at or under "
           "the gencodec file's size, ranked by " + ("LPIPS" if measurer.lpips_net is not None else "PSNR")
           + "; downscaled files are upscaled back with Lanczos before measuring"]
    if measurer.lpips_net is None:
        out.append("LPIPS skipped: no AlexNet weights (--lpips-weights or GENCODEC_LPIPS_WEIGHTS)")
    if measurer.dists_net is None:
        out.append("DISTS skipped: no VGG16 weights (--vgg16-weights or GENCODEC_VGG16_WEIGHTS)")
    if settings.fid and inception is None:
        out.append("FID/KID skipped: no Inception network")
    elif not settings.fid:
        out.append("FID/KID not computed (run with --fid)")
    return out


def _csv_row(record: dict) -> dict:
    """A record flattened for the table: the colour bias per channel, the PSNR-ranked file's PSNR."""
    row = dict(record)
    for channel, value in zip(("bias_r", "bias_g", "bias_b"), record.get("colour_bias") or ()):
        row[channel] = value
    row["psnr_by_psnr"] = (record.get("by_psnr") or {}).get("psnr")
    return row


def write_csv(path: Path, records: list[dict]) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(_csv_row(r) for r in records)
    write_atomic(path, text.getvalue())
