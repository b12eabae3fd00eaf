"""The runtime stands alone: compressing and decompressing import nothing of training, evaluation or the app."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gencodec"
TOOLS = ("gencodec.training", "gencodec.evaluation", "gencodec.app")
# Dependencies of the extras only, which nothing in the runtime's import chain pulls in when
# installed (diffusers itself imports accelerate, tqdm and yaml where they are present).
EXTRA_PACKAGES = ("lpips", "torchvision", "tensorboard", "skimage", "matplotlib", "pytorch_msssim", "pillow_heif",
                  "scipy", "gradio", "playwright")


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _runtime_files() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py")
            if not p.relative_to(PACKAGE).parts[0] in ("training", "evaluation", "app")]


def _imported_names(path: Path) -> list[str]:
    """Every module an import statement in `path` names, relative ones resolved."""
    module = ".".join(("gencodec",) + path.relative_to(PACKAGE).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            prefix = (base + "." + (node.module or "")).rstrip(".") if node.level else node.module
            names += [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
    return names


def test_no_runtime_module_imports_training_or_evaluation():
    offending = [(p.relative_to(PACKAGE).as_posix(), name) for p in _runtime_files() for name in _imported_names(p)
                 if name.startswith(TOOLS)]
    assert offending == []


def test_the_static_check_sees_relative_imports(tmp_path):
    """The check above can fail: a relative import of a tool module is resolved and seen."""
    probe = PACKAGE / "nn" / "_probe_for_test.py"
    probe.write_text("from ..training import losses\nfrom ..evaluation.metrics import psnr\n")
    try:
        names = _imported_names(probe)
    finally:
        probe.unlink()
    assert "gencodec.training.losses" in names and "gencodec.evaluation.metrics" in names


def test_compress_and_decompress_load_only_the_runtime():
    code = ("import json, sys, numpy as np, gencodec\n"
            "c = gencodec.load('untrained', device='cpu')\n"
            "data = c.compress(np.zeros((40, 56, 3), np.uint8), level=1)\n"
            "c.decompress(data, realism=1.0); c.decompress(data, realism=0.0); c.info(data)\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    loaded = _run(code)
    assert "gencodec.codec" in loaded  # the probe really decoded
    assert [m for m in loaded if m.startswith(TOOLS)] == []
    assert [m for m in loaded if m.split(".")[0] in EXTRA_PACKAGES] == []


def test_headers_and_constants_need_no_torch():
    code = ("import json, sys\n"
            "import gencodec, gencodec.constants, gencodec.bitstream, gencodec.errors, gencodec.extras, "
            "gencodec.fileio\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    assert "torch" not in _run(code)
