"""Golden files: what files made by the shipped models decode to may not change in silence.

tests/golden/MODEL/ holds small .gcz files made by each shipped model, the
sha256 of each one's decoded integer code (exact on every machine), and
reference images decoded at realism 0 and at realism 1 (seed 0, one step).
A change that alters any of them needs a new format version or a new model
fingerprint (docs/file-format.md, "Format policy"); then regenerate them with
tests/golden/make_golden.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gencodec

from .golden.make_golden import code_digest

GOLDEN = Path(__file__).resolve().parent / "golden"
MODELS = sorted(p.parent.name for p in GOLDEN.glob("*/golden.json"))
#: (model, case) for every golden file of every shipped model.
CASES = [(model, case) for model in MODELS
         for case in json.loads((GOLDEN / model / "golden.json").read_text())["cases"]]
IDS = [f"{model}/{case['file']}" for model, case in CASES]
# Float kernels differ by a level or so between CPUs and thread counts; the
# integer code may not differ at all.
MAX_PIXEL_DIFFERENCE = 4
MAX_MEAN_DIFFERENCE = 0.05


_CODECS: dict[str, gencodec.Codec] = {}


def _codec(model: str) -> gencodec.Codec:
    if model not in _CODECS:
        _CODECS[model] = gencodec.load(model, device="cpu")
    return _CODECS[model]


def test_every_shipped_model_has_golden_files():
    from gencodec.pretrained import shipped_models
    assert MODELS == shipped_models()


@pytest.mark.parametrize("model", MODELS)
def test_the_golden_files_are_the_shipped_models(model):
    meta = json.loads((GOLDEN / model / "golden.json").read_text())
    assert meta["fingerprint"] == _codec(model).model.fingerprint(), (
        f"the shipped model '{model}' changed: its files need a new fingerprint and regenerated golden files")


@pytest.mark.parametrize("model, case", CASES, ids=IDS)
def test_golden_file_decodes_to_the_same_code(model, case):
    codec = _codec(model)
    data = (GOLDEN / model / case["file"]).read_bytes()
    info = codec.info(data)
    assert (info.width, info.height, info.level, info.bytes) == (case["width"], case["height"], case["level"],
                                                                 case["bytes"])
    code, _ = codec.decode_code(data)
    assert code_digest(code) == case["code_sha256"]


@pytest.mark.parametrize("realism", [0, 1])
@pytest.mark.parametrize("model, case", CASES, ids=IDS)
def test_golden_file_decodes_to_the_same_pixels(model, case, realism):
    codec = _codec(model)
    data = (GOLDEN / model / case["file"]).read_bytes()
    decoded = np.asarray(codec.decompress(data, realism=float(realism), steps=case["steps"], seed=case["seed"]))
    reference = np.asarray(Image.open(GOLDEN / model / case[f"realism{realism}"]).convert("RGB"))
    assert decoded.shape == reference.shape
    difference = np.abs(decoded.astype(int) - reference.astype(int))
    assert difference.max() <= MAX_PIXEL_DIFFERENCE and difference.mean() <= MAX_MEAN_DIFFERENCE, (
        f"max {difference.max()}, mean {difference.mean():.4f}")


def test_the_golden_check_catches_a_changed_code():
    """A file whose code differs by one symbol gives another digest (the check can fail)."""
    model, case = CASES[-1]
    code, _ = _codec(model).decode_code((GOLDEN / model / case["file"]).read_bytes())
    code.symbols.view(-1)[0] += 1
    assert code_digest(code) != case["code_sha256"]
