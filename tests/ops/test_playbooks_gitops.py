"""rollback.yml and scale.yml change git, not the cluster: run for real on a throwaway clone of
this repository with a bare "origin", their cluster steps (abort, Argo CD sync, smoke) skipped
with ``--skip-tags cluster`` since no Kubernetes API exists here (those objects are validated
in test_playbooks_cluster.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from support.git import ISOLATED, clone_with_origin, commit_as_repository, git
from support.playbooks import ROOT, Run, extra_vars, playbook_env, run_playbook

pytestmark = pytest.mark.slow

COLLECTIONS = ROOT / ".tools" / "ansible" / "collections"
NEW_DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's files (tracked and new, not ignored) as a fresh one-commit repository."""
    repo = tmp_path_factory.mktemp("template") / "repo"
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    return commit_as_repository(repo)


@pytest.fixture
def clone(template_repo: Path, tmp_path: Path) -> Path:
    """A clone whose origin is a bare repository, as on an operator's machine."""
    return clone_with_origin(template_repo, tmp_path)


def in_clone(work: Path, name: str, *args: str, inventory: str = "staging") -> Run:
    env = playbook_env(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), **ISOLATED)
    return run_playbook(
        name, *args, "--skip-tags", "cluster", inventory=inventory, env=env, cwd=work / "playbooks"
    )


def stack(work: Path, env: str) -> dict[str, object]:
    document = YAML(typ="safe", pure=True).load((work / f"Pulumi.{env}.yaml").read_text())
    return {k.split(":", 1)[1]: v for k, v in document["config"].items()}


def promote(work: Path, env: str, version: str, digest: str) -> None:
    """What a release does: a new image in the stack file, deploy/ rendered, committed, pushed."""
    path = work / f"Pulumi.{env}.yaml"
    text = path.read_text()
    image = r"(    version: )\S+(\n    digest: )sha256:[0-9a-f]{64}"
    text, count = re.subn(image, rf"\g<1>{version}\g<2>{digest}", text)
    assert count == 1
    path.write_text(text)
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "infra.render"],
        cwd=work,
        check=True,
        capture_output=True,
    )
    git(work, "commit", "--quiet", "--all", "-m", f"promote {env} to {version}")
    git(work, "push", "--quiet", "origin", "main")


def rendered_matches_git(work: Path) -> None:
    """deploy/ is what the renderer makes of the committed stack files."""
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "infra.render"],
        cwd=work,
        check=True,
        capture_output=True,
    )
    assert git(work, "status", "--porcelain") == ""


@pytest.mark.orr("8.2-01")
def test_rollback_commits_the_previous_image_and_pushes_it(clone: Path) -> None:
    before = stack(clone, "staging")["image"]
    assert isinstance(before, dict)
    promote(clone, "staging", "0.12.0", NEW_DIGEST)

    run = in_clone(clone, "rollback.yml", *extra_vars({"confirm": "staging"}))

    assert run.returncode == 0, run.failure
    after = stack(clone, "staging")["image"]
    assert after == before
    subject = git(clone, "log", "-1", "--format=%s").strip()
    assert subject == f"rollback staging to {before['version']} ({before['digest']})"
    changed = git(clone, "show", "--name-only", "--format=", "HEAD").split()
    assert "Pulumi.staging.yaml" in changed
    assert all(n == "Pulumi.staging.yaml" or n.startswith("deploy/staging/") for n in changed)
    deployment = (clone / "deploy" / "staging" / "deployment-cap-verifier.yaml").read_text()
    assert str(before["digest"]) in deployment
    assert NEW_DIGEST not in deployment
    assert git(clone, "rev-parse", "HEAD") == git(clone, "rev-parse", "origin/main")
    rendered_matches_git(clone)
    assert "within the 300 s target" in run.report


