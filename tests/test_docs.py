"""The README and the docs pages: every relative link resolves, and the README's Python runs as written."""

import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "saved_models" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page):
    lines, fenced = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            lines.append(_slug(line.lstrip("#")))
    return set(lines)


def _links(page):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)  # code is not linked
    return [target for target in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def _broken(pages, root):
    """`page: target (why)` for every relative link of `pages` to a missing file or heading."""
    broken = []
    for page in pages:
        for target in _links(page):
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(root)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.relative_to(root)}: {target} (no such heading)")
    return broken


def test_pages_exist_and_every_relative_link_and_anchor_resolves():
    assert len(PAGES) > 2, "docs/ has no pages"
    broken = _broken(PAGES, ROOT)
    assert not broken, "\n".join(broken)


def test_link_check_finds_a_broken_link_and_a_broken_anchor(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# A heading\n")
    page.write_text("[ok](there.md#a-heading) [gone](missing.png) [bad](there.md#nope) [web](https://x.org/y)\n")
    page.write_text(page.read_text() + "```\n[in code](x)\n```\n")
    assert _broken([page], tmp_path) == [
        "page.md: missing.png (no such file)",
        "page.md: there.md#nope (no such heading)",
    ]


@pytest.mark.tensorflow_only  # the bundled model is a SavedModel
def test_readme_python_runs_as_written_from_another_directory(tmp_path):
    """Each ```python block of the README, run in an empty folder holding only a `photo.jpg`."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "the README has no Python example"
    shutil.copy(ROOT / "examples" / "parrots.jpg", tmp_path / "photo.jpg")
    for block in blocks:
        run = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True)
        assert run.returncode == 0, f"README snippet failed:\n{block}\n{run.stderr[-3000:]}"
