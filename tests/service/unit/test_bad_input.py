"""Bad input: BadRequest (400) for malformed values, InvalidShape (422) for wrong shapes."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from typing import Any

import pytest

from cap_verifier.domain import (
    BadRequest,
    DomainError,
    InvalidShape,
    blake3_hex,
    compile_policy_v2,
    decode_policy_yaml,
    parse_compile_v2_request,
    parse_context,
    parse_ir,
    parse_policy_v1,
    parse_policy_v2,
    parse_verify_request,
)

H1, H2 = "0x" + "1" * 64, "0x" + "2" * 64

V1: dict[str, Any] = {
    "version": "lksg.v1",
    "name": "Demo",
    "created_at": "2025-10-25T09:00:00Z",
    "constraints": {"require_at_least_one_ubo": True, "supplier_count_max": 10},
}
V2: dict[str, Any] = {
    "id": "lksg.v1",
    "version": "1.0",
    "legal_basis": [{"directive": "LkSG"}],
    "description": "d",
    "inputs": {"supplier_hashes": {"type": "array", "items": "hex"}},
    "rules": [
        {
            "id": "no_sanctions",
            "op": "non_membership",
            "lhs": "supplier_hashes",
            "rhs": "sanctions_root",
        }
    ],
    "adaptivity": {
        "predicates": [{"id": "p", "expr": True}],
        "activations": [{"when": "p", "rules": ["no_sanctions"]}],
    },
}
CONTEXT: dict[str, Any] = {"supplier_hashes": [H1, H2]}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def edit(base: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A deep copy of `base` with the value at `path` replaced (`...` deletes the key)."""
    doc = copy.deepcopy(base)
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


def v1(path: tuple[Any, ...], value: Any) -> Callable[[], object]:
    return lambda: parse_policy_v1(edit(V1, path, value))


def v2(path: tuple[Any, ...], value: Any) -> Callable[[], object]:
    return lambda: parse_policy_v2(edit(V2, path, value))


def context(path: tuple[Any, ...], value: Any) -> Callable[[], object]:
    return lambda: parse_context(edit(CONTEXT, path, value))


def valid_ir() -> dict[str, Any]:
    return compile_policy_v2(V2, "strict").ir.to_json()


def ir(path: tuple[Any, ...], value: Any) -> Callable[[], object]:
    return lambda: parse_ir(edit(valid_ir(), path, value))


def request(body: dict[str, Any]) -> Callable[[], object]:
    return lambda: parse_verify_request(body)


def root_of(entries: list[str]) -> str:
    return "0x" + blake3_hex("".join(entries))


