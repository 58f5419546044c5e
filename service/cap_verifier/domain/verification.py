"""Verification (spec 3): request envelope, context, rule evaluation, hashes and response body."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from cap_verifier.domain.digests import blake3_root, sha3_hex32
from cap_verifier.domain.encoding import compact_json_sorted
from cap_verifier.domain.errors import BadRequest, InvalidShape
from cap_verifier.domain.identifiers import POLICY_ID_RE, is_hex32, normalize_hex32
from cap_verifier.domain.ir import IR, parse_ir
from cap_verifier.domain.json_input import (
    check_text,
    index_path,
    join_path,
    require_bool,
    require_list,
    require_matching,
    require_object,
    require_str,
    shape_error,
    where,
)
from cap_verifier.domain.policy_model import BUILTIN_VARIABLES, RuleV2, operand_var_name

Scalar = bool | int | float | str
RuleStatus = Literal["pass", "fail", "unknown"]
Verdict = Literal["OK", "WARN", "FAIL"]
VerifyMode = Literal["policy_id", "embedded_ir"]
BACKENDS: tuple[str, ...] = ("mock",)
ROOT_FIELDS: tuple[str, ...] = ("company_commitment_root", "sanctions_root", "jurisdiction_root")
MANIFEST_VERSION = "manifest.v1.0"
MANIFEST_POLICY_VERSION = "lksg.v1"
PROOF_VERSION = "proof.mock.v0"
_MAX_POSITIONS = 10


class _Missing:
    """Marker of a variable that the context does not provide."""


_MISSING = _Missing()


# --------------------------------------------------------------------------- context


@dataclass(frozen=True)
class Context:
    """A validated verification context; every hex value is lower case."""

    supplier_hashes: tuple[str, ...] | None = None
    ubo_hashes: tuple[str, ...] | None = None
    company_commitment_root: str | None = None
    sanctions_root: str | None = None
    jurisdiction_root: str | None = None
    variables: Mapping[str, Scalar] = field(default_factory=dict)
    lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def root(self, name: str) -> str | None:
        """One of the three optional roots by field name."""
        value: str | None = getattr(self, name)
        return value


def _hex_list(value: object, path: str) -> tuple[str, ...] | None:
    """An optional array of hex32 values, lower-cased (absent or null → None)."""
    if value is None:
        return None
    items = require_list(value, path)
    return tuple(normalize_hex32(item, index_path(path, i)) for i, item in enumerate(items))


def _optional_hex(obj: Mapping[str, object], key: str, path: str) -> str | None:
    """An optional hex32 field (absent or null → None)."""
    value = obj.get(key)
    return None if value is None else normalize_hex32(value, join_path(path, key))


def _variable(value: object, path: str) -> Scalar:
    """A context variable value: a number, a boolean or a string."""
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadRequest(f"{path}: expected a finite number")
        return value
    if isinstance(value, str):
        return check_text(value, path)
    raise shape_error(path, "a number, a boolean or a string", value)


def _parse_variables(value: object, path: str) -> dict[str, Scalar]:
    """`variables` {name: number|bool|string}; built-in variable names are reserved."""
    if value is None:
        return {}
    out: dict[str, Scalar] = {}
    for name, item in require_object(value, path).items():
        sub = join_path(path, require_str(name, path))
        if not name:
            raise InvalidShape(f"{path}: variable names must not be empty")
        if name in BUILTIN_VARIABLES:
            raise InvalidShape(f"{sub}: {name} is a built-in variable and cannot be set here")
        out[name] = _variable(item, sub)
    return out


def _list_matches(root: str, raw: list[object], entries: tuple[str, ...]) -> bool:
    """True when the root is the BLAKE3 of the entries (as sent, or lower-cased)."""
    if blake3_root(entries) == root:
        return True
    return all(isinstance(e, str) for e in raw) and blake3_root(str(e) for e in raw) == root


def _parse_lists(value: object, path: str) -> dict[str, tuple[str, ...]]:
    """`lists` {root: [entries]}; each list is accepted only when its root recomputes (else 400)."""
    if value is None:
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for key, item in require_object(value, path).items():
        sub = join_path(path, require_str(key, path))
        root = normalize_hex32(key, sub)
        raw = require_list(item, sub)
        entries = tuple(normalize_hex32(e, index_path(sub, i)) for i, e in enumerate(raw))
        if root in out:
            raise BadRequest(f"{sub}: the same root is listed twice (keys differ only in case)")
        if not _list_matches(root, raw, entries):
            raise BadRequest(
                f"{sub}: root does not match the BLAKE3 of the concatenated {len(entries)} entries"
            )
        out[root] = entries
    return out


def parse_context(obj: object, *, path: str = "context") -> Context:
    """Validate a context (spec 3.1); unknown keys are ignored, null means absent.

    Wrong types → InvalidShape; malformed hex, a list whose root does not recompute, or none
    of company_commitment_root / supplier_hashes / ubo_hashes → BadRequest.
    """
    body = require_object(obj, path)
    suppliers = _hex_list(body.get("supplier_hashes"), join_path(path, "supplier_hashes"))
    ubos = _hex_list(body.get("ubo_hashes"), join_path(path, "ubo_hashes"))
    roots = {name: _optional_hex(body, name, path) for name in ROOT_FIELDS}
    if suppliers is None and ubos is None and roots["company_commitment_root"] is None:
        raise BadRequest(
            f"{where(path)}: at least one of company_commitment_root, supplier_hashes and "
            "ubo_hashes is required"
        )
    return Context(
        supplier_hashes=suppliers,
        ubo_hashes=ubos,
        company_commitment_root=roots["company_commitment_root"],
        sanctions_root=roots["sanctions_root"],
        jurisdiction_root=roots["jurisdiction_root"],
        variables=_parse_variables(body.get("variables"), join_path(path, "variables")),
        lists=_parse_lists(body.get("lists"), join_path(path, "lists")),
    )


def context_variables(ctx: Context) -> dict[str, object]:
    """All variables of a context (3.2): the `variables` map plus the built-ins it provides.

    An absent `supplier_hashes` / `ubo_hashes` leaves both the list and its count absent.
    """
    out: dict[str, object] = dict(ctx.variables)
    if ctx.supplier_hashes is not None:
        out["supplier_hashes"] = list(ctx.supplier_hashes)
        out["supplier_count"] = len(ctx.supplier_hashes)
    if ctx.ubo_hashes is not None:
        out["ubo_hashes"] = list(ctx.ubo_hashes)
        out["ubo_count"] = len(ctx.ubo_hashes)
    for name in ROOT_FIELDS:
        root = ctx.root(name)
        if root is not None:
            out[name] = root
    return out


# --------------------------------------------------------------------------- values


def _resolve(operand: object, variables: Mapping[str, object]) -> object:
    """The value of an operand: a `{"var": name}` lookup (maybe _MISSING) or the literal."""
    name = operand_var_name(operand)
    if name is None:
        return operand
    return variables.get(name, _MISSING)


def _norm(value: str) -> str:
    """Hex32 strings compare case-insensitively; other strings as they are."""
    return value.lower() if is_hex32(value) else value


def json_equal(a: object, b: object) -> bool:
    """Type-aware equality: booleans never equal numbers, hex compares case-insensitively."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return _norm(a) == _norm(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return a is None and b is None


