"""The README is a front page: at most 200 lines, and every relative link in it and in docs/ leads to a file
that is there."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
#: Markdown links and images, [text](target) and ![alt](target), and HTML src= and href=.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|(?:src|href)=[\"']([^\"']+)[\"']")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def relative_links(page: Path) -> list[str]:
    """The page's link targets that point into the repository (not web addresses, not anchors alone); code
    blocks left out."""
    text = _FENCE.sub("", page.read_text())
    targets = [a or b for a, b in _LINK.findall(text)]
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.I) and not t.startswith("#")]


def test_the_readme_fits_in_200_lines():
    assert len(README.read_text().splitlines()) <= 200


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_relative_link_resolves(page):
    broken = [target for target in relative_links(page)
              if not (page.parent / unquote(target.split("#")[0])).exists()]
    assert broken == []


def test_the_readme_links_every_page_in_docs():
    linked = {(ROOT / unquote(t.split("#")[0])).resolve() for t in relative_links(README)}
    assert [p.name for p in PAGES[1:] if p.resolve() not in linked] == []


def test_the_link_finder_sees_links_and_leaves_web_addresses(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](docs/x.md#part) ![b](pic.png) [c](https://example.org) [d](#here)\n"
                    "<img src='y.png'>\n```sh\n[not](a-link.md)\n```\n")
    assert relative_links(page) == ["docs/x.md#part", "pic.png", "y.png"]
