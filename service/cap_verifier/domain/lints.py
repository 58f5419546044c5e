"""PolicyV2 lints (contract 2.2): the findings of a policy of valid shape, in table order."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from cap_verifier.domain.encoding import JsonValue
from cap_verifier.domain.errors import InvalidShape
from cap_verifier.domain.json_input import require_str
from cap_verifier.domain.policy_model import (
    BUILTIN_VARIABLES,
    KNOWN_OPS,
    Activation,
    PolicyV2,
    Predicate,
    operand_var_name,
)

LintMode = Literal["strict", "relaxed"]
LintLevel = Literal["error", "warning"]
LINT_MODES: tuple[LintMode, ...] = ("strict", "relaxed")


@dataclass(frozen=True)
class Lint:
    """One lint finding."""

    code: str
    level: LintLevel
    message: str
    rule_id: str | None = None

    def to_json(self) -> dict[str, str | None]:
        """`{code, level, message, rule_id}`."""
        return {
            "code": self.code,
            "level": self.level,
            "message": self.message,
            "rule_id": self.rule_id,
        }


def require_lint_mode(value: object, path: str = "lint_mode") -> LintMode:
    """`strict` or `relaxed`, else InvalidShape."""
    text = require_str(value, path)
    for mode in LINT_MODES:
        if mode == text:
            return mode
    raise InvalidShape(f"{path}: expected strict or relaxed")


def rule_var_name(operand: JsonValue) -> str | None:
    """The variable a rule operand names: a bare string or `{"var": name}`."""
    if isinstance(operand, str):
        return operand
    return operand_var_name(operand)


def _lint_legal_basis(policy: PolicyV2, mode: LintMode) -> Iterator[Lint]:
    """E1002: empty legal_basis (error in strict mode, warning in relaxed mode)."""
    if not policy.legal_basis:
        level: LintLevel = "error" if mode == "strict" else "warning"
        yield Lint("E1002", level, "legal_basis is empty: name the law the policy implements")


def _lint_description(policy: PolicyV2) -> Iterator[Lint]:
    """W1002: empty description."""
    if not policy.description.strip():
        yield Lint("W1002", "warning", "description is empty")


def _lint_duplicate_ids(policy: PolicyV2) -> Iterator[Lint]:
    """E1003: a rule id seen before."""
    first: dict[str, int] = {}
    for i, rule in enumerate(policy.rules):
        if rule.id in first:
            msg = f"rules[{i}].id: rule id {rule.id!r} is already used by rules[{first[rule.id]}]"
            yield Lint("E1003", "error", msg, rule.id)
        else:
            first[rule.id] = i


def _lint_ops(policy: PolicyV2) -> Iterator[Lint]:
    """E2001: an op outside non_membership, eq, range_min."""
    for i, rule in enumerate(policy.rules):
        if rule.op not in KNOWN_OPS:
            msg = (
                f"rules[{i}].op: unknown op {rule.op!r} (expected non_membership, eq or range_min)"
            )
            yield Lint("E2001", "error", msg, rule.id)


def _activations(policy: PolicyV2) -> tuple[Activation, ...]:
    """The activations of the policy (none without adaptivity)."""
    return policy.adaptivity.activations if policy.adaptivity else ()


def _lint_activation_rules(policy: PolicyV2) -> Iterator[Lint]:
    """E1001: an activation names a rule id that does not exist."""
    known = {rule.id for rule in policy.rules}
    for i, activation in enumerate(_activations(policy)):
        for j, rid in enumerate(activation.rules):
            if rid not in known:
                msg = f"adaptivity.activations[{i}].rules[{j}]: no rule has id {rid!r}"
                yield Lint("E1001", "error", msg, rid)


def _predicate_var_refs(predicate: Predicate, path: str) -> Iterator[tuple[str, str]]:
    """(path, variable name) for each variable a predicate expression names."""
    expr = predicate.expr
    if isinstance(expr, str):
        yield path, expr
    elif isinstance(expr, dict) and isinstance(expr.get("args"), list):
        args = expr["args"]
        assert isinstance(args, list)
        for k, arg in enumerate(args):
            name = operand_var_name(arg)
            if name is not None:
                yield f"{path}.args[{k}]", name


def _lint_variables(policy: PolicyV2) -> Iterator[Lint]:
    """E2003: a variable operand names neither an input nor a built-in variable."""
    known = policy.input_names | BUILTIN_VARIABLES
    unknown = "is neither a declared input nor a built-in variable"
    for i, rule in enumerate(policy.rules):
        for side, operand in (("lhs", rule.lhs), ("rhs", rule.rhs)):
            name = rule_var_name(operand)
            if name is not None and name not in known:
                msg = f"rules[{i}].{side}: variable {name!r} {unknown}"
                yield Lint("E2003", "error", msg, rule.id)
    predicates = policy.adaptivity.predicates if policy.adaptivity else ()
    for i, predicate in enumerate(predicates):
        for path, name in _predicate_var_refs(predicate, f"adaptivity.predicates[{i}].expr"):
            if name not in known:
                yield Lint("E2003", "error", f"{path}: variable {name!r} {unknown}")


def _lint_activation_predicates(policy: PolicyV2) -> Iterator[Lint]:
    """E1004: an activation's `when` names no predicate."""
    predicates = policy.adaptivity.predicates if policy.adaptivity else ()
    known = {p.id for p in predicates}
    for i, activation in enumerate(_activations(policy)):
        if activation.when not in known:
            msg = f"adaptivity.activations[{i}].when: no predicate has id {activation.when!r}"
            yield Lint("E1004", "error", msg)


def lint_policy(policy: PolicyV2, mode: LintMode) -> list[Lint]:
    """All lints in the contract's table order: E1002 W1002 E1003 E2001 E1001 E2003 E1004."""
    checked = require_lint_mode(mode)
    return [
        *_lint_legal_basis(policy, checked),
        *_lint_description(policy),
        *_lint_duplicate_ids(policy),
        *_lint_ops(policy),
        *_lint_activation_rules(policy),
        *_lint_variables(policy),
        *_lint_activation_predicates(policy),
    ]
