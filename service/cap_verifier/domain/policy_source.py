"""PolicyV2 input (contract 2.2): base64 YAML 1.2 or JSON, decoded into a typed `PolicyV2`.

Bad base64, unparsable YAML or non-JSON values are BadRequest (400); a wrong shape is
InvalidShape (422). Unknown keys are ignored. Lint-level problems (duplicate rule ids, unknown
ops, dangling references) pass here and are reported by `lints`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.resolver import VersionedResolver

from cap_verifier.domain.encoding import JsonValue, sort_keys_deep
from cap_verifier.domain.errors import BadRequest, InvalidShape
from cap_verifier.domain.identifiers import POLICY_ID_RE, RULE_ID_RE
from cap_verifier.domain.json_input import (
    index_path,
    join_path,
    optional_list,
    optional_str,
    require_list,
    require_matching,
    require_non_empty_str,
    require_object,
    require_str,
    required_field,
    shape_error,
    to_json_value,
)
from cap_verifier.domain.policy_model import (
    PREDICATE_FUNCS,
    Activation,
    Adaptivity,
    InputSpec,
    LegalBasis,
    PolicyV2,
    Predicate,
    RuleV2,
)

# --------------------------------------------------------------------------- YAML and base64


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
        return require_non_empty_str(value, path)
    if not isinstance(value, Mapping):
        raise shape_error(path, 'a boolean, a variable name or {"func", "args"}', value)
    func_path, args_path = join_path(path, "func"), join_path(path, "args")
    func = require_str(required_field(value, "func", path), func_path)
    if func not in PREDICATE_FUNCS:
        raise InvalidShape(f"{func_path}: expected one of lt, gt, eq")
    args = require_list(required_field(value, "args", path), args_path)
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
        pid = require_non_empty_str(required_field(obj, "id", sub), join_path(sub, "id"))
        if any(p.id == pid for p in predicates):
            raise InvalidShape(f"{join_path(sub, 'id')}: predicate id {pid!r} is defined twice")
        expr = _parse_expr(required_field(obj, "expr", sub), join_path(sub, "expr"))
        predicates.append(Predicate(id=pid, expr=expr))
    return tuple(predicates)


def _parse_activation(item: object, path: str) -> Activation:
    """One activation: `when` (a predicate id) and the rule ids it activates."""
    obj = require_object(item, path)
    when = require_str(required_field(obj, "when", path), join_path(path, "when"))
    rules_path = join_path(path, "rules")
    rules = require_list(required_field(obj, "rules", path), rules_path)
    ids = tuple(require_str(rid, index_path(rules_path, i)) for i, rid in enumerate(rules))
    return Activation(when=when, rules=ids)


def parse_adaptivity(value: object, path: str) -> Adaptivity | None:
    """The optional adaptivity block (null or absent → None)."""
    if value is None:
        return None
    obj = require_object(value, path)
    preds_path, acts_path = join_path(path, "predicates"), join_path(path, "activations")
    predicates = _parse_predicates(optional_list(obj, "predicates", path), preds_path)
    activations = tuple(
        _parse_activation(item, index_path(acts_path, i))
        for i, item in enumerate(optional_list(obj, "activations", path))
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
                directive=optional_str(obj, "directive", sub),
                article=optional_str(obj, "article", sub),
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
        kind = require_str(required_field(spec, "type", sub), join_path(sub, "type"))
        out.append((name, InputSpec(type=kind, items=optional_str(spec, "items", sub))))
    return tuple(out)


def parse_rule(item: object, path: str) -> RuleV2:
    """One rule; the op is free text here (an unknown op is lint E2001, not a shape error)."""
    obj = require_object(item, path)
    return RuleV2(
        id=require_matching(required_field(obj, "id", path), join_path(path, "id"), RULE_ID_RE),
        op=require_str(required_field(obj, "op", path), join_path(path, "op")),
        lhs=parse_operand(required_field(obj, "lhs", path), join_path(path, "lhs")),
        rhs=parse_operand(required_field(obj, "rhs", path), join_path(path, "rhs")),
    )


def _parse_rules(value: object, path: str) -> tuple[RuleV2, ...]:
    """The non-empty rule list, in its original order."""
    items = require_list(value, path)
    if not items:
        raise InvalidShape(f"{path}: expected at least one rule")
    return tuple(parse_rule(item, index_path(path, i)) for i, item in enumerate(items))


def parse_policy_v2(obj: object, *, path: str = "policy") -> PolicyV2:
    """Validate the shape of a PolicyV2 (InvalidShape on failure; unknown keys are ignored).

    Lint-level problems (duplicate rule ids, unknown ops, dangling references) pass here
    and are reported by `lint_policy`. Non-JSON values (NaN, bad Unicode) are BadRequest.
    """
    body = require_object(obj, path)
    description = optional_str(body, "description", path)
    return PolicyV2(
        id=require_matching(required_field(body, "id", path), join_path(path, "id"), POLICY_ID_RE),
        version=require_str(required_field(body, "version", path), join_path(path, "version")),
        legal_basis=_parse_legal_basis(
            optional_list(body, "legal_basis", path), join_path(path, "legal_basis")
        ),
        description=description or "",
        inputs=_parse_inputs(body.get("inputs"), join_path(path, "inputs")),
        rules=_parse_rules(required_field(body, "rules", path), join_path(path, "rules")),
        adaptivity=parse_adaptivity(body.get("adaptivity"), join_path(path, "adaptivity")),
    )
