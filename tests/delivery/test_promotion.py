"""The promotion path (cap_ops.promote, `make promote`) on a throwaway clone of this repository
with a bare origin: each environment changes only through its gate, the others stay untouched,
and `promote check` refuses a prod digest staging never ran."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.git import clone_with_origin, commit_as_repository, git

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
NEW = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def tool(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m cap_ops.promote`` in the clone (infra/ imported from it)."""
    return subprocess.run(
        [str(PYTHON), "-m", "cap_ops.promote", *args, "--root", str(work)],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository's HEAD (not the work in progress of the shared tree), deploy/ rendered,
    as one commit."""
    repo = tmp_path_factory.mktemp("template") / "repo"
    repo.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive, check=True)
    subprocess.run([str(PYTHON), "-m", "infra.render"], cwd=repo, check=True, capture_output=True)
    return commit_as_repository(repo)


@pytest.fixture
def clone(template_repo: Path, tmp_path: Path) -> Path:
    return clone_with_origin(template_repo, tmp_path)


def changed(work: Path) -> set[str]:
    """Files changed in the working tree (new ones included)."""
    lines = git(work, "status", "--porcelain", "--untracked-files=all").splitlines()
    return {line[3:] for line in lines}


def promoted(work: Path, env: str, digest: str) -> set[str]:
    """Promote, check what changed, commit and push it as the pipeline does."""
    result = tool(work, env, digest)
    assert result.returncode == 0, result.stderr
    files = changed(work)
    git(work, "add", "--all")
    git(work, "commit", "--quiet", "-m", f"promote {env} to {digest}")
    git(work, "push", "--quiet", "origin", "HEAD:main")
    return files


def only_env(files: set[str], env: str) -> bool:
    return bool(files) and all(
        name == f"Pulumi.{env}.yaml" or name.startswith(f"deploy/{env}/") for name in files
    )


@pytest.mark.orr("4.3-09")
def test_dev_then_staging_then_prod_each_through_its_gate(clone: Path) -> None:
    refused = tool(clone, "staging", NEW)
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("promote: staging accepts only the digest dev runs")
    assert len(refused.stderr.strip().splitlines()) == 1
    assert changed(clone) == set()

    dev = promoted(clone, "dev", NEW)
    assert only_env(dev, "dev")
    assert NEW in (clone / "deploy" / "dev" / "deployment-cap-verifier.yaml").read_text()

    wrong = tool(clone, "staging", OTHER)
    assert wrong.returncode == 1
    assert f"not {OTHER}" in wrong.stderr
    assert tool(clone, "prod", NEW).returncode == 1  # staging does not run it yet
    assert changed(clone) == set()

    assert only_env(promoted(clone, "staging", NEW), "staging")
    assert only_env(promoted(clone, "prod", NEW), "prod")
    assert any(NEW in f.read_text() for f in (clone / "deploy" / "prod").glob("rollout-*.yaml"))

    checked = tool(clone, "check")
    assert checked.returncode == 0, checked.stderr
    assert f"prod runs {NEW}, which staging ran" in checked.stdout


def test_a_bad_digest_is_one_line_and_changes_nothing(clone: Path) -> None:
    for env, digest in [("dev", "sha256:abc"), ("dev", "latest"), ("qa", NEW)]:
        result = tool(clone, env, digest)
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1
    assert changed(clone) == set()


def test_check_refuses_a_prod_digest_edited_by_hand(clone: Path) -> None:
    promoted(clone, "dev", NEW)
    promoted(clone, "staging", NEW)
    promoted(clone, "prod", NEW)
    assert tool(clone, "check").returncode == 0
    stack = clone / "Pulumi.prod.yaml"
    stack.write_text(stack.read_text().replace(NEW, OTHER))

    uncommitted = tool(clone, "check")
    git(clone, "commit", "--quiet", "--all", "-m", "hand edit")
    committed = tool(clone, "check")

    for result in (uncommitted, committed):
        assert result.returncode == 1
        assert result.stderr.strip() == (
            f"promote: prod runs {OTHER}, which staging never ran before it: promote through "
            "staging (make promote ENV=staging, then ENV=prod), never edit prod's digest by hand"
        )


def test_check_refuses_staging_and_prod_changed_in_one_commit(clone: Path) -> None:
    """Giving both the same new digest at once is not staging running it first."""
    promoted(clone, "dev", NEW)
    for env in ("staging", "prod"):
        stack = clone / f"Pulumi.{env}.yaml"
        text = stack.read_text()
        start = text.index("digest: ") + len("digest: ")
        stack.write_text(text[:start] + NEW + text[start + len(NEW) :])
    git(clone, "commit", "--quiet", "--all", "-m", "both at once")
    assert tool(clone, "check").returncode == 1
