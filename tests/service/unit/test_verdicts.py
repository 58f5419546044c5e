"""Rule evaluation and verdicts (contract 3.2 and 3.3)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from cap_verifier.domain import (
    IR,
    Context,
    blake3_hex,
    compile_policy_v2,
    compute_ir_hash,
    evaluate,
    parse_context,
    parse_ir,
    verify,
)
from cap_verifier.domain.verification import verdict

S1, S2, S3 = ("0x" + c * 64 for c in "abc")
U1 = "0x" + "d" * 64
LISTED = "0x" + "e" * 64
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def root_of(entries: list[str]) -> str:
    """The root a disclosed list must carry."""
    return "0x" + blake3_hex("".join(entries))


def make_ir(rules: list[dict[str, Any]], adaptivity: dict[str, Any] | None = None) -> IR:
    """Compile a policy with the given rules (and adaptivity) to IR; it must be lint-free."""
    doc: dict[str, Any] = {
        "id": "verdict.test",
        "version": "1",
        "legal_basis": [{"directive": "LkSG"}],
        "description": "verdict tests",
        "inputs": {
            "country": {"type": "string"},
            "score": {"type": "number"},
            "audited": {"type": "bool"},
            "high_risk": {"type": "bool"},
        },
        "rules": rules,
    }
    if adaptivity is not None:
        doc["adaptivity"] = adaptivity
    result = compile_policy_v2(doc, "strict")
    assert result.lints == []
    return result.ir


def ctx(**fields: Any) -> Context:
    """A context with two suppliers and one UBO unless overridden."""
    body: dict[str, Any] = {"supplier_hashes": [S1, S2], "ubo_hashes": [U1]}
    body.update(fields)
    return parse_context({k: v for k, v in body.items() if v is not None})


def one(rule: dict[str, Any], context: Context) -> tuple[str, str]:
    """Status and detail of a single rule."""
    evaluation = evaluate(make_ir([{"id": "r", **rule}]), context, adaptive=False)
    assert len(evaluation.rules) == 1
    outcome = evaluation.rules[0]
    return outcome.status, outcome.detail


NON_MEMBERSHIP = {"op": "non_membership", "lhs": "supplier_hashes", "rhs": "sanctions_root"}
SANCTIONS_CLEAN = [LISTED]
SANCTIONS_HIT = [LISTED, S2]


@pytest.mark.parametrize(
    ("context", "status", "detail_part"),
    [
        pytest.param(
            ctx(
                sanctions_root=root_of(SANCTIONS_CLEAN),
                lists={root_of(SANCTIONS_CLEAN): SANCTIONS_CLEAN},
            ),
            "pass",
            "none of the 2 entries",
            id="pass",
        ),
        pytest.param(
            ctx(
                sanctions_root=root_of(SANCTIONS_HIT), lists={root_of(SANCTIONS_HIT): SANCTIONS_HIT}
            ),
            "fail",
            "supplier_hashes[1]",
            id="fail",
        ),
        pytest.param(
            ctx(sanctions_root=root_of([]), lists={root_of([]): []}),
            "pass",
            "(0 entries)",
            id="pass-empty-list",
        ),
        pytest.param(ctx(), "unknown", "sanctions_root is absent", id="unknown-no-root"),
        pytest.param(
            ctx(sanctions_root=root_of(SANCTIONS_HIT)),
            "unknown",
            "no list is disclosed",
            id="unknown-not-disclosed",
        ),
        pytest.param(
            ctx(
                supplier_hashes=None,
                sanctions_root=root_of(SANCTIONS_HIT),
                lists={root_of(SANCTIONS_HIT): SANCTIONS_HIT},
            ),
            "unknown",
            "supplier_hashes is absent",
            id="unknown-no-suppliers",
        ),
    ],
)
def test_non_membership(context: Context, status: str, detail_part: str) -> None:
    got_status, detail = one(NON_MEMBERSHIP, context)
    assert got_status == status
    assert detail_part in detail
    for value in (S1, S2, LISTED, root_of(SANCTIONS_HIT)):
        assert value not in detail


def test_non_membership_compares_hex_case_insensitively() -> None:
    upper = "0x" + S2[2:].upper()
    listed = [LISTED, upper]
    context = ctx(sanctions_root=root_of(listed), lists={root_of(listed): listed})
    assert one(NON_MEMBERSHIP, context)[0] == "fail"


@pytest.mark.parametrize(
    ("rule", "variables", "status"),
    [
        pytest.param(
            {"lhs": "country", "rhs": {"var": "country"}}, {"country": "DE"}, "pass", id="var-var"
        ),
        pytest.param({"lhs": "supplier_count", "rhs": 2}, {}, "pass", id="count-pass"),
        pytest.param({"lhs": "supplier_count", "rhs": 3}, {}, "fail", id="count-fail"),
        pytest.param({"lhs": "audited", "rhs": True}, {"audited": True}, "pass", id="bool-pass"),
        pytest.param({"lhs": "audited", "rhs": False}, {"audited": True}, "fail", id="bool-fail"),
        pytest.param({"lhs": "audited", "rhs": 1}, {"audited": True}, "fail", id="bool-is-not-1"),
        pytest.param({"lhs": "score", "rhs": 2}, {"score": 2.0}, "pass", id="int-float"),
        pytest.param({"lhs": "country", "rhs": 1}, {}, "unknown", id="absent-lhs"),
        pytest.param({"lhs": 1, "rhs": {"var": "score"}}, {}, "unknown", id="absent-rhs"),
    ],
)
def test_eq(rule: dict[str, Any], variables: dict[str, Any], status: str) -> None:
    assert one({"op": "eq", **rule}, ctx(variables=variables))[0] == status


def test_eq_detail_says_why_without_hashes() -> None:
    status, detail = one(
        {"op": "eq", "lhs": "sanctions_root", "rhs": {"var": "jurisdiction_root"}},
        ctx(sanctions_root=S3, jurisdiction_root=LISTED),
    )
    assert status == "fail"
    assert detail == "sanctions_root (a hash) differs from jurisdiction_root (a hash)"


@pytest.mark.parametrize(
    ("rule", "variables", "status", "detail_part"),
    [
        pytest.param({"lhs": "score", "rhs": 5}, {"score": 5}, "pass", "at least", id="equal"),
        pytest.param({"lhs": "score", "rhs": 5}, {"score": 7.5}, "pass", "at least", id="above"),
        pytest.param({"lhs": "score", "rhs": 5}, {"score": 4.9}, "fail", "below", id="below"),
        pytest.param({"lhs": "ubo_hashes", "rhs": 1}, {}, "pass", "1 entries", id="list-len"),
        pytest.param(
            {"lhs": "supplier_hashes", "rhs": 3}, {}, "fail", "2 entries", id="list-short"
        ),
        pytest.param({"lhs": "score", "rhs": 5}, {}, "unknown", "absent", id="absent"),
        pytest.param(
            {"lhs": "country", "rhs": 5}, {"country": "DE"}, "unknown", "not numeric", id="string"
        ),
        pytest.param(
            {"lhs": "audited", "rhs": 0}, {"audited": True}, "unknown", "not numeric", id="bool"
        ),
        pytest.param(
            {"lhs": 3, "rhs": {"var": "country"}},
            {"country": "5"},
            "unknown",
            "not numeric",
            id="rhs-string",
        ),
    ],
)
def test_range_min(
    rule: dict[str, Any], variables: dict[str, Any], status: str, detail_part: str
) -> None:
    got_status, detail = one({"op": "range_min", **rule}, ctx(variables=variables))
    assert got_status == status
    assert detail_part in detail


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], "OK"),
        (["pass"], "OK"),
        (["pass", "pass"], "OK"),
        (["pass", "unknown"], "WARN"),
        (["unknown"], "WARN"),
        (["fail"], "FAIL"),
        (["unknown", "fail"], "FAIL"),
        (["pass", "fail", "unknown"], "FAIL"),
    ],
)
def test_verdict_table(statuses: list[Any], expected: str) -> None:
    assert verdict(statuses) == expected


PASS_RULE = {"id": "a_pass", "op": "range_min", "lhs": "supplier_count", "rhs": 1}
FAIL_RULE = {"id": "b_fail", "op": "range_min", "lhs": "supplier_count", "rhs": 9}
UNKNOWN_RULE = {"id": "c_unknown", "op": "eq", "lhs": "country", "rhs": 1}


@pytest.mark.parametrize(
    ("rules", "result", "passed"),
    [
        ([PASS_RULE], "OK", 1),
        ([PASS_RULE, UNKNOWN_RULE], "WARN", 1),
        ([PASS_RULE, FAIL_RULE], "FAIL", 1),
        ([UNKNOWN_RULE, FAIL_RULE, PASS_RULE], "FAIL", 1),
    ],
)
def test_verify_report(rules: list[dict[str, Any]], result: str, passed: int) -> None:
    ir = make_ir(rules)
    body = verify(
        ir,
        ctx(),
        mode="policy_id",
        policy_id="verdict.test",
        backend="mock",
        adaptive=False,
        now=NOW,
    )
    assert list(body) == ["result", "manifest_hash", "proof_hash", "trace", "report"]
    assert body["result"] == result
    assert body["trace"] == {
        "mode": "policy_id",
        "policy_id": "verdict.test",
        "backend": "mock",
        "adaptive": False,
    }
    report = body["report"]
    assert report["status"] == result.lower()
    assert report["policy_hash"] == ir.policy_hash
    assert report["ir_hash"] == ir.ir_hash
    assert report["checks_total"] == len(rules)
    assert report["checks_passed"] == passed
    assert [r["id"] for r in report["rules"]] == sorted(r["id"] for r in rules)
    assert all(list(r) == ["id", "op", "status", "detail"] for r in report["rules"])


# --------------------------------------------------------------------------- adaptivity


def adaptive_ir(expr: Any) -> IR:
    """Rule b_fail is activated by predicate p, a_pass is always evaluated without adaptivity."""
    return make_ir(
        [PASS_RULE, FAIL_RULE],
        {
            "predicates": [{"id": "p", "expr": expr}, {"id": "always", "expr": True}],
            "activations": [
                {"when": "p", "rules": ["b_fail"]},
                {"when": "always", "rules": ["a_pass"]},
            ],
        },
    )


@pytest.mark.parametrize(
    ("expr", "variables", "active"),
    [
        pytest.param(True, {}, True, id="bool-true"),
        pytest.param(False, {}, False, id="bool-false"),
        pytest.param("high_risk", {"high_risk": True}, True, id="var-true"),
        pytest.param("high_risk", {"high_risk": False}, False, id="var-false"),
        pytest.param("high_risk", {}, False, id="var-absent"),
        pytest.param("high_risk", {"high_risk": "true"}, False, id="var-not-bool"),
        pytest.param(
            {"func": "gt", "args": [{"var": "score"}, 3]}, {"score": 4}, True, id="gt-true"
        ),
        pytest.param(
            {"func": "gt", "args": [{"var": "score"}, 3]}, {"score": 3}, False, id="gt-false"
        ),
        pytest.param(
            {"func": "lt", "args": [{"var": "score"}, 3]}, {"score": 2}, True, id="lt-true"
        ),
        pytest.param(
            {"func": "lt", "args": [{"var": "score"}, 3]}, {"score": 3}, False, id="lt-false"
        ),
        pytest.param({"func": "lt", "args": [{"var": "score"}, 3]}, {}, False, id="lt-absent"),
        pytest.param(
            {"func": "gt", "args": [{"var": "country"}, 3]},
            {"country": "DE"},
            False,
            id="gt-string",
        ),
        pytest.param(
            {"func": "gt", "args": [{"var": "supplier_hashes"}, 1]}, {}, True, id="gt-list"
        ),
        pytest.param(
            {"func": "eq", "args": [{"var": "country"}, "DE"]},
            {"country": "DE"},
            True,
            id="eq-true",
        ),
        pytest.param(
            {"func": "eq", "args": [{"var": "country"}, "DE"]},
            {"country": "FR"},
            False,
            id="eq-false",
        ),
        pytest.param({"func": "eq", "args": [{"var": "country"}, "DE"]}, {}, False, id="eq-absent"),
        pytest.param(
            {"func": "eq", "args": [{"var": "supplier_count"}, 2]}, {}, True, id="eq-builtin"
        ),
    ],
)
def test_predicate_forms_decide_activation(
    expr: Any, variables: dict[str, Any], active: bool
) -> None:
    evaluation = evaluate(adaptive_ir(expr), ctx(variables=variables), adaptive=True)
    ids = [rule.id for rule in evaluation.rules]
    assert ids == (["a_pass", "b_fail"] if active else ["a_pass"])
    assert evaluation.result == ("FAIL" if active else "OK")
    assert evaluation.checks_total == len(ids)
    assert evaluation.checks_passed == 1


@pytest.mark.parametrize("expr", [True, False])
def test_adaptivity_off_evaluates_every_rule(expr: bool) -> None:
    evaluation = evaluate(adaptive_ir(expr), ctx(), adaptive=False)
    assert [rule.id for rule in evaluation.rules] == ["a_pass", "b_fail"]
    assert evaluation.result == "FAIL"


def test_rules_without_activation_are_inactive_under_adaptivity() -> None:
    ir = make_ir(
        [PASS_RULE, UNKNOWN_RULE],
        {
            "predicates": [{"id": "p", "expr": True}],
            "activations": [{"when": "p", "rules": ["a_pass"]}],
        },
    )
    adaptive = evaluate(ir, ctx(), adaptive=True)
    assert (adaptive.result, adaptive.checks_total) == ("OK", 1)
    static = evaluate(ir, ctx(), adaptive=False)
    assert (static.result, static.checks_total) == ("WARN", 2)


def test_adaptive_flag_without_adaptivity_block_keeps_all_rules() -> None:
    evaluation = evaluate(make_ir([PASS_RULE, FAIL_RULE]), ctx(), adaptive=True)
    assert evaluation.checks_total == 2
    assert evaluation.result == "FAIL"


def test_inactive_failing_rule_gives_ok_in_the_response() -> None:
    ir = adaptive_ir(False)
    body = verify(
        ir, ctx(), mode="embedded_ir", policy_id=None, backend="mock", adaptive=True, now=NOW
    )
    assert body["result"] == "OK"
    assert body["trace"]["adaptive"] is True
    assert body["trace"]["policy_id"] is None
    assert body["report"]["checks_total"] == 1
    assert body["report"]["checks_passed"] == 1


def test_embedded_ir_literal_string_is_not_a_variable() -> None:
    ir = make_ir([{"id": "r", "op": "eq", "lhs": "country", "rhs": {"var": "country"}}]).to_json()
    rules = cast(list[dict[str, Any]], ir["rules"])
    rules[0]["rhs"] = "DE"
    del ir["ir_hash"]
    ir["ir_hash"] = compute_ir_hash(ir)
    parsed = parse_ir(ir)
    assert evaluate(parsed, ctx(variables={"country": "DE"}), adaptive=False).result == "OK"
    assert evaluate(parsed, ctx(variables={"country": "FR"}), adaptive=False).result == "FAIL"