BAD_REQUEST = [
    pytest.param(lambda: decode_policy_yaml("not base64!"), "policy_yaml", id="base64-chars"),
    pytest.param(lambda: decode_policy_yaml("YQ"), "policy_yaml", id="base64-padding"),
    pytest.param(lambda: decode_policy_yaml(b64("a: [\n")), "policy_yaml", id="yaml-unclosed"),
    pytest.param(lambda: decode_policy_yaml(b64("a: 1\na: 2\n")), "policy_yaml", id="yaml-dup-key"),
    pytest.param(
        lambda: decode_policy_yaml(b64("--- 1\n--- 2\n")), "policy_yaml", id="yaml-2-docs"
    ),
    pytest.param(
        lambda: decode_policy_yaml(b64("a: !!binary aGk=\n")), "policy_yaml.a", id="yaml-binary"
    ),
    pytest.param(lambda: decode_policy_yaml(b64("a: .inf\n")), "policy_yaml.a", id="yaml-inf"),
    pytest.param(
        lambda: decode_policy_yaml(base64.b64encode(b"\xff\xfe").decode()),
        "policy_yaml",
        id="not-utf8",
    ),
    pytest.param(
        context(("supplier_hashes", 1), "0x123"), "context.supplier_hashes[1]", id="hex-short"
    ),
    pytest.param(
        context(("supplier_hashes", 0), "1" * 66), "context.supplier_hashes[0]", id="hex-no-0x"
    ),
    pytest.param(
        context(("supplier_hashes", 0), "0x" + "g" * 64), "context.supplier_hashes[0]", id="hex-g"
    ),
    pytest.param(
        context(("supplier_hashes", 0), H1 + "\n"), "context.supplier_hashes[0]", id="hex-newline"
    ),
    pytest.param(
        context(("supplier_hashes", 0), H1 + "00"), "context.supplier_hashes[0]", id="hex-long"
    ),
    pytest.param(context(("ubo_hashes",), ["0x"]), "context.ubo_hashes[0]", id="ubo-hex"),
    pytest.param(context(("sanctions_root",), "0xzz"), "context.sanctions_root", id="root-hex"),
    pytest.param(
        context(("company_commitment_root",), "sha3-256:" + "1" * 64),
        "context.company_commitment_root",
        id="company-root-hex",
    ),
    pytest.param(
        context(("lists",), {"0xnope": []}), 'context.lists["0xnope"]', id="list-root-hex"
    ),
    pytest.param(
        context(("lists",), {root_of([H1]): [H1, "0x1"]}),
        f'context.lists["{root_of([H1])}"][1]',
        id="list-entry-hex",
    ),
    pytest.param(
        context(("lists",), {root_of([H1]): [H1, H2]}),
        f'context.lists["{root_of([H1])}"]',
        id="list-root-mismatch",
    ),
    pytest.param(
        context(("lists",), {root_of([H1]): [H1], "0x" + root_of([H1])[2:].upper(): [H1]}),
        f'context.lists["0x{root_of([H1])[2:].upper()}"]',
        id="list-root-twice",
    ),
    pytest.param(context(("supplier_hashes",), ...), "context", id="none-of-three"),
    pytest.param(context(("variables",), {"x": float("nan")}), "context.variables.x", id="nan"),
    pytest.param(request({"context": CONTEXT}), "request body", id="neither-id-nor-ir"),
    pytest.param(
        request({"policy_id": "lksg.v1", "ir": {}, "context": CONTEXT}), "request body", id="both"
    ),
    pytest.param(ir(("ir_hash",), "sha3-256:" + "0" * 64), "ir.ir_hash", id="ir-hash-mismatch"),
    pytest.param(ir(("ir_hash",), "0x" + "0" * 64), "ir.ir_hash", id="ir-hash-format"),
    pytest.param(
        ir(("policy_hash",), "sha3-256:abc"), "ir.policy_hash", id="ir-policy-hash-format"
    ),
    pytest.param(
        ir(("rules", 0, "rhs"), {"var": "jurisdiction_root"}), "ir.ir_hash", id="ir-tampered"
    ),
    pytest.param(
        lambda: parse_verify_request(
            {"ir": edit(valid_ir(), ("policy_id",), "other"), "context": CONTEXT}
        ),
        "ir.ir_hash",
        id="verify-ir-tampered",
    ),
    pytest.param(v2(("rules", 0, "rhs"), float("inf")), "policy.rules[0].rhs", id="operand-inf"),
    pytest.param(v2(("description",), "\ud800"), "policy.description", id="lone-surrogate"),
    pytest.param(
        lambda: parse_compile_v2_request({"policy": V2, "policy_yaml": b64("id: x")}),
        "request body",
        id="compile-both",
    ),
    pytest.param(lambda: parse_compile_v2_request({}), "request body", id="compile-neither"),
]


@pytest.mark.parametrize(("call", "path"), BAD_REQUEST)
def test_bad_request(call: Callable[[], object], path: str) -> None:
    with pytest.raises(BadRequest) as info:
        call()
    assert info.value.detail.startswith(path + ":"), info.value.detail
    assert (info.value.status, info.value.title) == (400, "Bad Request")


