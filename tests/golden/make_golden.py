"""Regenerate the golden files: a few small .gcz files made by a shipped model.

    python tests/golden/make_golden.py [--model pixel] [--out tests/golden/pixel]

For each case it writes the .gcz file, and records in golden.json the sha256 of
its decoded integer code (exact on every machine) and the names of reference
images decoded at realism 0 and at realism 1 (seed 0, one step). Run it only
when a change is *meant* to alter what files decode to, together with a new
format version or model fingerprint (see the format policy in docs/file-format.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import gencodec

HERE = Path(__file__).resolve().parent
#: (sample photo from scikit-image, crop box (left, top, width, height), level; beyond a model's ladder: its top)
CASES = (
    ("astronaut.png", (96, 16, 192, 128), 0),
    ("coffee.png", (200, 120, 160, 112), 4),
    ("chelsea.png", (120, 40, 100, 70), 7),
)


def code_digest(code) -> str:
    """sha256 of a decoded code: z^ and the symbols, as little-endian int32 with their shapes."""
    h = hashlib.sha256()
    for name in ("z_hat", "symbols"):
        t = getattr(code, name).cpu().numpy().astype("<i4")
        h.update(f"{name}:{t.shape}".encode())
        h.update(t.tobytes())
    return h.hexdigest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=gencodec.DEFAULT_MODEL, help="a shipped model's name; default: %(default)s")
    parser.add_argument("--out", type=Path, default=None, help="default: tests/golden/MODEL")
    args = parser.parse_args(argv)
    args.out = args.out or HERE / args.model
    import skimage.data

    photos = Path(skimage.data.__file__).parent
    codec = gencodec.load(args.model, device="cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    for photo, (left, top, width, height), level in CASES:
        level = min(level, codec.n_levels - 1)
        image = Image.open(photos / photo).convert("RGB").crop((left, top, left + width, top + height))
        stem = f"{Path(photo).stem}_{width}x{height}_level{level}"
        data = codec.compress(np.asarray(image), level=level)
        (args.out / f"{stem}.gcz").write_bytes(data)
        code, _ = codec.decode_code(data)
        record = {"file": f"{stem}.gcz", "level": level, "width": width, "height": height,
                  "bytes": len(data), "code_sha256": code_digest(code), "seed": 0, "steps": 1}
        for realism in (0, 1):
            name = f"{stem}_realism{realism}.png"
            codec.decompress(data, realism=float(realism), steps=1, seed=0).save(args.out / name)
            record[f"realism{realism}"] = name
        records.append(record)
        print(f"{stem}: {len(data)} bytes", file=sys.stderr)
    meta = {"model": args.model, "fingerprint": codec.model.fingerprint(), "cases": records}
    (args.out / "golden.json").write_text(json.dumps(meta, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
