"""PolicyV2 (spec 2.2): YAML/JSON input, typed parsing, lints, policy hash, IR v1 and ETags."""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.resolver import VersionedResolver

from cap_verifier.domain.canonical import (
    JsonValue,
    compact_json,
    index_path,
    join_path,
    normalize_sha3_ref,
    require_bool,
    require_list,
    require_object,
    require_str,
    sha3_ref,
    shape_error,
    sort_keys_deep,
    to_json_value,
)
from cap_verifier.domain.errors import BadRequest, InvalidShape

LintMode = Literal["strict", "relaxed"]
LintLevel = Literal["error", "warning"]
SourceFormat = Literal["yaml", "json"]

IR_VERSION = "1.0"
KNOWN_OPS: tuple[str, ...] = ("non_membership", "eq", "range_min")
PREDICATE_FUNCS: tuple[str, ...] = ("lt", "gt", "eq")
LINT_MODES: tuple[LintMode, ...] = ("strict", "relaxed")
BUILTIN_VARIABLES: frozenset[str] = frozenset(
    {
        "supplier_hashes",
        "ubo_hashes",
        "company_commitment_root",
        "sanctions_root",
        "jurisdiction_root",
        "supplier_count",
        "ubo_count",
    }
)
POLICY_ID_RE = re.compile(r"[a-z0-9._-]{1,255}")  # 255: the registry's column width
RULE_ID_RE = re.compile(r"[a-z0-9_]+")


# --------------------------------------------------------------------------- YAML input


class _Yaml12Resolver(VersionedResolver):
    """Always resolves plain scalars as YAML 1.2, whatever `%YAML` directive a document has."""

    @property
    def processing_version(self) -> Any:
        """The YAML version used for implicit tags: always 1.2."""
        return (1, 2)


class _JsonConstructor(SafeConstructor):
    """Safe constructor that keeps timestamps as the strings they were written as."""

    def construct_timestamp_text(self, node: Any) -> Any:
        """A timestamp scalar as plain text (JSON has no date type)."""
        return self.construct_scalar(node)


_JsonConstructor.add_constructor(
    "tag:yaml.org,2002:timestamp", _JsonConstructor.construct_timestamp_text
)