INVALID_SHAPE = [
    # v1 policy
    pytest.param(lambda: parse_policy_v1([]), "policy", id="v1-not-object"),
    pytest.param(v1(("version",), ...), "policy.version", id="v1-version-missing"),
    pytest.param(v1(("version",), "v1"), "policy.version", id="v1-version-prefix"),
    pytest.param(v1(("version",), 1), "policy.version", id="v1-version-type"),
    pytest.param(v1(("name",), "  "), "policy.name", id="v1-name-blank"),
    pytest.param(v1(("created_at",), "2025-10-25"), "policy.created_at", id="v1-date-only"),
    pytest.param(v1(("created_at",), "2025-02-30T00:00:00Z"), "policy.created_at", id="v1-bad-day"),
    pytest.param(
        v1(("created_at",), "2025-10-25T09:00:00"), "policy.created_at", id="v1-no-offset"
    ),
    pytest.param(v1(("constraints",), ...), "policy.constraints", id="v1-constraints-missing"),
    pytest.param(
        v1(("constraints", "require_at_least_one_ubo"), "yes"),
        "policy.constraints.require_at_least_one_ubo",
        id="v1-ubo-flag-type",
    ),
    pytest.param(
        v1(("constraints", "supplier_count_max"), ...),
        "policy.constraints.supplier_count_max",
        id="v1-max-missing",
    ),
    pytest.param(
        v1(("constraints", "supplier_count_max"), 0),
        "policy.constraints.supplier_count_max",
        id="v1-max-zero",
    ),
    pytest.param(
        v1(("constraints", "supplier_count_max"), True),
        "policy.constraints.supplier_count_max",
        id="v1-max-bool",
    ),
    pytest.param(
        v1(("constraints", "supplier_count_max"), 2.5),
        "policy.constraints.supplier_count_max",
        id="v1-max-float",
    ),
    pytest.param(
        v1(("constraints", "ubo_count_min"), -1),
        "policy.constraints.ubo_count_min",
        id="v1-min-neg",
    ),
    pytest.param(
        v1(("constraints", "require_statement_roots"), []),
        "policy.constraints.require_statement_roots",
        id="v1-roots-empty",
    ),
    pytest.param(
        v1(("constraints", "require_statement_roots"), ["sanctions_root", "other_root"]),
        "policy.constraints.require_statement_roots[1]",
        id="v1-roots-unknown",
    ),
    pytest.param(
        v1(("constraints", "require_statement_roots"), ["sanctions_root", "sanctions_root"]),
        "policy.constraints.require_statement_roots[1]",
        id="v1-roots-duplicate",
    ),
    pytest.param(v1(("notes",), 5), "policy.notes", id="v1-notes-type"),
    # PolicyV2
    pytest.param(lambda: parse_policy_v2("id: x"), "policy", id="v2-not-object"),
    pytest.param(v2(("id",), "LkSG"), "policy.id", id="v2-id-pattern"),
    pytest.param(v2(("id",), 7), "policy.id", id="v2-id-type"),
    pytest.param(v2(("version",), 1.0), "policy.version", id="v2-version-number"),
    pytest.param(v2(("version",), ...), "policy.version", id="v2-version-missing"),
    pytest.param(
        lambda: parse_policy_v2(
            decode_policy_yaml(
                b64("id: a\nversion: 1.0\nrules: [{id: r, op: eq, lhs: 1, rhs: 1}]")
            ),
            path="policy_yaml",
        ),
        "policy_yaml.version",
        id="v2-yaml-version-float",
    ),
    pytest.param(
        v2(("legal_basis",), {"directive": "LkSG"}), "policy.legal_basis", id="v2-lb-type"
    ),
    pytest.param(
        v2(("legal_basis", 0, "article"), 3), "policy.legal_basis[0].article", id="v2-article"
    ),
    pytest.param(v2(("description",), ["x"]), "policy.description", id="v2-description-type"),
    pytest.param(v2(("inputs",), []), "policy.inputs", id="v2-inputs-type"),
    pytest.param(
        v2(("inputs", "supplier_hashes", "type"), ...),
        "policy.inputs.supplier_hashes.type",
        id="v2-input-type-missing",
    ),
    pytest.param(v2(("rules",), ...), "policy.rules", id="v2-rules-missing"),
    pytest.param(v2(("rules",), []), "policy.rules", id="v2-rules-empty"),
    pytest.param(v2(("rules", 0, "id"), "No-Sanctions"), "policy.rules[0].id", id="v2-rule-id"),
    pytest.param(v2(("rules", 0, "op"), 5), "policy.rules[0].op", id="v2-op-type"),
    pytest.param(v2(("rules", 0, "lhs"), ...), "policy.rules[0].lhs", id="v2-lhs-missing"),
    pytest.param(v2(("rules", 0, "lhs"), {"var": 1}), "policy.rules[0].lhs.var", id="v2-var-type"),
    pytest.param(
        v2(("rules", 0, "lhs"), {"var": "a", "x": 1}), "policy.rules[0].lhs", id="v2-var-extra"
    ),
    pytest.param(v2(("adaptivity",), []), "policy.adaptivity", id="v2-adaptivity-type"),
    pytest.param(
        v2(("adaptivity", "predicates", 0, "expr"), 5),
        "policy.adaptivity.predicates[0].expr",
        id="v2-expr-number",
    ),
    pytest.param(
        v2(("adaptivity", "predicates", 0, "expr"), {"func": "ne", "args": [1, 2]}),
        "policy.adaptivity.predicates[0].expr.func",
        id="v2-func-enum",
    ),
    pytest.param(
        v2(("adaptivity", "predicates", 0, "expr"), {"func": "lt", "args": [1, 2, 3]}),
        "policy.adaptivity.predicates[0].expr.args",
        id="v2-args-count",
    ),
    pytest.param(
        v2(("adaptivity", "predicates"), [{"id": "p", "expr": True}, {"id": "p", "expr": False}]),
        "policy.adaptivity.predicates[1].id",
        id="v2-predicate-id-twice",
    ),
    pytest.param(
        v2(("adaptivity", "activations", 0, "rules"), "no_sanctions"),
        "policy.adaptivity.activations[0].rules",
        id="v2-activation-rules-type",
    ),
    pytest.param(
        v2(("adaptivity", "activations", 0, "when"), ...),
        "policy.adaptivity.activations[0].when",
        id="v2-activation-when-missing",
    ),
    pytest.param(lambda: compile_policy_v2(V2, "lenient"), "lint_mode", id="v2-lint-mode"),  # type: ignore[arg-type]
    pytest.param(
        lambda: parse_compile_v2_request({"policy": V2, "lint_mode": "loose"}),
        "lint_mode",
        id="compile-lint-mode",
    ),
    pytest.param(
        lambda: parse_compile_v2_request({"policy": V2, "persist": "yes"}),
        "persist",
        id="compile-persist",
    ),
    pytest.param(
        lambda: parse_compile_v2_request({"policy_yaml": 5}), "policy_yaml", id="compile-yaml-type"
    ),
    # IR
    pytest.param(ir(("ir_version",), "2.0"), "ir.ir_version", id="ir-version"),
    pytest.param(ir(("rules", 0, "op"), "contains"), "ir.rules[0].op", id="ir-op-enum"),
    pytest.param(ir(("rules",), valid_ir()["rules"] * 2), "ir.rules[1].id", id="ir-duplicate-rule"),
    pytest.param(ir(("policy_id",), "Bad Id"), "ir.policy_id", id="ir-policy-id-pattern"),
    pytest.param(ir(("ir_hash",), 5), "ir.ir_hash", id="ir-hash-type"),
    pytest.param(ir(("ir_hash",), ...), "ir.ir_hash", id="ir-hash-missing"),
    # context
    pytest.param(lambda: parse_context([H1]), "context", id="ctx-not-object"),
    pytest.param(context(("supplier_hashes",), H1), "context.supplier_hashes", id="ctx-list-type"),
    pytest.param(
        context(("supplier_hashes", 0), 1), "context.supplier_hashes[0]", id="ctx-hex-type"
    ),
    pytest.param(context(("variables",), [1]), "context.variables", id="ctx-variables-type"),
    pytest.param(
        context(("variables",), {"x": [1]}), "context.variables.x", id="ctx-variable-list"
    ),
    pytest.param(
        context(("variables",), {"x": None}), "context.variables.x", id="ctx-variable-null"
    ),
    pytest.param(
        context(("variables",), {"supplier_count": 0}),
        "context.variables.supplier_count",
        id="ctx-variable-builtin",
    ),
    pytest.param(context(("lists",), {H1: H1}), f'context.lists["{H1}"]', id="ctx-list-value"),
    # verify request
    pytest.param(lambda: parse_verify_request([]), "request body", id="req-not-object"),
    pytest.param(request({"policy_id": "lksg.v1"}), "context", id="req-context-missing"),
    pytest.param(
        request({"policy_id": "LKSG", "context": CONTEXT}), "policy_id", id="req-policy-id"
    ),
    pytest.param(
        request({"policy_id": 5, "context": CONTEXT}), "policy_id", id="req-policy-id-type"
    ),
    pytest.param(request({"ir": "x", "context": CONTEXT}), "ir", id="req-ir-type"),
    pytest.param(
        request({"policy_id": "lksg.v1", "context": CONTEXT, "backend": "zk"}),
        "backend",
        id="req-backend",
    ),
    pytest.param(
        request({"policy_id": "lksg.v1", "context": CONTEXT, "options": []}),
        "options",
        id="req-options",
    ),
    pytest.param(
        request({"policy_id": "lksg.v1", "context": CONTEXT, "options": {"adaptive": "yes"}}),
        "options.adaptive",
        id="req-adaptive",
    ),
]


