"""The README's Python example runs as written (with the shipped model and a generated photo)."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from .conftest import smooth_image

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    Image.fromarray(smooth_image(96, 128)).save(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["image"].size == (128, 96)
    assert namespace["sharp"].size == namespace["plain"].size == (128, 96)