def _numeric(value: object) -> int | float | None:
    """A number for range comparisons: a list counts as its length; booleans are not numbers."""
    if isinstance(value, list):
        return len(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _show(value: object) -> str:
    """A short description of a value that never quotes a hash."""
    if isinstance(value, list):
        return f"{len(value)} entries"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        if is_hex32(value):
            return "a hash"
        text = value if len(value) <= 40 else value[:37] + "..."
        return json.dumps(text, ensure_ascii=False)
    return json.dumps(value)


def _label(operand: object) -> str:
    """The variable name of an operand, or a description of its literal."""
    name = operand_var_name(operand)
    return name if name is not None else f"the literal {_show(operand)}"


def _term(operand: object, value: object) -> str:
    """An operand with its value, e.g. `supplier_count (3)` or `the literal 5`."""
    name = operand_var_name(operand)
    return f"{name} ({_show(value)})" if name is not None else f"the literal {_show(value)}"


def _absent(*pairs: tuple[object, object]) -> str | None:
    """The detail for the first operand whose variable is absent, if any."""
    for operand, value in pairs:
        if value is _MISSING:
            return f"{_label(operand)} is absent from the context"
    return None


# --------------------------------------------------------------------------- rule ops

Outcome = tuple[RuleStatus, str]


def _positions(operand: object, hits: list[int]) -> str:
    """Which lhs entries matched, by position (never by value)."""
    name = operand_var_name(operand) or "lhs"
    shown = ", ".join(f"{name}[{i}]" for i in hits[:_MAX_POSITIONS])
    more = len(hits) - _MAX_POSITIONS
    return shown + (f" and {more} more" if more > 0 else "")


def _non_membership(
    lhs: object, rhs: object, variables: Mapping[str, object], lists: Mapping[str, tuple[str, ...]]
) -> Outcome:
    """Pass when no lhs element is in the list disclosed for the rhs root."""
    lhs_v, rhs_v = _resolve(lhs, variables), _resolve(rhs, variables)
    absent = _absent((rhs, rhs_v))
    if absent:
        return "unknown", absent
    if not is_hex32(rhs_v):
        return "unknown", f"{_label(rhs)} is not a root hash"
    disclosed = lists.get(str(rhs_v).lower())
    if disclosed is None:
        return "unknown", f"no list is disclosed for {_label(rhs)}"
    absent = _absent((lhs, lhs_v))
    if absent:
        return "unknown", absent
    members = [lhs_v] if isinstance(lhs_v, str) else lhs_v
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        return "unknown", f"{_label(lhs)} is not a list of hashes"
    listed = set(disclosed)
    hits = [i for i, m in enumerate(members) if _norm(str(m)) in listed]
    where_ = f"the list disclosed for {_label(rhs)} ({len(disclosed)} entries)"
    if not hits:
        return "pass", f"none of the {len(members)} entries of {_label(lhs)} is in {where_}"
    return "fail", (
        f"{len(hits)} of {len(members)} entries of {_label(lhs)} are in {where_}: "
        f"{_positions(lhs, hits)}"
    )


def _eq(lhs: object, rhs: object, variables: Mapping[str, object]) -> Outcome:
    """Pass when lhs equals rhs."""
    lhs_v, rhs_v = _resolve(lhs, variables), _resolve(rhs, variables)
    absent = _absent((lhs, lhs_v), (rhs, rhs_v))
    if absent:
        return "unknown", absent
    if json_equal(lhs_v, rhs_v):
        return "pass", f"{_term(lhs, lhs_v)} equals {_term(rhs, rhs_v)}"
    return "fail", f"{_term(lhs, lhs_v)} differs from {_term(rhs, rhs_v)}"


def _range_min(lhs: object, rhs: object, variables: Mapping[str, object]) -> Outcome:
    """Pass when lhs ≥ rhs; a list counts as its length."""
    lhs_v, rhs_v = _resolve(lhs, variables), _resolve(rhs, variables)
    absent = _absent((lhs, lhs_v), (rhs, rhs_v))
    if absent:
        return "unknown", absent
    low, high = _numeric(lhs_v), _numeric(rhs_v)
    for operand, value, number in ((lhs, lhs_v, low), (rhs, rhs_v, high)):
        if number is None:
            return "unknown", f"{_term(operand, value)} is not numeric"
    assert low is not None
    assert high is not None
    if low >= high:
        return "pass", f"{_term(lhs, lhs_v)} is at least {_term(rhs, rhs_v)}"
    return "fail", f"{_term(lhs, lhs_v)} is below the minimum {_term(rhs, rhs_v)}"


def _evaluate_rule(rule: RuleV2, variables: Mapping[str, object], ctx: Context) -> Outcome:
    """Dispatch one rule on its op."""
    op, lhs, rhs = rule.op, rule.lhs, rule.rhs
    if op == "non_membership":
        return _non_membership(lhs, rhs, variables, ctx.lists)
    if op == "eq":
        return _eq(lhs, rhs, variables)
    if op == "range_min":
        return _range_min(lhs, rhs, variables)
    return "unknown", f"op {op!r} is not supported"


# --------------------------------------------------------------------------- adaptivity


def predicate_true(expr: object, variables: Mapping[str, object]) -> bool:
    """A predicate: a bool, a variable holding true, or lt/gt/eq of two operands.

    A predicate whose variables are absent (or not numeric for lt/gt) is false.
    """
    if isinstance(expr, bool):
        return expr
    if isinstance(expr, str):
        return variables.get(expr) is True
    if not isinstance(expr, Mapping) or not isinstance(expr.get("args"), list):
        return False
    func, args = expr.get("func"), expr["args"]
    if len(args) != 2:
        return False
    a, b = (_resolve(arg, variables) for arg in args)
    if a is _MISSING or b is _MISSING:
        return False
    if func == "eq":
        return json_equal(a, b)
    x, y = _numeric(a), _numeric(b)
    if x is None or y is None:
        return False
    return (x < y) if func == "lt" else (x > y) if func == "gt" else False


def active_rule_ids(
    ir: IR, variables: Mapping[str, object], adaptive: bool
) -> frozenset[str] | None:
    """The ids of the active rules, or None when every rule is active."""
    adaptivity = ir.adaptivity
    if not adaptive or adaptivity is None:
        return None
    true = {p.id for p in adaptivity.predicates if predicate_true(p.expr, variables)}
    return frozenset(rid for act in adaptivity.activations if act.when in true for rid in act.rules)


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class RuleOutcome:
    """The result of one active rule."""

    id: str
    op: str
    status: RuleStatus
    detail: str

    def to_json(self) -> dict[str, str]:
        """`{id, op, status, detail}`."""
        return {"id": self.id, "op": self.op, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class Evaluation:
    """The verdict and the outcomes of the active rules (inactive rules are not listed)."""

    result: Verdict
    rules: tuple[RuleOutcome, ...]

    @property
    def checks_total(self) -> int:
        """Number of active rules."""
        return len(self.rules)

    @property
    def checks_passed(self) -> int:
        """Number of active rules that passed."""
        return sum(1 for rule in self.rules if rule.status == "pass")


def verdict(statuses: Iterable[RuleStatus]) -> Verdict:
    """FAIL if any rule fails, else WARN if any is unknown, else OK."""
    seen = set(statuses)
    if "fail" in seen:
        return "FAIL"
    return "WARN" if "unknown" in seen else "OK"


def evaluate(ir: IR, context: Context, adaptive: bool) -> Evaluation:
    """Evaluate the active rules of an IR against a context (spec 3.2)."""
    variables = context_variables(context)
    active = active_rule_ids(ir, variables, adaptive)
    outcomes = tuple(
        RuleOutcome(rule.id, rule.op, *_evaluate_rule(rule, variables, context))
        for rule in ir.rules
        if active is None or rule.id in active
    )
    return Evaluation(result=verdict(o.status for o in outcomes), rules=outcomes)


# --------------------------------------------------------------------------- hashes


def company_commitment_root(ctx: Context) -> str:
    """The given root, else `0x` + BLAKE3 of the supplier then UBO hash strings (lower case)."""
    if ctx.company_commitment_root is not None:
        return ctx.company_commitment_root
    return blake3_root([*(ctx.supplier_hashes or ()), *(ctx.ubo_hashes or ())])


def statement(policy_hash: str, company_root: str, context: Context) -> dict[str, str]:
    """`{policy_hash, company_commitment_root, sanctions_root?, jurisdiction_root?}`."""
    out = {"policy_hash": policy_hash, "company_commitment_root": company_root}
    if context.sanctions_root is not None:
        out["sanctions_root"] = context.sanctions_root
    if context.jurisdiction_root is not None:
        out["jurisdiction_root"] = context.jurisdiction_root
    return out


def proof_hash(stmt: Mapping[str, str]) -> str:
    """`0x` + SHA3-256 of the sorted-key compact mock proof for a statement."""
    proof = {
        "proof_data": {"mock": True, "verified": True},
        "statement": dict(stmt),
        "type": "mock",
        "version": PROOF_VERSION,
    }
    return sha3_hex32(compact_json_sorted(proof))


def rfc3339_utc(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ` of an aware datetime (ValueError for a naive one)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def manifest_hash(
    *,
    policy_id: str,
    policy_hash: str,
    company_root: str,
    context: Context,
    backend: str,
    created_at: datetime,
) -> str:
    """`0x` + SHA3-256 of the sorted-key compact manifest (absent roots are null)."""
    manifest = {
        "version": MANIFEST_VERSION,
        "created_at": rfc3339_utc(created_at),
        "company_commitment_root": company_root,
        "policy": {"name": policy_id, "version": MANIFEST_POLICY_VERSION, "hash": policy_hash},
        "sanctions_root": context.sanctions_root,
        "jurisdiction_root": context.jurisdiction_root,
        "proof": {"proof_type": backend, "status": "ok"},
    }
    return sha3_hex32(compact_json_sorted(manifest))


# --------------------------------------------------------------------------- verify


def verify(
    ir: IR,
    context: Context,
    *,
    mode: VerifyMode,
    policy_id: str | None,
    backend: str,
    adaptive: bool,
    now: datetime,
) -> dict[str, Any]:
    """Evaluate and hash: the §3.3 response body (200 whatever the verdict)."""
    evaluation = evaluate(ir, context, adaptive)
    root = company_commitment_root(context)
    stmt = statement(ir.policy_hash, root, context)
    return {
        "result": evaluation.result,
        "manifest_hash": manifest_hash(
            policy_id=ir.policy_id,
            policy_hash=ir.policy_hash,
            company_root=root,
            context=context,
            backend=backend,
            created_at=now,
        ),
        "proof_hash": proof_hash(stmt),
        "trace": {"mode": mode, "policy_id": policy_id, "backend": backend, "adaptive": adaptive},
        "report": {
            "status": evaluation.result.lower(),
            "policy_hash": ir.policy_hash,
            "ir_hash": ir.ir_hash,
            "rules": [rule.to_json() for rule in evaluation.rules],
            "checks_total": evaluation.checks_total,
            "checks_passed": evaluation.checks_passed,
        },
    }


@dataclass(frozen=True)
class VerifyRequest:
    """A validated POST /verify body: exactly one of policy_id and ir is set."""

    policy_id: str | None
    ir: IR | None
    context: Context
    backend: str = "mock"
    adaptive: bool = False

    @property
    def mode(self) -> VerifyMode:
        """`policy_id` for a stored policy, `embedded_ir` for an IR in the request."""
        return "policy_id" if self.policy_id is not None else "embedded_ir"


def _backend(value: object) -> str:
    """The proof backend; only `mock` is served."""
    if value is None:
        return "mock"
    name = require_str(value, "backend")
    if name not in BACKENDS:
        raise InvalidShape(f"backend: expected one of {', '.join(BACKENDS)}")
    return name


def _adaptive(value: object) -> bool:
    """`options.adaptive` (default false); unknown option keys are ignored."""
    if value is None:
        return False
    adaptive = require_object(value, "options").get("adaptive")
    return False if adaptive is None else require_bool(adaptive, "options.adaptive")


def parse_verify_request(obj: object) -> VerifyRequest:
    """Validate a /verify body: both or neither of policy_id / ir → 400; shape errors → 422."""
    body = require_object(obj, "")
    has_id, has_ir = body.get("policy_id") is not None, body.get("ir") is not None
    if has_id == has_ir:
        which = "both" if has_id else "neither"
        raise BadRequest(f"request body: exactly one of policy_id and ir is required, got {which}")
    if body.get("context") is None:
        raise InvalidShape("context: required field is missing")
    return VerifyRequest(
        policy_id=require_matching(body["policy_id"], "policy_id", POLICY_ID_RE)
        if has_id
        else None,
        ir=parse_ir(body["ir"], path="ir") if has_ir else None,
        context=parse_context(body["context"], path="context"),
        backend=_backend(body.get("backend")),
        adaptive=_adaptive(body.get("options")),
    )
