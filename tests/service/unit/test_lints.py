"""PolicyV2 lints (contract 2.2): one minimal policy per code, ordering, strict vs relaxed."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from cap_verifier.domain import (
    BUILTIN_VARIABLES,
    InvalidShape,
    compile_policy_v2,
    lint_policy,
    parse_policy_v2,
)

Mutation = Callable[[dict[str, Any]], None]

BASE: dict[str, Any] = {
    "id": "lint.test",
    "version": "1",
    "legal_basis": [{"directive": "LkSG", "article": "§ 3"}],
    "description": "A policy without findings",
    "inputs": {"threshold": {"type": "number"}, "flag": {"type": "bool"}},
    "rules": [
        {"id": "r1", "op": "non_membership", "lhs": "supplier_hashes", "rhs": "sanctions_root"},
        {"id": "r2", "op": "range_min", "lhs": {"var": "ubo_count"}, "rhs": 1},
    ],
    "adaptivity": {
        "predicates": [{"id": "p1", "expr": {"func": "gt", "args": [{"var": "threshold"}, 3]}}],
        "activations": [{"when": "p1", "rules": ["r2"]}],
    },
}


def policy(mutate: Mutation | None = None) -> dict[str, Any]:
    """A deep copy of BASE with `mutate` applied."""
    doc = copy.deepcopy(BASE)
    if mutate is not None:
        mutate(doc)
    return doc


def codes(doc: dict[str, Any], mode: str = "strict") -> list[tuple[str, str, str | None]]:
    """(code, level, rule_id) of each lint of `doc`."""
    lints = compile_policy_v2(doc, mode).lints  # type: ignore[arg-type]
    return [(lint.code, lint.level, lint.rule_id) for lint in lints]


def test_base_policy_has_no_lints() -> None:
    assert codes(policy()) == []


def _set(key: str, value: Any) -> Mutation:
    return lambda doc: doc.__setitem__(key, value)


def _rule(index: int, key: str, value: Any) -> Mutation:
    return lambda doc: doc["rules"][index].__setitem__(key, value)


def _duplicate_rule(doc: dict[str, Any]) -> None:
    doc["rules"].append({"id": "r1", "op": "eq", "lhs": 1, "rhs": 1})


def _activation(key: str, value: Any) -> Mutation:
    return lambda doc: doc["adaptivity"]["activations"][0].__setitem__(key, value)


def _predicate_expr(expr: Any) -> Mutation:
    return lambda doc: doc["adaptivity"]["predicates"][0].__setitem__("expr", expr)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(_set("legal_basis", []), ("E1002", "error", None), id="E1002"),
        pytest.param(_set("description", ""), ("W1002", "warning", None), id="W1002-empty"),
        pytest.param(_set("description", "  "), ("W1002", "warning", None), id="W1002-blank"),
        pytest.param(lambda d: d.pop("description"), ("W1002", "warning", None), id="W1002-miss"),
        pytest.param(_duplicate_rule, ("E1003", "error", "r1"), id="E1003"),
        pytest.param(_rule(0, "op", "membership"), ("E2001", "error", "r1"), id="E2001"),
        pytest.param(
            _activation("rules", ["r2", "ghost"]), ("E1001", "error", "ghost"), id="E1001"
        ),
        pytest.param(_rule(1, "lhs", "nobody"), ("E2003", "error", "r2"), id="E2003-bare"),
        pytest.param(_rule(1, "rhs", {"var": "nobody"}), ("E2003", "error", "r2"), id="E2003-var"),
        pytest.param(
            _predicate_expr({"func": "lt", "args": [1, {"var": "nobody"}]}),
            ("E2003", "error", None),
            id="E2003-predicate-arg",
        ),
        pytest.param(_predicate_expr("nobody"), ("E2003", "error", None), id="E2003-predicate"),
        pytest.param(_activation("when", "p9"), ("E1004", "error", None), id="E1004"),
    ],
)
def test_each_code_is_reached_by_a_minimal_policy(
    mutate: Mutation, expected: tuple[str, str, str | None]
) -> None:
    assert codes(policy(mutate)) == [expected]


@pytest.mark.parametrize(
    ("mode", "level", "has_errors"),
    [("strict", "error", True), ("relaxed", "warning", False)],
)
def test_e1002_level_depends_on_mode(mode: str, level: str, has_errors: bool) -> None:
    result = compile_policy_v2(policy(_set("legal_basis", [])), mode)  # type: ignore[arg-type]
    assert [(lint.code, lint.level) for lint in result.lints] == [("E1002", level)]
    assert result.has_errors is has_errors


@pytest.mark.parametrize("mode", ["strict", "relaxed"])
def test_other_codes_do_not_depend_on_mode(mode: str) -> None:
    assert codes(policy(_rule(0, "op", "bogus")), mode) == [("E2001", "error", "r1")]


def test_warnings_only_means_no_errors() -> None:
    def mutate(doc: dict[str, Any]) -> None:
        doc["legal_basis"] = []
        doc["description"] = ""

    result = compile_policy_v2(policy(mutate), "relaxed")
    assert [lint.level for lint in result.lints] == ["warning", "warning"]
    assert result.has_errors is False


def _every_finding(doc: dict[str, Any]) -> None:
    """One finding of every code, written in the reverse of the table order."""
    doc["adaptivity"]["activations"] = [
        {"when": "missing_predicate", "rules": ["r1"]},
        {"when": "p1", "rules": ["missing_rule"]},
    ]
    doc["rules"] = [
        {"id": "r0", "op": "eq", "lhs": "undeclared", "rhs": 1},
        {"id": "r1", "op": "contains", "lhs": 1, "rhs": 1},
        {"id": "r1", "op": "eq", "lhs": 1, "rhs": 1},
    ]
    doc["description"] = ""
    doc["legal_basis"] = []


def test_lints_follow_the_table_order() -> None:
    assert codes(policy(_every_finding)) == [
        ("E1002", "error", None),
        ("W1002", "warning", None),
        ("E1003", "error", "r1"),
        ("E2001", "error", "r1"),
        ("E1001", "error", "missing_rule"),
        ("E2003", "error", "r0"),
        ("E1004", "error", None),
    ]


def test_repeated_findings_keep_document_order_within_a_code() -> None:
    def mutate(doc: dict[str, Any]) -> None:
        doc["rules"] = [
            {"id": "b", "op": "x1", "lhs": 1, "rhs": 1},
            {"id": "a", "op": "x2", "lhs": 1, "rhs": 1},
            {"id": "b", "op": "eq", "lhs": 1, "rhs": 1},
            {"id": "b", "op": "eq", "lhs": 1, "rhs": 1},
        ]
        doc["adaptivity"] = None

    assert codes(policy(mutate)) == [
        ("E1003", "error", "b"),
        ("E1003", "error", "b"),
        ("E2001", "error", "b"),
        ("E2001", "error", "a"),
    ]


def test_lint_json_shape() -> None:
    lint = compile_policy_v2(policy(_rule(0, "op", "bogus")), "strict").lints[0]
    body = lint.to_json()
    assert list(body) == ["code", "level", "message", "rule_id"]
    assert body["rule_id"] == "r1"
    assert "rules[0].op" in str(body["message"])
    assert "bogus" in str(body["message"])


@pytest.mark.parametrize("name", sorted(BUILTIN_VARIABLES))
def test_builtin_variables_are_not_e2003(name: str) -> None:
    assert codes(policy(_rule(1, "lhs", name))) == []


def test_declared_inputs_are_not_e2003() -> None:
    assert codes(policy(_rule(1, "rhs", {"var": "threshold"}))) == []


def test_literal_predicate_args_are_not_variables() -> None:
    assert codes(policy(_predicate_expr({"func": "eq", "args": ["nobody", "x"]}))) == []


def test_lint_problems_are_not_shape_errors() -> None:
    result = compile_policy_v2(policy(_every_finding), "strict")
    assert result.has_errors
    assert result.ir.ir_hash.startswith("sha3-256:")


def test_lint_policy_refuses_an_unknown_mode() -> None:
    with pytest.raises(InvalidShape, match=r"^lint_mode:"):
        lint_policy(parse_policy_v2(policy()), "lenient")  # type: ignore[arg-type]
