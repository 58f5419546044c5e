"""The rules the delivery workflow must keep, as functions from a workflow document to the
problems found (empty: none), so that each can be run against the real workflow and against a
deliberately bad one."""

from __future__ import annotations

import itertools
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONS = ROOT / ".github" / "actions"

STAGES: tuple[tuple[str, ...], ...] = (
    ("lint", "test", "drift"),
    ("image",),
    ("sbom", "scan"),
    ("sign",),
    ("push",),
    ("promote-dev",),
    ("promote-staging",),
    ("promote-prod",),
)
"""The jobs in pipeline order: each job of a stage needs, at least indirectly, the stage before."""
CLOUD_ROLE_JOBS = frozenset({"push"})
"""The only jobs that may ask for an OIDC token (id-token: write)."""
PROMOTION_JOBS = frozenset({"promote-dev", "promote-staging", "promote-prod"})
"""The only jobs that may write the repository (contents: write): they commit promotions."""
PROD_JOB, PROD_ENVIRONMENT = "promote-prod", "production"
PINNED = re.compile(r"[^@\s]+@[0-9a-f]{40}")
MAKE_CALL = re.compile(r"\bmake\s+([a-z][a-z-]*)")


def load(path: Path) -> Any:
    """YAML 1.2, as GitHub reads it: ``on`` stays a key, not ``True``."""
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def action_files() -> list[Path]:
    return sorted(ACTIONS.glob("*/action.yml"))


def schema(name: str) -> dict[str, Any]:
    """SchemaStore's schema vendored in check-jsonschema (offline)."""
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    loaded: dict[str, Any] = json.loads(vendor.joinpath(f"{name}.json").read_text("utf-8"))
    return loaded


def schema_problems(document: Any, name: str) -> list[str]:
    validator = jsonschema.Draft7Validator(schema(name))
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def _steps(document: Any) -> list[dict[str, Any]]:
    """Every step of a workflow (all jobs) or of a composite action."""
    if "runs" in document:
        return list(document["runs"].get("steps", []))
    return [step for job in document["jobs"].values() for step in job.get("steps", [])]


def uses(document: Any) -> list[str]:
    """Every action or reusable workflow referenced."""
    refs = [step["uses"] for step in _steps(document) if "uses" in step]
    if "jobs" in document:
        refs += [job["uses"] for job in document["jobs"].values() if "uses" in job]
    return refs


def unpinned(document: Any) -> list[str]:
    """References not pinned by a full commit SHA; local ``./`` actions are this repository's."""
    return [ref for ref in uses(document) if not ref.startswith("./") and not PINNED.fullmatch(ref)]


def _needs(job: dict[str, Any]) -> set[str]:
    needs = job.get("needs", [])
    return {needs} if isinstance(needs, str) else set(needs)


def ancestors(jobs: dict[str, Any], name: str) -> set[str]:
    """The jobs ``name`` waits for, directly or through others."""
    seen: set[str] = set()
    todo = list(_needs(jobs[name]))
    while todo:
        current = todo.pop()
        if current not in seen and current in jobs:
            seen.add(current)
            todo += _needs(jobs[current])
    return seen


def order_problems(document: Any) -> list[str]:
    jobs = document["jobs"]
    problems = [f"{name}: no such job" for stage in STAGES for name in stage if name not in jobs]
    if problems:
        return problems
    for before, stage in itertools.pairwise(STAGES):
        for name in stage:
            missing = sorted(set(before) - ancestors(jobs, name))
            if missing:
                problems.append(f"{name}: does not wait for {', '.join(missing)}")
    return problems


def _grants(permissions: Any) -> dict[str, str]:
    if isinstance(permissions, str):  # read-all, write-all
        return {"*": permissions.removesuffix("-all")}
    return dict(permissions or {})


def permission_problems(document: Any) -> list[str]:
    """Top level ``contents: read`` only; ``id-token: write`` only where a cloud role is assumed;
    ``contents: write`` only where a promotion is committed; nothing else writes."""
    problems: list[str] = []
    if _grants(document.get("permissions")) != {"contents": "read"}:
        problems.append(f"<top>: permissions {document.get('permissions')!r}, not contents: read")
    for name, job in document["jobs"].items():
        for scope, level in _grants(job.get("permissions")).items():
            if level != "write":
                continue
            if scope == "id-token" and name in CLOUD_ROLE_JOBS:
                continue
            if scope == "contents" and name in PROMOTION_JOBS:
                continue
            problems.append(f"{name}: {scope}: write")
    return problems


def environment_problems(document: Any) -> list[str]:
    job = document["jobs"].get(PROD_JOB, {})
    environment = job.get("environment")
    name = environment.get("name") if isinstance(environment, dict) else environment
    if name != PROD_ENVIRONMENT:
        return [f"{PROD_JOB}: environment {name!r}, not {PROD_ENVIRONMENT!r}"]
    return []


def timeout_problems(document: Any) -> list[str]:
    return [
        f"{name}: no timeout-minutes"
        for name, job in document["jobs"].items()
        if "steps" in job and "timeout-minutes" not in job
    ]


def make_targets_called(document: Any) -> set[str]:
    return {
        target
        for step in _steps(document)
        for target in MAKE_CALL.findall(str(step.get("run", "")))
    }


def makefile_targets(makefile: Path = ROOT / "Makefile") -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", makefile.read_text(encoding="utf-8"), re.M))
