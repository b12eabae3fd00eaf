"""`gencodec eval`: a model on a folder of photos, against classical codecs at the same bytes.

For every photo and rate level it writes a real gencodec file, decodes it at
each realism, and measures PSNR, MS-SSIM, LPIPS (and DISTS where available).
For each of those files it then searches every classical codec's quality and
downscale factor for its best file of at most the same size
(gencodec.evaluation.baselines) and measures that too. FID and KID on patches
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
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..imageio import find_images
from ..errors import GencodecError
from ..imageio import load_image, save_image

RESULTS = "results.json"
RECORDS = "records.jsonl"
RUN = "run.json"
CSV_FIELDS = ("image", "width", "height", "codec", "level", "realism", "steps", "target_bytes", "quality", "scale",
              "bytes", "bpp", "psnr", "ms_ssim", "lpips", "dists", "encode_s", "decode_s", "file", "skipped")
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
            "ms_ssim": metrics.ms_ssim(decoded, original),
            "lpips": _or_none(metrics.lpips, self.lpips_net, decoded, original),
            "dists": _or_none(metrics.dists, self.dists_net, decoded, original),
        }

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


def _check_run(out: Path, run: dict) -> None:
    """Refuse to mix records of another model or other sampling settings into one folder."""
    path = out / RUN
    if path.exists():
        old = json.loads(path.read_text())
        for key in ("fingerprint", "steps", "seed"):
            if old.get(key) != run.get(key):
                raise GencodecError(
                    f"{out} holds results for another {key} ({old.get(key)!r}, now {run.get(key)!r}); "
                    "use another --out, or --restart to discard them")
    _atomic_write(path, json.dumps(run, indent=1))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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
            source = self.folder / record["file"]
            if not source.is_file():
                return None
            target = out / record["file"]
            if target.resolve() != source.resolve():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
        return dict(record)

    def _photo_matches(self, image_name: str, image: np.ndarray) -> bool:
        if image_name not in self._same_photo:
            original = self.folder / "originals" / f"{image_name}.png"
            self._same_photo[image_name] = original.is_file() and np.array_equal(load_image(original), image)
        return self._same_photo[image_name]


def run_eval(codec, data_dir, out_dir, settings: EvalSettings, measurer: Measurer | None = None,
             inception=None, model_name: str = "", progress: bool = True, log=print,
             baselines_from: str | os.PathLike | None = None) -> dict:
    """Evaluate, resuming whatever `out_dir` already holds; returns (and writes) the results dict.

    `baselines_from`: an earlier run's folder, whose classical records are taken
    wherever they still apply instead of searching again.
    """
    from tqdm.auto import tqdm

    from .baselines import available_codecs, decode as baseline_decode, match_bytes

    measurer = measurer or Measurer()
    out = Path(out_dir)
    photos = find_images(data_dir)
    if not photos:
        raise GencodecError(f"no images (.jpg .jpeg .png .webp) in {str(data_dir)!r}")
    photos = photos[: settings.limit] if settings.limit else photos
    bad = [lv for lv in settings.levels if not 0 <= lv < codec.n_levels]
    if bad:
        raise GencodecError(f"level {bad[0]} is out of range: this model has levels 0..{codec.n_levels - 1}")
    missing = [b for b in settings.baselines if b not in available_codecs()]
    if missing:
        raise GencodecError(f"classical codec '{missing[0]}' is not available here "
                            f"(available: {', '.join(available_codecs())})")
    realisms = codec.realism_values(settings.realism)
    earlier = _EarlierBaselines(baselines_from, measurer)
    out.mkdir(parents=True, exist_ok=True)
    run = {"model": model_name, "fingerprint": codec.fingerprint, "steps": settings.steps, "seed": settings.seed}
    _check_run(out, run)
    log_file = _RecordLog(out / RECORDS)

    names = _unique_names(photos, Path(data_dir))
    per_image = len(settings.levels) * (len(realisms) + len(settings.baselines))
    bar = tqdm(total=len(photos) * per_image, desc="eval", unit="item", disable=not progress, dynamic_ncols=True)
    originals = {}
    for photo, name in zip(photos, names):
        image = load_image(photo)
        height, width = image.shape[:2]
        original_file = f"originals/{name}.png"
        originals[name] = original_file
        if not (out / original_file).exists():
            (out / "originals").mkdir(exist_ok=True)
            save_image(image, out / original_file)
        recon = out / "recon" / name
        recon.mkdir(parents=True, exist_ok=True)
        common = {"image": name, "width": width, "height": height}
        score = None
        for level in settings.levels:
            todo = [r for r in realisms if _key("gencodec", name, level, r) not in log_file]
            base_todo = [b for b in settings.baselines if _key(b, name, level, None) not in log_file]
            if not todo and not base_todo:
                bar.update(len(realisms) + len(settings.baselines))
                continue
            t0 = time.perf_counter()
            data = codec.compress(image, level=level)
            encode_s = time.perf_counter() - t0
            (recon / f"gencodec_L{level}.gcz").write_bytes(data)
            size = {"bytes": len(data), "bpp": 8 * len(data) / (width * height)}
            bar.update(len(realisms) - len(todo))
            for r in todo:
                t0 = time.perf_counter()
                decoded = np.asarray(codec.decompress(data, realism=r, steps=settings.steps, seed=settings.seed))
                decode_s = time.perf_counter() - t0
                file = f"recon/{name}/gencodec_L{level}_r{r:g}.png"
                save_image(decoded, out / file)
                log_file.add({**common, "codec": "gencodec", "level": level, "realism": r,
                              "steps": settings.steps, **size, **measurer(decoded, image),
                              "encode_s": encode_s, "decode_s": decode_s, "file": file})
                bar.update(1)
            bar.update(len(settings.baselines) - len(base_todo))
            for name_b in base_todo:
                reused = earlier.take(name_b, name, image, level, len(data), out)
                if reused is not None:
                    log_file.add(reused)
                    bar.update(1)
                    continue
                score = score or measurer.selection_score(image)
                t0 = time.perf_counter()
                found = match_bytes(image, name_b, len(data), score=score)
                search_s = time.perf_counter() - t0
                record = {**common, "codec": name_b, "level": level, "realism": None, "steps": None,
                          "target_bytes": len(data)}
                if found is None:
                    record.update(bytes=None, bpp=None, skipped=f"no setting fits {len(data)} bytes")
                else:
                    t0 = time.perf_counter()
                    decoded = baseline_decode(found.data, name_b, (width, height))
                    decode_s = time.perf_counter() - t0
                    file = f"recon/{name}/{name_b}_L{level}.png"
                    save_image(decoded, out / file)
                    record.update(quality=found.quality, scale=found.scale, bytes=found.bytes,
                                  bpp=8 * found.bytes / (width * height), **measurer(decoded, image),
                                  encode_s=search_s, decode_s=decode_s, file=file)
                log_file.add(record)
                bar.update(1)
    bar.close()

    records = [r for r in log_file.records.values() if r["image"] in originals]
    distribution = []
    if settings.fid:
        distribution = distribution_metrics(out, records, originals, inception, settings, log)
    results = {
        "model": {"name": model_name, "fingerprint": codec.fingerprint,
                  "trained_steps": int(codec.model.config.trained_steps), "levels": codec.n_levels},
        "settings": {**asdict(settings), "realism": realisms},
        "notes": notes(settings, measurer, inception),
        "records": records,
        "distribution": distribution,
        "originals": originals,
    }
    _atomic_write(out / RESULTS, json.dumps(results, indent=1))
    write_csv(out / "results.csv", records)
    return results


def _unique_names(photos: list[Path], root: Path) -> list[str]:
    """Photo stems, made unique with their folder when two photos share one."""
    stems = [p.stem for p in photos]
    if len(set(stems)) == len(stems):
        return stems
    return [str(p.relative_to(root).with_suffix("")).replace(os.sep, "__") for p in photos]


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


def write_csv(path: Path, records: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in records:
            writer.writerow(r)
    os.replace(tmp, path)
