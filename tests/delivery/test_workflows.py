"""The delivery workflow (.github/workflows/ci.yml) and its promote action: valid against
SchemaStore's schemas, the jobs in pipeline order, every action pinned by commit SHA,
least-privilege permissions, prod behind the `production` environment. Each rule is also run
against a deliberately broken copy, which it must refuse."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import workflow_rules as rules

CI = rules.WORKFLOWS / "ci.yml"
PROMOTE_ACTION = rules.ACTIONS / "promote" / "action.yml"
Rule = Callable[[Any], list[str]]


@pytest.fixture(scope="module")
def ci() -> Any:
    return rules.load(CI)


def _tag_pinned(doc: Any) -> None:
    doc["jobs"]["lint"]["steps"][0]["uses"] = "actions/checkout@v4"


def _write_all(doc: Any) -> None:
    doc["permissions"] = "write-all"


def _id_token_in_tests(doc: Any) -> None:
    doc["jobs"]["test"]["permissions"] = {"contents": "read", "id-token": "write"}


def _prod_without_environment(doc: Any) -> None:
    del doc["jobs"]["promote-prod"]["environment"]


def _prod_straight_after_dev(doc: Any) -> None:
    doc["jobs"]["promote-prod"]["needs"] = ["image", "promote-dev"]


def _push_before_scan(doc: Any) -> None:
    doc["jobs"]["sign"]["needs"] = ["image"]


def _no_timeout(doc: Any) -> None:
    del doc["jobs"]["push"]["timeout-minutes"]


BROKEN: list[tuple[Rule, Callable[[Any], None]]] = [
    (rules.unpinned, _tag_pinned),
    (rules.permission_problems, _write_all),
    (rules.permission_problems, _id_token_in_tests),
    (rules.environment_problems, _prod_without_environment),
    (rules.order_problems, _prod_straight_after_dev),
    (rules.order_problems, _push_before_scan),
    (rules.timeout_problems, _no_timeout),
]


@pytest.mark.orr("4.3-05")
@pytest.mark.parametrize(
    ("path", "schema"),
    [(CI, "github-workflows"), (PROMOTE_ACTION, "github-actions")],
    ids=["workflow", "promote-action"],
)
def test_valid_against_schemastore(path: Any, schema: str) -> None:
    assert rules.schema_problems(rules.load(path), schema) == []


@pytest.mark.orr("4.3-05")
def test_the_schema_refuses_a_broken_workflow(ci: Any) -> None:
    broken = copy.deepcopy(ci)
    broken["jobs"]["lint"]["runs-on"] = None
    del broken["on"]
    assert rules.schema_problems(broken, "github-workflows")


@pytest.mark.orr("4.3-05", "4.3-06")
@pytest.mark.parametrize(
    "rule",
    [
        rules.order_problems,
        rules.unpinned,
        rules.permission_problems,
        rules.environment_problems,
        rules.timeout_problems,
    ],
)
def test_the_workflow_keeps_the_rule(ci: Any, rule: Rule) -> None:
    assert rule(ci) == []


@pytest.mark.orr("4.3-05")
@pytest.mark.parametrize(
    ("rule", "breakage"), BROKEN, ids=[breakage.__name__.strip("_") for _, breakage in BROKEN]
)
def test_each_rule_refuses_a_broken_workflow(
    ci: Any, rule: Rule, breakage: Callable[[Any], None]
) -> None:
    broken = copy.deepcopy(ci)
    breakage(broken)
    assert rule(broken)


@pytest.mark.orr("4.3-05")
def test_the_promote_action_pins_its_actions_too() -> None:
    action = rules.load(PROMOTE_ACTION)
    assert rules.unpinned(action) == []
    action["runs"]["steps"].append({"uses": "actions/cache@v4"})
    assert rules.unpinned(action) == ["actions/cache@v4"]


@pytest.mark.orr("4.3-05", "4.3-06", "4.3-07")
def test_every_make_target_the_pipeline_calls_exists(ci: Any) -> None:
    called = rules.make_targets_called(ci) | rules.make_targets_called(rules.load(PROMOTE_ACTION))
    assert {"test", "check-generated", "image", "sign", "promote", "smoke"} <= called
    assert sorted(called - rules.makefile_targets()) == []


def _run(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


@pytest.mark.orr("4.3-07")
def test_the_suite_gates_the_image(ci: Any) -> None:
    """make test (unit, integration, the local-environment tests) and the drift check run on
    every pull request and before anything is built."""
    assert "make test" in _run(ci["jobs"]["test"])
    assert "make check-generated" in _run(ci["jobs"]["drift"])
    assert "cap_ops.promote check" in _run(ci["jobs"]["lint"])
    assert {"test", "drift", "lint"} <= rules.ancestors(ci["jobs"], "image")
    assert "pull_request" in ci["on"]


@pytest.mark.orr("4.3-06")
def test_the_image_is_built_then_pushed_by_digest(ci: Any) -> None:
    jobs = ci["jobs"]
    assert "make image" in _run(jobs["image"])
    assert "digest" in jobs["image"]["outputs"]
    pushed = _run(jobs["push"])
    assert "cosign load" in pushed
    assert "make verify-image" in pushed
    assert "@$DIGEST" in pushed
    scan = next(s for s in jobs["scan"]["steps"] if "trivy-action" in s.get("uses", ""))
    assert scan["with"]["severity"] == "CRITICAL"
    assert scan["with"]["exit-code"] == "1"
    assert {s for s in jobs["push"]["strategy"]["matrix"]["include"] for s in [s["env"]]} == {
        "dev",
        "staging",
        "prod",
    }


@pytest.mark.orr("4.3-09")
def test_each_promotion_waits_for_argo_cd_then_smoke_tests(ci: Any) -> None:
    steps = rules.load(PROMOTE_ACTION)["runs"]["steps"]
    names = [step["name"] for step in steps]
    wait = names.index("Wait for Argo CD to sync the commit")
    smoke = next(i for i, step in enumerate(steps) if "make smoke" in step.get("run", ""))
    promote = next(i for i, step in enumerate(steps) if "make promote" in step.get("run", ""))
    assert promote < wait < smoke
    for name in rules.PROMOTION_JOBS:
        used = [step for step in ci["jobs"][name]["steps"] if step.get("uses", "").startswith("./")]
        assert [step["uses"] for step in used] == ["./.github/actions/promote"]
        assert used[0]["with"]["env"] == name.removeprefix("promote-")


@pytest.mark.orr("4.3-05")
def test_promotions_do_not_run_concurrently(ci: Any) -> None:
    for name in rules.PROMOTION_JOBS:
        concurrency = ci["jobs"][name]["concurrency"]
        assert concurrency == {"group": name, "cancel-in-progress": False}


def test_yamllint_clean() -> None:
    result = subprocess.run(
        [
            str(rules.ROOT / ".venv" / "bin" / "yamllint"),
            "-c",
            str(rules.ROOT / ".github" / ".yamllint.yaml"),
            "--strict",
            str(rules.ROOT / ".github"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
