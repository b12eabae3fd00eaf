"""The Python examples of the README and of docs/python-api.md run as written (with the shipped model and a
generated photo)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from .conftest import smooth_image

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PYTHON_API = ROOT / "docs" / "python-api.md"


def _run_python_example(page: Path, folder: Path, monkeypatch) -> dict:
    """The page's first ```python block, run in `folder` beside a generated photo.jpg; its namespace."""
    block = re.search(r"```python\n(.*?)```", page.read_text(), re.S).group(1)
    Image.fromarray(smooth_image(96, 128)).save(folder / "photo.jpg")
    monkeypatch.chdir(folder)
    namespace: dict = {}
    exec(compile(block, str(page.relative_to(ROOT)), "exec"), namespace)
    return namespace


@pytest.mark.parametrize("page", [README, PYTHON_API], ids=["README", "python-api"])
def test_the_python_example_runs(tmp_path, monkeypatch, page):
    namespace = _run_python_example(page, tmp_path, monkeypatch)
    assert namespace["image"].size == (128, 96)
    if page == PYTHON_API:  # it also decodes at each realism, and compresses to a size
        assert namespace["sharp"].size == namespace["plain"].size == (128, 96)
        assert len(namespace["small"]) <= 1000
