"""Golden files: what files made by the shipped model decode to may not change in silence.

tests/golden/ holds small .gcz files made by the shipped default model, the
sha256 of each one's decoded integer code (exact on every machine), and
reference images decoded at realism 0 and at realism 1 (seed 0, one step).
A change that alters any of them needs a new format version or a new model
fingerprint (README, "Format policy"); then regenerate them with
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
CASES = json.loads((GOLDEN / "golden.json").read_text())["cases"]
# Float kernels differ by a level or so between CPUs and thread counts; the
# integer code may not differ at all.
MAX_PIXEL_DIFFERENCE = 4
MAX_MEAN_DIFFERENCE = 0.05


@pytest.fixture(scope="module")
def codec():
    return gencodec.load("default", device="cpu")


def test_the_golden_files_are_the_shipped_models(codec):
    meta = json.loads((GOLDEN / "golden.json").read_text())
    assert meta["fingerprint"] == codec.model.fingerprint(), (
        "the shipped model changed: its files need a new fingerprint and regenerated golden files")


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_golden_file_decodes_to_the_same_code(codec, case):
    data = (GOLDEN / case["file"]).read_bytes()
    info = codec.info(data)
    assert (info.width, info.height, info.level, info.bytes) == (case["width"], case["height"], case["level"],
                                                                 case["bytes"])
    code, _ = codec.decode_code(data)
    assert code_digest(code) == case["code_sha256"]


@pytest.mark.parametrize("realism", [0, 1])
@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_golden_file_decodes_to_the_same_pixels(codec, case, realism):
    data = (GOLDEN / case["file"]).read_bytes()
    decoded = np.asarray(codec.decompress(data, realism=float(realism), steps=case["steps"], seed=case["seed"]))
    reference = np.asarray(Image.open(GOLDEN / case[f"realism{realism}"]).convert("RGB"))
    assert decoded.shape == reference.shape
    difference = np.abs(decoded.astype(int) - reference.astype(int))
    assert difference.max() <= MAX_PIXEL_DIFFERENCE and difference.mean() <= MAX_MEAN_DIFFERENCE, (
        f"max {difference.max()}, mean {difference.mean():.4f}")


def test_the_golden_check_catches_a_changed_code(codec):
    """A file whose code differs by one symbol gives another digest (the check can fail)."""
    case = CASES[-1]
    code, _ = codec.decode_code((GOLDEN / case["file"]).read_bytes())
    code.symbols.view(-1)[0] += 1
    assert code_digest(code) != case["code_sha256"]
