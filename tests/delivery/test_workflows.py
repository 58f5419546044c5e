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
from infra.config import load as load_stack

from cap_ops.image.cosign import load_pin

CI = rules.WORKFLOWS / "ci.yml"
PROMOTE_ACTION = rules.ACTIONS / "promote" / "action.yml"
Rule = Callable[[Any], list[str]]


@pytest.fixture(scope="module")
def ci() -> Any:
    return rules.load(CI)


@pytest.fixture(scope="module")
def action() -> Any:
    return rules.load(PROMOTE_ACTION)


def gitops(job: str) -> bool:
    """``delivery.gitops`` of the stack a promotion job deploys."""
    return load_stack(job.removeprefix("promote-")).delivery.gitops


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
def test_every_make_target_the_pipeline_calls_exists(ci: Any, action: Any) -> None:
    called = rules.make_targets_called(ci) | rules.make_targets_called(action)
    assert {
        "test",
        "check-generated",
        "image",
        "sign",
        "verify-image",
        "promote",
        "smoke",
    } <= called
    assert sorted(called - rules.makefile_targets()) == []


@pytest.mark.orr("4.3-05")
def test_every_make_variable_the_pipeline_gives_is_read(ci: Any, action: Any) -> None:
    """A VAR= nobody reads is silently ignored by make: here it fails."""
    assert rules.make_variable_problems(ci) == []
    assert rules.make_variable_problems(action) == []
    given = {name for _, names in rules.make_calls(ci) + rules.make_calls(action) for name in names}
    assert {"COSIGN", "IMAGE", "SBOM", "COSIGN_KEY", "ENV", "DIGEST", "URL"} <= given
    broken = copy.deepcopy(ci)
    broken["jobs"]["image"]["steps"].append({"run": 'make image IMAGE_ARCHIVE="$IMAGE_ARCHIVE"'})
    assert rules.make_variable_problems(broken) == [
        "make image: IMAGE_ARCHIVE= is read by neither the Makefile's image nor its module"
    ]


def test_the_ci_cosign_is_the_locked_version(ci: Any) -> None:
    """The runners install cosign with the installer (make cosign's apt setup is Debian's) and
    give it to make as COSIGN=cosign: the version of tools/cosign/cosign.lock."""
    upstream = load_pin().version.split("-")[0]
    assert rules.cosign_releases(ci) == {f"v{upstream}"}
    cosign_calls = [
        names for target, names in rules.make_calls(ci) if target in {"sign", "verify-image"}
    ]
    assert cosign_calls
    assert all("COSIGN" in names for names in cosign_calls)


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


def test_each_promotion_job_uses_the_promote_action(ci: Any) -> None:
    for name in rules.PROMOTION_JOBS:
        used = [step for step in ci["jobs"][name]["steps"] if step.get("uses", "").startswith("./")]
        assert [step["uses"] for step in used] == ["./.github/actions/promote"]
        assert used[0]["with"]["env"] == name.removeprefix("promote-")


def _promote_inputs(ci: Any, job: str) -> set[str]:
    step = next(s for s in ci["jobs"][job]["steps"] if s.get("uses") == "./.github/actions/promote")
    return set(step["with"])


# ORR 4.3-08 asks for `helm upgrade --wait`: a deploy that returns only once the release is
# healthy. Its equivalent here (orr/decisions.yaml): staging and prod are synced by Argo CD, and
# the promotion waits until the root Application reports the promoted commit Synced and Healthy
# (every object of deploy/<env>/ healthy by Argo CD's health checks, a Deployment rolled out);
# dev is deployed by `pulumi up`, whose Kubernetes provider returns only once each object is
# ready (nothing in infra/ sets skipAwait). Only then does make smoke run (4.3-09).
@pytest.mark.orr("4.3-08", "4.3-09")
def test_each_promotion_waits_for_argo_cd_then_smoke_tests(ci: Any, action: Any) -> None:
    argocd = sorted(job for job in rules.PROMOTION_JOBS if gitops(job))
    assert argocd == ["promote-prod", "promote-staging"]
    assert rules.deploy_problems(action, gitops=True) == []
    for job in argocd:
        assert rules.DEPLOY_INPUTS[True] <= _promote_inputs(ci, job)
        assert not rules.DEPLOY_INPUTS[False] & _promote_inputs(ci, job)


@pytest.mark.orr("4.3-09")
def test_dev_is_deployed_by_pulumi_up_then_smoke_tested(ci: Any, action: Any) -> None:
    """dev is not delivered by Argo CD (Pulumi.dev.yaml, delivery.gitops: false): its promotion
    runs pulumi up (pinned action), never the Argo CD wait, then make smoke."""
    assert not gitops("promote-dev")
    assert rules.deploy_problems(action, gitops=False) == []
    assert not any(rules.is_argocd_wait(step) for step in rules.steps_run(action, gitops=False))
    assert rules.DEPLOY_INPUTS[False] <= _promote_inputs(ci, "promote-dev")
    assert not rules.DEPLOY_INPUTS[True] & _promote_inputs(ci, "promote-dev")


def _pulumi_step(action: Any) -> dict[str, Any]:
    return next(s for s in action["runs"]["steps"] if str(s.get("uses", "")).startswith("pulumi/"))


def _deploy_unconditional(action: Any) -> None:
    del _pulumi_step(action)["if"]


def _pulumi_tag_pinned(action: Any) -> None:
    _pulumi_step(action)["uses"] = "pulumi/actions@v6"


def _smoke_before_deploy(action: Any) -> None:
    steps = action["runs"]["steps"]
    smoke = next(s for s in steps if "make smoke" in str(s.get("run", "")))
    steps.remove(smoke)
    steps.insert(1, smoke)


def _argocd_wait_dropped(action: Any) -> None:
    action["runs"]["steps"] = [s for s in action["runs"]["steps"] if not rules.is_argocd_wait(s)]


@pytest.mark.parametrize(
    "breakage",
    [_deploy_unconditional, _pulumi_tag_pinned, _smoke_before_deploy, _argocd_wait_dropped],
    ids=lambda breakage: breakage.__name__.strip("_"),
)
def test_the_deploy_rule_refuses_a_broken_action(
    action: Any, breakage: Callable[[Any], None]
) -> None:
    broken = copy.deepcopy(action)
    breakage(broken)
    assert rules.deploy_problems(broken, gitops=True) or rules.deploy_problems(broken, gitops=False)


def test_a_step_condition_the_rule_cannot_read_is_refused(action: Any) -> None:
    broken = copy.deepcopy(action)
    _pulumi_step(broken)["if"] = "inputs.env == 'dev'"
    with pytest.raises(ValueError, match="unknown condition"):
        rules.steps_run(broken, gitops=False)


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
