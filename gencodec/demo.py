"""`gencodec demo`: compress sample photos at several levels, decompress, show the results.

Without a trained model (none ships yet), the demo fits a small model on the
spot, on the demo photos themselves, for a fixed time, and says so: that
shows the whole pipeline working with real files, not the codec's quality.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import numpy as np
import torch

from .codec import Codec
from .imageio import image_to_tensor, load_image, save_image
from .model import GenCodecModel
from .objectives import codec_objective, random_levels

SAMPLE_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png")

# The model fitted on the spot: small enough for a useful fit within a minute on a CPU.
# The fit trains the codec stage only, so the model has no generative decoder.
QUICK_MODEL = dict(latent_channels=64, channels=(32, 48, 64, 96), blocks=(0, 0, 1, 1), attention_heads=2,
                   attention_window=8, hyper_channels=64, hyper_latent_channels=32, n_levels=4,
                   generative_decoder=None)
QUICK_LAMBDAS = (0.002, 0.004, 0.008, 0.016)


def sample_photos() -> list[Path]:
    """Photos bundled with scikit-image (no download needed)."""
    import skimage.data
    folder = Path(skimage.data.__file__).parent
    return [folder / name for name in SAMPLE_PHOTOS if (folder / name).is_file()]


def fit_quick_model(images: list[np.ndarray], seconds: float, crop: int = 128, batch: int = 4,
                    log=print) -> GenCodecModel:
    """Train the codec stage for `seconds` on random crops of `images`."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = GenCodecModel(**QUICK_MODEL)
    lambdas = torch.tensor(QUICK_LAMBDAS)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    usable = [im for im in images if min(im.shape[:2]) >= crop]
    model.train()
    start, step = time.time(), 0
    while time.time() - start < seconds:
        crops = []
        for _ in range(batch):
            im = usable[rng.integers(len(usable))]
            top, left = rng.integers(0, im.shape[0] - crop + 1), rng.integers(0, im.shape[1] - crop + 1)
            crops.append(image_to_tensor(im[top: top + crop, left: left + crop]))
        x = torch.cat(crops)
        loss, metrics = codec_objective(model, x, random_levels(batch, model.n_levels, x.device), lambdas)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        if step % 20 == 0:
            log(f"  step {step}: {metrics['bpp'].item():.3f} bpp, {metrics['psnr'].item():.1f} dB on crops")
    model.register_to_config(trained_steps=step)
    model.update_tables()
    return model.eval()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    err = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(err, 1e-12)))


def run_demo(codec: Codec, photos: list[Path], out: Path, levels: list[int], log=print) -> list[dict]:
    """Compress every photo at every level; write .gcz, .png and index.html; return the table rows."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    log(f"{'photo':<22}{'level':>6}{'bytes':>8}{'bpp':>9}{'PSNR':>8}{'enc s':>8}{'dec s':>8}")
    for photo in photos:
        original = load_image(photo)
        save_image(original, out / f"{photo.stem}.png")
        for level in levels:
            t0 = time.perf_counter()
            data = codec.compress(original, level=level)
            t1 = time.perf_counter()
            decoded = np.asarray(codec.decompress(data))
            t2 = time.perf_counter()
            name = f"{photo.stem}_level{level}"
            (out / f"{name}.gcz").write_bytes(data)
            save_image(decoded, out / f"{name}.png")
            row = dict(photo=photo.stem, level=level, bytes=len(data),
                       bpp=8 * len(data) / (original.shape[0] * original.shape[1]),
                       psnr=psnr(original, decoded), encode_s=t1 - t0, decode_s=t2 - t1, file=f"{name}.png")
            rows.append(row)
            log(f"{row['photo']:<22}{level:>6}{row['bytes']:>8}{row['bpp']:>9.4f}{row['psnr']:>8.2f}"
                f"{row['encode_s']:>8.2f}{row['decode_s']:>8.2f}")
    write_page(out / "index.html", rows)
    return rows


def write_page(path: Path, rows: list[dict]) -> None:
    """A page that opens from disk: each photo beside its reconstructions."""
    parts = ["<!doctype html><meta charset='utf-8'><title>gencodec demo</title>",
             "<style>body{font-family:sans-serif}figure{display:inline-block;margin:4px}"
             "img{max-width:300px}figcaption{font-size:12px}</style>"]
    for photo in dict.fromkeys(r["photo"] for r in rows):
        parts.append(f"<h2>{html.escape(photo)}</h2><figure><img src='{html.escape(photo)}.png'>"
                     "<figcaption>original</figcaption></figure>")
        for r in (r for r in rows if r["photo"] == photo):
            parts.append(f"<figure><img src='{html.escape(r['file'])}'><figcaption>level {r['level']}: "
                         f"{r['bytes']} bytes, {r['bpp']:.4f} bpp, {r['psnr']:.2f} dB</figcaption></figure>")
    path.write_text("\n".join(parts))
