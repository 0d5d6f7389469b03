"""The manual builds, and the README stays a front page.

``mkdocs build --strict`` (``mkdocs.yml`` at the root, pages in ``docs/``) turns every
warning into a failure: a link to a page or file that does not exist, an anchor no heading
makes, a page left out of the nav. ``mkdocs`` comes with the ``dev`` extra.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

README = REPO / "README.md"
MAX_README_LINES = 150
SET_UP_COMMANDS = (
    "bash scripts/run.sh    # install, then run the three pipelines end to end",
    "bash scripts/test.sh   # install, then lint, type-check and run the test suite",
)


def _mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mkdocs", "build", "--strict"]
    return subprocess.run(
        [*command, "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_docs_build_strict(tmp_path: Path) -> None:
    result = _mkdocs_build(REPO / "mkdocs.yml", tmp_path / "site")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    assert (tmp_path / "site" / "architecture" / "index.html").is_file()


def test_a_broken_link_or_a_page_out_of_the_nav_fails_the_build(tmp_path: Path) -> None:
    """The check above can fail: mkdocs.yml's validation still turns these into warnings."""
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    with (tmp_path / "docs" / "data.md").open("a") as page:
        page.write(
            "\n[gone](no-such-page.md), [no anchor](pipelines.md#no-such-heading),"
            " [outside](../scripts/run.sh)\n"
        )
    (tmp_path / "docs" / "orphan.md").write_text("# In no nav\n")

    result = _mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for warned in ("no-such-page.md", "#no-such-heading", "../scripts/run.sh", "orphan.md"):
        assert warned in output, (warned, output)


def test_the_readme_is_a_front_page_with_the_two_set_up_commands() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES, "README.md: the manual lives in docs/"
    for command in SET_UP_COMMANDS:
        assert command in text.splitlines(), command
    assert "A research tool, not a diagnostic device." in text
    assert "(docs/model_card.md)" in text


def test_the_readme_links_resolve() -> None:
    """The README is not part of the mkdocs build: its relative links are checked here."""
    targets = re.findall(r"\]\(([^)\s]+)\)", README.read_text())
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and t[0] != "#"]
    assert local, "no relative link found: the scan is broken"
    assert [t for t in local if not (REPO / t).exists()] == []
