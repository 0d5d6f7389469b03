"""Run names and the git tags that say which code produced a run."""

from __future__ import annotations

import subprocess
from pathlib import Path

from chest_xray.tracking.identity import git_tags, run_name


def test_run_name_is_the_pipelines_and_a_short_id() -> None:
    assert run_name(["training"], "1a2b3c4d5e6f") == "training-1a2b3c4d"
    assert run_name(None, "1a2b3c4d5e6f") == "default-1a2b3c4d"
    assert run_name(["training", "evaluation"], "ff" * 16) == "training+evaluation-ffffffff"


def test_git_tags_inside_and_outside_a_repository(tmp_path: Path) -> None:
    assert git_tags(tmp_path) == {"git_commit": "unknown", "git_dirty": "unknown"}

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "first")
    head = git("rev-parse", "HEAD")
    assert git_tags(tmp_path) == {
        "git_commit": head,
        "git_dirty": "false",
        "mlflow.source.git.commit": head,
    }
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_tags(tmp_path)["git_dirty"] == "true"
