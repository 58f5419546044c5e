"""git for tests that commit and push in throwaway clones of this repository: a fixed identity,
no global or system configuration of the machine (no signing, hooks or templates of its own)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Final

IDENTITY: Final = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}
"""Who commits: also given to the programs under test that commit (the runbooks)."""
ISOLATED: Final = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", **IDENTITY}
"""The environment additions of every git run by a test or by a program it starts."""


def git(repo: Path, *args: str) -> str:
    """``git -C repo args...``; its stdout, CalledProcessError when it fails."""
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **ISOLATED},
    ).stdout


def commit_as_repository(folder: Path) -> Path:
    """Make ``folder`` a git repository on ``main`` holding its files as one commit."""
    git(folder.parent, "init", "--quiet", "--initial-branch=main", str(folder))
    git(folder, "add", "--all")
    git(folder, "commit", "--quiet", "-m", "the repository as it is")
    return folder


def clone_with_origin(template: Path, folder: Path) -> Path:
    """``template`` cloned into ``folder/work`` whose origin is a bare ``folder/origin.git``."""
    origin = folder / "origin.git"
    git(folder, "clone", "--quiet", "--bare", str(template), str(origin))
    work = folder / "work"
    git(folder, "clone", "--quiet", str(origin), str(work))
    return work
