"""The README and docs/: every relative link resolves, the README stays short, and neither tells the
project's own development history."""

import re
from pathlib import Path

import pytest

from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def relative_links(page: Path) -> list[str]:
    """Targets of the markdown links and images of `page` that point into the repository (no scheme, no
    bare anchor), outside code blocks and code spans."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_the_link_finder_sees_links_and_skips_code(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("[a](x.md) ![f](img/f.png) [web](https://e.org) [anchor](#top)\n`[no](code.md)`\n"
                    "```\n[no](block.md)\n```\n[b](y.md#part \"title\")\n")
    assert relative_links(page) == ["x.md", "img/f.png", "y.md#part"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(page):
    missing = [t for t in relative_links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert not missing, f"{page.name}: links to missing files {missing}"


def test_the_readme_is_short_and_links_the_docs():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    linked = {t for t in relative_links(REPO / "README.md") if t.startswith("docs/")}
    pages = {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")}
    assert pages <= linked, f"docs pages the README does not link: {sorted(pages - linked)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_development_history(page):
    found = re.findall(r"[^.\n]*\bsessions? \d+[^.\n]*", page.read_text(), flags=re.I)
    assert not found, f"{page.name} tells the project's history: {found[:3]}"