@pytest.mark.orr("8.2-01")
def test_rollback_to_a_named_image_and_its_refusals(clone: Path) -> None:
    head = git(clone, "rev-parse", "HEAD")
    none_earlier = in_clone(clone, "rollback.yml", *extra_vars({"confirm": "staging"}))
    assert none_earlier.returncode != 0
    assert "git holds no earlier image to go back to" in none_earlier.failure

    unconfirmed = in_clone(clone, "rollback.yml")
    assert unconfirmed.returncode != 0
    assert "rollback on staging needs -e confirm=staging" in unconfirmed.failure

    half = in_clone(clone, "rollback.yml", *extra_vars({"confirm": "staging", "image_digest": "x"}))
    assert half.returncode != 0
    assert "give both -e image_digest=sha256:<64 hex>" in half.failure

    (clone / "deploy" / "staging" / "service-cap-verifier.yaml").write_text("edited by hand\n")
    dirty = in_clone(clone, "rollback.yml", *extra_vars({"confirm": "staging"}))
    assert dirty.returncode != 0
    git(clone, "checkout", "--", "deploy")
    assert git(clone, "rev-parse", "HEAD") == head, "a refused rollback commits nothing"

    named = in_clone(
        clone,
        "rollback.yml",
        *extra_vars(
            {"confirm": "staging", "image_digest": "sha256:" + "cd" * 32, "image_version": "0.9.9"}
        ),
    )
    assert named.returncode == 0, named.failure
    image = stack(clone, "staging")["image"]
    assert isinstance(image, dict)
    assert image["version"] == "0.9.9"
    assert image["digest"] == "sha256:" + "cd" * 32
    rendered_matches_git(clone)


@pytest.mark.orr("4.1-05")
def test_scale_commits_new_bounds_within_the_quota(clone: Path) -> None:
    bounds = {"confirm": "staging", "min_replicas": 3, "max_replicas": 8}
    run = in_clone(clone, "scale.yml", *extra_vars(bounds))
    assert run.returncode == 0, run.failure
    scaling = stack(clone, "staging")["scaling"]
    assert isinstance(scaling, dict)
    assert scaling["hpa"]["min_replicas"] == 3
    assert scaling["hpa"]["max_replicas"] == 8
    assert git(clone, "log", "-1", "--format=%s").strip() == "scale staging: replicas 2..6 -> 3..8"
    hpa = (clone / "deploy" / "staging" / "horizontalpodautoscaler-cap-verifier.yaml").read_text()
    assert "minReplicas: 3" in hpa
    assert "maxReplicas: 8" in hpa
    assert git(clone, "rev-parse", "HEAD") == git(clone, "rev-parse", "origin/main")
    rendered_matches_git(clone)


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        (
            {"min_replicas": 3, "max_replicas": 13},
            "scaling.quota_pods: a rollout runs up to 14 pods, more than the quota of 13",
        ),
        ({"min_replicas": 5, "max_replicas": 4}, "whole numbers with 1 <= N <= M"),
        ({"min_replicas": "two", "max_replicas": 4}, "whole numbers with 1 <= N <= M"),
        ({"max_replicas": 4}, "give -e min_replicas=N -e max_replicas=M"),
    ],
)
def test_scale_refuses_bad_bounds_in_one_line_and_changes_nothing(
    clone: Path, bounds: dict[str, object], expected: str
) -> None:
    head = git(clone, "rev-parse", "HEAD")
    stack_before = (clone / "Pulumi.staging.yaml").read_bytes()
    run = in_clone(clone, "scale.yml", *extra_vars({"confirm": "staging", **bounds}))
    assert run.returncode != 0
    assert expected in run.failure, run.failure
    assert (clone / "Pulumi.staging.yaml").read_bytes() == stack_before
    assert git(clone, "rev-parse", "HEAD") == head
    assert git(clone, "status", "--porcelain") == ""


def test_scale_refuses_an_environment_without_an_autoscaler(clone: Path) -> None:
    run = in_clone(
        clone, "scale.yml", *extra_vars({"min_replicas": 1, "max_replicas": 2}), inventory="dev"
    )
    assert run.returncode != 0
    assert "dev has no autoscaler to scale (one replica with a sqlite registry)" in run.failure


def test_an_emergency_without_a_reason_is_refused(clone: Path) -> None:
    run = in_clone(
        clone,
        "scale.yml",
        *extra_vars(
            {"confirm": "staging", "min_replicas": 3, "max_replicas": 8, "emergency": True}
        ),
    )
    assert run.returncode != 0
    assert "an emergency change needs -e reason=" in run.failure
