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
MAKE_CALL = re.compile(r"\bmake\s+([a-z][a-z-]*)((?:[ \t]+[A-Z_][A-Z0-9_]*=\S*)*)")
"""``make <target> VAR=value...``: the target, then its variables."""
MAKE_REFERENCE = re.compile(r"\$[({]([A-Z_][A-Z0-9_]*)[)}]")
PYTHON_MODULE = re.compile(r"\s-m\s+([\w.]+)")
QUOTED_NAME = re.compile(r"[\"']([A-Z_][A-Z0-9_]*)[\"']")

GITOPS_CONDITION = {
    True: "steps.delivery.outputs.gitops == 'true'",
    False: "steps.delivery.outputs.gitops == 'false'",
}
"""The promote action's step conditions on the stack's ``delivery.gitops``."""
DEPLOY_INPUTS = {
    True: frozenset({"argocd-server", "argocd-token"}),
    False: frozenset({"pulumi-access-token", "kubeconfig"}),
}
"""What a promotion job gives the action to deploy, by the stack's ``delivery.gitops``."""


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


def make_calls(document: Any) -> list[tuple[str, frozenset[str]]]:
    """Every ``make`` call of the run steps: (target, the variables given on its line)."""
    return [
        (target, frozenset(re.findall(r"([A-Z_][A-Z0-9_]*)=", variables)))
        for step in _steps(document)
        for target, variables in MAKE_CALL.findall(str(step.get("run", "")).replace("\\\n", " "))
    ]


def make_targets_called(document: Any) -> set[str]:
    return {target for target, _ in make_calls(document)}


def makefile_targets(makefile: Path = ROOT / "Makefile") -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", makefile.read_text(encoding="utf-8"), re.M))


def _rule(target: str, makefile: Path) -> str:
    """The target's rule line and recipe."""
    lines = makefile.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("\t")), None)
    return "\n".join(lines[start:end])


def _module_file(module: str) -> Path:
    """The source of ``python -m module``: tools/ (cap_ops) or the repository's own packages."""
    for base in (ROOT / "tools", ROOT):
        path = base.joinpath(*module.split("."))
        for candidate in (path.with_suffix(".py"), path / "__main__.py"):
            if candidate.is_file():
                return candidate
    raise LookupError(f"no source for python -m {module}")


def target_variables(target: str, makefile: Path = ROOT / "Makefile") -> set[str]:
    """The variables ``make target`` reads: ``$(VAR)`` in its rule and recipe, and the names
    the python modules it runs read from the environment (make exports the command line's)."""
    rule = _rule(target, makefile)
    names = set(MAKE_REFERENCE.findall(rule))
    for module in PYTHON_MODULE.findall(rule):
        names |= set(QUOTED_NAME.findall(_module_file(module).read_text(encoding="utf-8")))
    return names


def make_variable_problems(document: Any, makefile: Path = ROOT / "Makefile") -> list[str]:
    """``make target VAR=...`` where neither the target nor its module reads VAR."""
    targets = makefile_targets(makefile)
    return [
        f"make {target}: {name}= is read by neither the Makefile's {target} nor its module"
        for target, names in make_calls(document)
        if target in targets
        for name in sorted(names - target_variables(target, makefile))
    ]


def steps_run(action: Any, gitops: bool) -> list[dict[str, Any]]:
    """The promote action's steps that run for a stack whose ``delivery.gitops`` is ``gitops``;
    ValueError for a condition that is not one of :data:`GITOPS_CONDITION`."""
    steps: list[dict[str, Any]] = action["runs"]["steps"]
    for step in steps:
        if "if" in step and step["if"] not in GITOPS_CONDITION.values():
            raise ValueError(f"{step.get('name')}: unknown condition {step['if']!r}")
    return [
        step
        for step in steps
        if step.get("if", GITOPS_CONDITION[gitops]) == GITOPS_CONDITION[gitops]
    ]


def is_argocd_wait(step: dict[str, Any]) -> bool:
    """Polls the root Application until it reports the commit Synced and Healthy."""
    run = str(step.get("run", ""))
    return "/api/v1/applications/" in run and '"$COMMIT Synced Healthy"' in run


def is_pulumi_up(step: dict[str, Any]) -> bool:
    """``pulumi up`` of the promoted stack, from the repository's root, by a pinned action."""
    ref = str(step.get("uses", ""))
    given = step.get("with", {})
    return (
        ref.startswith("pulumi/actions@")
        and PINNED.fullmatch(ref) is not None
        and given.get("command") == "up"
        and given.get("stack-name") == "${{ inputs.env }}"
        and given.get("work-dir") in (".", "./")
    )


def _index(steps: list[dict[str, Any]], command: str) -> int | None:
    return next((i for i, s in enumerate(steps) if command in str(s.get("run", ""))), None)


def deploy_problems(action: Any, gitops: bool) -> list[str]:
    """For a stack with ``delivery.gitops`` = ``gitops``: make promote, then exactly one deploy
    that waits for health (Argo CD's wait when true, pulumi up when false), then make smoke."""
    steps = steps_run(action, gitops)
    deploys = [i for i, step in enumerate(steps) if is_argocd_wait(step) or is_pulumi_up(step)]
    expected = is_argocd_wait if gitops else is_pulumi_up
    how = "the Argo CD wait" if gitops else "pulumi up"
    if [expected(steps[i]) for i in deploys] != [True]:
        return [f"gitops {str(gitops).lower()}: {len(deploys)} deploy steps, not {how} alone"]
    promote, smoke = _index(steps, "make promote"), _index(steps, "make smoke")
    if promote is None or smoke is None or not promote < deploys[0] < smoke:
        return [f"gitops {str(gitops).lower()}: not make promote, {how}, make smoke in order"]
    return []


def cosign_releases(document: Any) -> set[str]:
    """The cosign versions the cosign-installer steps install."""
    return {
        str(step.get("with", {}).get("cosign-release"))
        for step in _steps(document)
        if str(step.get("uses", "")).startswith("sigstore/cosign-installer@")
    }
