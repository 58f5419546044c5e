"""Every checklist line is claimed by a test or decided in orr/decisions.yaml, never both (but
for an equivalent whose evidence names the tests that claim it), and evidence names tests and
files that exist; the decision file's rules, each against an input that breaks it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cap_ops.orr.decisions import ROOT, Decision, load_decisions, mapping_problems, names_test
from cap_ops.orr.evidence import collected_claims
from cap_ops.orr.items import Item, load_items
from cap_verifier.typed_yaml import ConfigError


def whole_suite(config: pytest.Config) -> bool:
    """Whether this process collected every test: it was given the tests folder (or the
    repository), not files or node ids of it."""
    tests = ROOT / "tests"
    return all(
        "::" not in arg and (config.invocation_params.dir / arg).resolve() in (tests, ROOT)
        for arg in config.args
    )


def test_every_line_is_claimed_or_decided_and_evidence_exists(
    request: pytest.FixtureRequest,
) -> None:
    """Over every test this process collected, deselected ones included (-m, -k)."""
    if not whole_suite(request.config):
        pytest.skip("the mapping needs the whole suite collected (pytest tests/)")
    claims = collected_claims(request.config)
    assert mapping_problems(load_items(), claims, load_decisions(), claims) == []


ITEMS = ["1.1-01", "1.1-02", "1.1-03"]
CLAIMS = {"tests/a.py::test_one": ["1.1-01"], "tests/a.py::test_two[x]": ["1.1-02"]}


def decide(orr_id: str, kind: str, **fields: object) -> dict[str, Decision]:
    return {orr_id: Decision(id=orr_id, kind=kind, **fields)}  # type: ignore[arg-type]


MANUAL = {"owner": "DevOps Lead", "step": "a test page to the real PagerDuty account"}


def test_a_complete_mapping_has_no_problem() -> None:
    decisions = decide("1.1-03", "manual", **MANUAL)
    assert mapping_problems(ITEMS, CLAIMS, decisions, CLAIMS) == []


@pytest.mark.parametrize(
    ("decisions", "problem"),
    [
        ({}, "ORR 1.1-03: claimed by no test and not in the decisions"),
        (
            {**decide("1.1-03", "manual", **MANUAL), **decide("1.1-01", "manual", **MANUAL)},
            "ORR 1.1-01: decided as manual but claimed by tests/a.py::test_one",
        ),
        (
            {
                **decide("1.1-03", "manual", **MANUAL),
                **decide(
                    "1.1-02", "equivalent", reason="another way", evidence=("tests/a.py::test_one",)
                ),
            },
            "ORR 1.1-02: claimed by tests/a.py::test_two[x], which its evidence omits",
        ),
        (
            decide("1.1-03", "equivalent", reason="another way", evidence=("tests/a.py::test_t",)),
            "ORR 1.1-03: evidence tests/a.py::test_t names no collected test",
        ),
        (
            decide("1.1-03", "equivalent", reason="another way", evidence=("docs/none.md",)),
            "ORR 1.1-03: evidence docs/none.md is not a file of the repository",
        ),
        (
            {**decide("1.1-03", "manual", **MANUAL), **decide("9.9-99", "manual", **MANUAL)},
            "ORR 9.9-99: decided but not a checklist line",
        ),
    ],
    ids=["undecided", "both", "evidence-omits", "no-test", "no-file", "unknown"],
)
def test_each_mapping_rule_catches_its_breach(decisions: dict[str, Decision], problem: str) -> None:
    assert mapping_problems(ITEMS, CLAIMS, decisions, CLAIMS) == [problem]


def test_an_equivalent_may_be_claimed_by_the_tests_it_names() -> None:
    decisions = {
        **decide("1.1-03", "manual", **MANUAL),
        **decide("1.1-02", "equivalent", reason="another way", evidence=("tests/a.py::test_two",)),
    }
    assert mapping_problems(ITEMS, CLAIMS, decisions, CLAIMS) == []


@pytest.mark.parametrize(
    ("prefix", "named"),
    [
        ("tests/a.py::test_two[x]", True),
        ("tests/a.py::test_two", True),
        ("tests/a.py", True),
        ("tests/", True),
        ("tests/a.py::test_tw", False),
        ("tests/a", False),
    ],
)
def test_evidence_names_a_test_at_a_boundary(prefix: str, named: bool) -> None:
    assert names_test(prefix, "tests/a.py::test_two[x]") is named


DECISION = '- {id: "1.1-01", class: manual, owner: Tech Lead, step: "sign-off by the Tech Lead"}\n'


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (DECISION + DECISION, r"\[1\]\.id: 1\.1-01 is listed twice"),
        (
            DECISION.replace("1.1-01", "9.9-99"),
            r"\[0\]\.id: 9\.9-99 is not a line of the checklist",
        ),
        (DECISION.replace("step:", "stp:"), r"\[0\]\.stp: unknown key"),
        (DECISION.replace("owner: Tech Lead, ", ""), r"\[0\]\.owner: class manual needs it"),
        (DECISION.replace("Tech Lead,", "Bob,"), r"\[0\]\.owner: Invalid enum value 'Bob'"),
        (DECISION.replace("manual", "blocker"), r"\[0\]\.reason: class blocker needs it"),
        (
            DECISION.replace("manual", "mitigation").replace("step:", "plan:"),
            None,
        ),
        (
            DECISION.replace("class: manual", "class: equivalent").replace("step:", "reason:"),
            r"\[0\]\.evidence: class equivalent needs it",
        ),
        (
            DECISION.replace("}", ', plan: "and a plan besides"}'),
            r"\[0\]\.plan: not a key of class manual",
        ),
        (DECISION.replace("manual", "approved"), r"\[0\]\.class: Invalid enum value 'approved'"),
    ],
    ids=[
        "twice",
        "unknown-id",
        "unknown-key",
        "no-owner",
        "bad-owner",
        "blocker-no-reason",
        "mitigation-ok",
        "equivalent-no-evidence",
        "extra-key",
        "bad-class",
    ],
)
def test_the_decision_file_rules(tmp_path: Path, text: str, problem: str | None) -> None:
    path = tmp_path / "decisions.yaml"
    path.write_text(text, encoding="utf-8")
    items = {"1.1-01": Item(id="1.1-01", section="1.1 Cluster", title="three nodes")}
    if problem is None:
        assert list(load_decisions(path, items)) == ["1.1-01"]
        return
    with pytest.raises(ConfigError, match=f"^{path}: {problem}") as caught:
        load_decisions(path, items)
    assert "\n" not in str(caught.value)