def _yaml_problem(exc: Exception) -> str:
    """A short, one-line description of a YAML parser error."""
    if isinstance(exc, MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where_ = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        text = f"{exc.problem}{where_}"
    else:
        text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def decode_base64_text(b64: object, *, path: str = "policy_yaml") -> str:
    """Decode standard base64 (line breaks tolerated) to UTF-8 text; anything else is 400."""
    if not isinstance(b64, str):
        raise shape_error(path, "a string (standard base64)", b64)
    try:
        raw = base64.b64decode("".join(b64.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{path}: not valid standard base64") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest(f"{path}: the decoded YAML is not valid UTF-8") from None


def load_policy_yaml(text: str, *, path: str = "policy_yaml") -> JsonValue:
    """Parse one YAML 1.2 document into plain JSON values; unparsable or non-JSON YAML is 400."""
    yaml = YAML(typ="safe", pure=True)
    yaml.Resolver = _Yaml12Resolver
    yaml.Constructor = _JsonConstructor
    try:
        document = yaml.load(text)
    except RecursionError:
        raise BadRequest(f"{path}: unparsable YAML: nested too deeply") from None
    except Exception as exc:  # the parser of untrusted text: every failure is the client's
        raise BadRequest(f"{path}: unparsable YAML: {_yaml_problem(exc)}") from None
    return to_json_value(document, path)


def decode_policy_yaml(b64: str, *, path: str = "policy_yaml") -> JsonValue:
    """Standard base64 of YAML text → plain JSON values (bad base64 or YAML → BadRequest)."""
    return load_policy_yaml(decode_base64_text(b64, path=path), path=path)


# --------------------------------------------------------------------------- typed policy


@dataclass(frozen=True)
class LegalBasis:
    """One `legal_basis` entry."""

    directive: str | None = None
    article: str | None = None

    def to_json(self) -> dict[str, JsonValue]:
        """`{directive?, article?}`."""
        out: dict[str, JsonValue] = {}
        if self.directive is not None:
            out["directive"] = self.directive
        if self.article is not None:
            out["article"] = self.article
        return out


@dataclass(frozen=True)
class InputSpec:
    """One declared input: its type and, for arrays, the item type."""

    type: str
    items: str | None = None

    def to_json(self) -> dict[str, JsonValue]:
        """`{type, items?}`."""
        out: dict[str, JsonValue] = {"type": self.type}
        if self.items is not None:
            out["items"] = self.items
        return out


@dataclass(frozen=True)
class RuleV2:
    """One rule; `lhs`/`rhs` are stored with the keys of nested objects sorted."""

    id: str
    op: str
    lhs: JsonValue
    rhs: JsonValue

    def to_json(self) -> dict[str, JsonValue]:
        """`{id, op, lhs, rhs}` as written in the policy."""
        return {
            "id": self.id,
            "op": self.op,
            "lhs": copy.deepcopy(self.lhs),
            "rhs": copy.deepcopy(self.rhs),
        }


@dataclass(frozen=True)
class Predicate:
    """A named boolean expression of the adaptivity block."""

    id: str
    expr: JsonValue

    def to_json(self) -> dict[str, JsonValue]:
        """`{id, expr}`."""
        return {"id": self.id, "expr": copy.deepcopy(self.expr)}


@dataclass(frozen=True)
class Activation:
    """Rules that become active when the predicate `when` is true."""

    when: str
    rules: tuple[str, ...]

    def to_json(self) -> dict[str, JsonValue]:
        """`{when, rules}`."""
        return {"when": self.when, "rules": list(self.rules)}


@dataclass(frozen=True)
class Adaptivity:
    """The optional adaptivity block: predicates and activations."""

    predicates: tuple[Predicate, ...] = ()
    activations: tuple[Activation, ...] = ()

    def to_json(self) -> dict[str, JsonValue]:
        """`{predicates[{id, expr}], activations[{when, rules}]}`."""
        return {
            "predicates": [p.to_json() for p in self.predicates],
            "activations": [a.to_json() for a in self.activations],
        }


@dataclass(frozen=True)
class PolicyV2:
    """A PolicyV2 of valid shape (it may still carry lint errors)."""

    id: str
    version: str
    legal_basis: tuple[LegalBasis, ...]
    description: str
    inputs: tuple[tuple[str, InputSpec], ...]
    rules: tuple[RuleV2, ...]
    adaptivity: Adaptivity | None = None

    @property
    def input_names(self) -> frozenset[str]:
        """The declared input names."""
        return frozenset(name for name, _ in self.inputs)

    def to_json(self) -> dict[str, JsonValue]:
        """The canonical ordered dict that `policy_hash` covers (unknown keys are gone)."""
        out: dict[str, JsonValue] = {
            "id": self.id,
            "version": self.version,
            "legal_basis": [lb.to_json() for lb in self.legal_basis],
            "description": self.description,
            "inputs": {name: spec.to_json() for name, spec in self.inputs},
            "rules": [rule.to_json() for rule in self.rules],
        }
        if self.adaptivity is not None:
            out["adaptivity"] = self.adaptivity.to_json()
        return out


# --------------------------------------------------------------------------- parsing


def _required(obj: Mapping[str, object], key: str, path: str) -> object:
    """The value of a required key; missing (or null) is InvalidShape."""
    value = obj.get(key)
    if value is None:
        raise InvalidShape(f"{join_path(path, key)}: required field is missing")
    return value


def _optional_str(obj: Mapping[str, object], key: str, path: str) -> str | None:
    """An optional string field (null means absent)."""
    value = obj.get(key)
    return None if value is None else require_str(value, join_path(path, key))


def _optional_list(obj: Mapping[str, object], key: str, path: str) -> list[object]:
    """An optional array field; absent or null is the empty list."""
    value = obj.get(key)
    return [] if value is None else require_list(value, join_path(path, key))


def _matching(value: object, path: str, pattern: re.Pattern[str]) -> str:
    """A string matching `pattern` in full, else InvalidShape."""
    text = require_str(value, path)
    if pattern.fullmatch(text) is None:
        raise InvalidShape(f"{path}: must match ^{pattern.pattern}$")
    return text


def _non_empty_str(value: object, path: str) -> str:
    """A non-empty string, else InvalidShape."""
    text = require_str(value, path)
    if not text:
        raise InvalidShape(f"{path}: must not be empty")
    return text


def parse_operand(value: object, path: str) -> JsonValue:
    """A rule or predicate operand: any JSON value; `{"var": name}` must be exactly that."""
    operand = to_json_value(value, path)
    if isinstance(operand, dict) and "var" in operand:
        if len(operand) != 1:
            raise InvalidShape(f'{path}: a {{"var": name}} operand must have no other keys')
        require_str(operand["var"], join_path(path, "var"))
    return sort_keys_deep(operand)


def _parse_expr(value: object, path: str) -> JsonValue:
    """A predicate expression: a bool, a variable name, or `{"func": lt|gt|eq, "args": [a, b]}`."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _non_empty_str(value, path)
    if not isinstance(value, Mapping):
        raise shape_error(path, 'a boolean, a variable name or {"func", "args"}', value)
    func_path, args_path = join_path(path, "func"), join_path(path, "args")
    func = require_str(_required(value, "func", path), func_path)
    if func not in PREDICATE_FUNCS:
        raise InvalidShape(f"{func_path}: expected one of lt, gt, eq")
    args = require_list(_required(value, "args", path), args_path)
    if len(args) != 2:
        raise InvalidShape(f"{args_path}: expected exactly 2 operands, got {len(args)}")
    operands = [parse_operand(arg, index_path(args_path, i)) for i, arg in enumerate(args)]
    return {"args": operands, "func": func}


def _parse_predicates(items: list[object], path: str) -> tuple[Predicate, ...]:
    """The predicates of an adaptivity block; a predicate id may appear only once."""
    predicates: list[Predicate] = []
    for i, item in enumerate(items):
        sub = index_path(path, i)
        obj = require_object(item, sub)
        pid = _non_empty_str(_required(obj, "id", sub), join_path(sub, "id"))
        if any(p.id == pid for p in predicates):
            raise InvalidShape(f"{join_path(sub, 'id')}: predicate id {pid!r} is defined twice")
        expr = _parse_expr(_required(obj, "expr", sub), join_path(sub, "expr"))
        predicates.append(Predicate(id=pid, expr=expr))
    return tuple(predicates)


def _parse_activation(item: object, path: str) -> Activation:
    """One activation: `when` (a predicate id) and the rule ids it activates."""
    obj = require_object(item, path)
    when = require_str(_required(obj, "when", path), join_path(path, "when"))
    rules_path = join_path(path, "rules")
    rules = require_list(_required(obj, "rules", path), rules_path)
    ids = tuple(require_str(rid, index_path(rules_path, i)) for i, rid in enumerate(rules))
    return Activation(when=when, rules=ids)


def parse_adaptivity(value: object, path: str) -> Adaptivity | None:
    """The optional adaptivity block (null or absent → None)."""
    if value is None:
        return None
    obj = require_object(value, path)
    preds_path, acts_path = join_path(path, "predicates"), join_path(path, "activations")
    predicates = _parse_predicates(_optional_list(obj, "predicates", path), preds_path)
    activations = tuple(
        _parse_activation(item, index_path(acts_path, i))
        for i, item in enumerate(_optional_list(obj, "activations", path))
    )
    return Adaptivity(predicates=predicates, activations=activations)


def _parse_legal_basis(items: list[object], path: str) -> tuple[LegalBasis, ...]:
    """`legal_basis` entries `{directive?, article?}`."""
    out: list[LegalBasis] = []
    for i, item in enumerate(items):
        sub = index_path(path, i)
        obj = require_object(item, sub)
        out.append(
            LegalBasis(
                directive=_optional_str(obj, "directive", sub),
                article=_optional_str(obj, "article", sub),
            )
        )
    return tuple(out)


def _parse_inputs(value: object, path: str) -> tuple[tuple[str, InputSpec], ...]:
    """`inputs` as (name, spec) pairs sorted by name."""
    if value is None:
        return ()
    obj = require_object(value, path)
    out: list[tuple[str, InputSpec]] = []
    for name in sorted(obj):
        sub = join_path(path, require_str(name, path))
        spec = require_object(obj[name], sub)
        kind = require_str(_required(spec, "type", sub), join_path(sub, "type"))
        out.append((name, InputSpec(type=kind, items=_optional_str(spec, "items", sub))))
    return tuple(out)


def _parse_rule(item: object, path: str) -> RuleV2:
    """One rule; the op is free text here (an unknown op is lint E2001, not a shape error)."""
    obj = require_object(item, path)
    return RuleV2(
        id=_matching(_required(obj, "id", path), join_path(path, "id"), RULE_ID_RE),
        op=require_str(_required(obj, "op", path), join_path(path, "op")),
        lhs=parse_operand(_required(obj, "lhs", path), join_path(path, "lhs")),
        rhs=parse_operand(_required(obj, "rhs", path), join_path(path, "rhs")),
    )


def _parse_rules(value: object, path: str) -> tuple[RuleV2, ...]:
    """The non-empty rule list, in its original order."""
    items = require_list(value, path)
    if not items:
        raise InvalidShape(f"{path}: expected at least one rule")
    return tuple(_parse_rule(item, index_path(path, i)) for i, item in enumerate(items))


def parse_policy_v2(obj: object, *, path: str = "policy") -> PolicyV2:
    """Validate the shape of a PolicyV2 (InvalidShape on failure; unknown keys are ignored).

    Lint-level problems (duplicate rule ids, unknown ops, dangling references) pass here
    and are reported by `lint_policy`. Non-JSON values (NaN, bad Unicode) are BadRequest.
    """
    body = require_object(obj, path)
    description = _optional_str(body, "description", path)
    return PolicyV2(
        id=_matching(_required(body, "id", path), join_path(path, "id"), POLICY_ID_RE),
        version=require_str(_required(body, "version", path), join_path(path, "version")),
        legal_basis=_parse_legal_basis(
            _optional_list(body, "legal_basis", path), join_path(path, "legal_basis")
        ),
        description=description or "",
        inputs=_parse_inputs(body.get("inputs"), join_path(path, "inputs")),
        rules=_parse_rules(_required(body, "rules", path), join_path(path, "rules")),
        adaptivity=parse_adaptivity(body.get("adaptivity"), join_path(path, "adaptivity")),
    )


def policy_v2_hash(policy: PolicyV2) -> str:
    """`sha3-256:` + SHA3-256 of the policy's canonical compact JSON."""
    return sha3_ref(compact_json(policy.to_json()))


# --------------------------------------------------------------------------- lints


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


def rule_var_name(operand: JsonValue) -> str | None:
    """The variable a rule operand names: a bare string or `{"var": name}`."""
    if isinstance(operand, str):
        return operand
    return operand_var_name(operand)


def operand_var_name(operand: object) -> str | None:
    """The variable an IR/predicate operand names (`{"var": name}` only)."""
    if isinstance(operand, Mapping):
        name = operand.get("var")
        return name if isinstance(name, str) else None
    return None


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


def require_lint_mode(value: object, path: str = "lint_mode") -> LintMode:
    """`strict` or `relaxed`, else InvalidShape."""
    text = require_str(value, path)
    for mode in LINT_MODES:
        if mode == text:
            return mode
    raise InvalidShape(f"{path}: expected strict or relaxed")


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


# --------------------------------------------------------------------------- IR v1


def compute_ir_hash(ir: Mapping[str, Any]) -> str:
    """`sha3-256:` of the compact IR written with `"ir_hash":""` as its last key."""
    body = {key: value for key, value in ir.items() if key != "ir_hash"}
    body["ir_hash"] = ""
    return sha3_ref(compact_json(body))


def _ir_operand(operand: JsonValue) -> JsonValue:
    """A rule operand in the IR: a bare string `s` becomes `{"var": s}`."""
    return {"var": operand} if isinstance(operand, str) else copy.deepcopy(operand)


def _ir_rule(rule: RuleV2) -> dict[str, JsonValue]:
    """`{id, op, lhs, rhs}` with IR operands."""
    return {
        "id": rule.id,
        "op": rule.op,
        "lhs": _ir_operand(rule.lhs),
        "rhs": _ir_operand(rule.rhs),
    }


def _assemble_ir(
    policy_id: str,
    policy_hash: str,
    rules: list[dict[str, JsonValue]],
    adaptivity: Adaptivity | None,
) -> dict[str, Any]:
    """The IR in its fixed key order, with `ir_hash` computed and written last."""
    ir: dict[str, Any] = {
        "ir_version": IR_VERSION,
        "policy_id": policy_id,
        "policy_hash": policy_hash,
        "rules": rules,
    }
    if adaptivity is not None:
        ir["adaptivity"] = adaptivity.to_json()
    ir["ir_hash"] = compute_ir_hash(ir)
    return ir


def build_ir(policy: PolicyV2) -> dict[str, Any]:
    """IR v1 of a policy: rules sorted by id (stable), bare-string operands as variables."""
    rules = [_ir_rule(rule) for rule in sorted(policy.rules, key=lambda r: r.id)]
    return _assemble_ir(policy.id, policy_v2_hash(policy), rules, policy.adaptivity)


def _parse_ir_rules(value: object, path: str) -> list[dict[str, JsonValue]]:
    """The rules of an embedded IR: known ops only, unique ids, operands kept as given."""
    items = require_list(value, path)
    if not items:
        raise InvalidShape(f"{path}: expected at least one rule")
    rules: list[dict[str, JsonValue]] = []
    for i, item in enumerate(items):
        sub = index_path(path, i)
        rule = _parse_rule(item, sub)
        if rule.op not in KNOWN_OPS:
            raise InvalidShape(f"{join_path(sub, 'op')}: expected one of {', '.join(KNOWN_OPS)}")
        if any(r["id"] == rule.id for r in rules):
            raise InvalidShape(f"{join_path(sub, 'id')}: rule id {rule.id!r} is used twice")
        rules.append(rule.to_json())
    return rules


def parse_ir(obj: object, *, path: str = "ir") -> dict[str, Any]:
    """Validate an embedded IR v1 and return it in canonical form.

    Wrong shape → InvalidShape; a malformed `policy_hash`/`ir_hash` or an `ir_hash` that
    differs from the recomputed one → BadRequest. Rules keep the order they were sent in.
    """
    body = require_object(obj, path)
    version_path = join_path(path, "ir_version")
    if require_str(_required(body, "ir_version", path), version_path) != IR_VERSION:
        raise InvalidShape(f'{version_path}: expected "{IR_VERSION}"')
    policy_id = _matching(
        _required(body, "policy_id", path), join_path(path, "policy_id"), POLICY_ID_RE
    )
    policy_hash = normalize_sha3_ref(
        _required(body, "policy_hash", path), join_path(path, "policy_hash")
    )
    rules = _parse_ir_rules(_required(body, "rules", path), join_path(path, "rules"))
    adaptivity = parse_adaptivity(body.get("adaptivity"), join_path(path, "adaptivity"))
    hash_path = join_path(path, "ir_hash")
    claimed = normalize_sha3_ref(_required(body, "ir_hash", path), hash_path)
    ir = _assemble_ir(policy_id, policy_hash, rules, adaptivity)
    if ir["ir_hash"] != claimed:
        raise BadRequest(f"{hash_path}: does not match the IR (recomputed {ir['ir_hash']})")
    return ir


# --------------------------------------------------------------------------- compile


@dataclass(frozen=True)
class CompileResult:
    """The outcome of compiling a PolicyV2."""

    policy: PolicyV2
    policy_hash: str
    ir: dict[str, Any]
    ir_hash: str
    lints: list[Lint]

    @property
    def has_errors(self) -> bool:
        """True when any lint is an error (the compile is then a 422 and nothing is stored)."""
        return any(lint.level == "error" for lint in self.lints)

    def lints_json(self) -> list[dict[str, str | None]]:
        """The lints as response objects."""
        return [lint.to_json() for lint in self.lints]


def compile_policy_v2(obj: object, mode: LintMode, *, path: str = "policy") -> CompileResult:
    """Parse (InvalidShape/BadRequest on bad input), hash, lint and compile a PolicyV2."""
    policy = parse_policy_v2(obj, path=path)
    ir = build_ir(policy)
    return CompileResult(
        policy=policy,
        policy_hash=ir["policy_hash"],
        ir=ir,
        ir_hash=ir["ir_hash"],
        lints=lint_policy(policy, mode),
    )


@dataclass(frozen=True)
class CompileV2Request:
    """The envelope of POST /policy/v2/compile, with the policy document decoded."""

    document: JsonValue
    document_path: str
    source_format: SourceFormat
    source_text: str
    lint_mode: LintMode
    persist: bool

    def compile(self) -> CompileResult:
        """Compile the decoded document with the requested lint mode."""
        return compile_policy_v2(self.document, self.lint_mode, path=self.document_path)


def parse_compile_v2_request(obj: object) -> CompileV2Request:
    """Validate the compile envelope: exactly one of policy_yaml / policy (else 400)."""
    body = require_object(obj, "")
    has_yaml, has_json = body.get("policy_yaml") is not None, body.get("policy") is not None
    if has_yaml == has_json:
        which = "both" if has_yaml else "neither"
        raise BadRequest(
            f"request body: exactly one of policy_yaml and policy is required, got {which}"
        )
    lint_mode = body.get("lint_mode")
    persist = body.get("persist")
    mode: LintMode = "strict" if lint_mode is None else require_lint_mode(lint_mode)
    keep = False if persist is None else require_bool(persist, "persist")
    if has_yaml:
        text = decode_base64_text(body["policy_yaml"], path="policy_yaml")
        document = load_policy_yaml(text, path="policy_yaml")
        return CompileV2Request(document, "policy_yaml", "yaml", text, mode, keep)
    document = to_json_value(body["policy"], "policy")
    return CompileV2Request(document, "policy", "json", compact_json(document), mode, keep)


# --------------------------------------------------------------------------- ETags


def ir_etag(ir_hash: str) -> str:
    """The strong ETag of a stored policy: `"ir:<ir_hash>"` with the double quotes."""
    return f'"ir:{ir_hash}"'


def _opaque_tag(tag: str) -> str:
    """The opaque part of an entity tag: without `W/` and without the surrounding quotes."""
    tag = tag.strip()
    if tag.startswith("W/"):
        tag = tag[2:].lstrip()
    if len(tag) >= 2 and tag[0] == tag[-1] == '"':
        tag = tag[1:-1]
    return tag


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison of `If-None-Match` (a list, `W/` tags or `*`) against `etag`."""
    if not if_none_match:
        return False
    target = _opaque_tag(etag)
    for part in if_none_match.split(","):
        candidate = part.strip()
        if candidate == "*":
            return True
        if candidate and _opaque_tag(candidate) == target:
            return True
    return False