@pytest.mark.parametrize(("call", "path"), INVALID_SHAPE)
def test_invalid_shape(call: Callable[[], object], path: str) -> None:
    with pytest.raises(InvalidShape) as info:
        call()
    assert info.value.detail.startswith(path + ":"), info.value.detail
    assert (info.value.status, info.value.title) == (422, "Unprocessable Content")


@pytest.mark.parametrize(
    "call", [pytest.param(case.values[0], id=case.id) for case in BAD_REQUEST + INVALID_SHAPE]
)
def test_details_are_one_line_and_never_quote_context_hashes(call: Callable[[], object]) -> None:
    with pytest.raises(DomainError) as info:
        call()
    assert "\n" not in info.value.detail
    assert str(info.value) == info.value.detail
    assert H2 not in info.value.detail


def test_lint_level_problems_are_not_shape_errors() -> None:
    doc = edit(V2, ("rules",), [V2["rules"][0], {**V2["rules"][0], "op": "unknown"}])
    result = compile_policy_v2(doc, "strict")
    assert [lint.code for lint in result.lints] == ["E1003", "E2001"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"policy_id": "lksg.v1", "context": CONTEXT}, ("policy_id", "mock", False)),
        (
            {"policy_id": "lksg.v1", "ir": None, "context": CONTEXT, "backend": None},
            ("policy_id", "mock", False),
        ),
        (
            {
                "ir": valid_ir(),
                "context": CONTEXT,
                "backend": "mock",
                "options": {"adaptive": True},
            },
            ("embedded_ir", "mock", True),
        ),
    ],
)
def test_valid_verify_requests(body: dict[str, Any], expected: tuple[str, str, bool]) -> None:
    parsed = parse_verify_request(body)
    assert (parsed.mode, parsed.backend, parsed.adaptive) == expected


def test_list_root_over_upper_case_entries_as_sent_is_accepted() -> None:
    upper = "0x" + "AB" * 32
    ctx = parse_context({**CONTEXT, "lists": {root_of([upper]): [upper]}})
    assert ctx.lists == {root_of([upper]).lower(): ("0x" + "ab" * 32,)}
