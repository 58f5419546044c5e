"""IR v1 (contract 2.2): what a PolicyV2 compiles to, what /verify evaluates, and its hash.

The IR is a typed value; its canonical JSON (`IR.to_json`, compact) is the text `ir_hash` is
computed over, stored in the registry and sent to clients.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cap_verifier.domain.digests import sha3_ref
from cap_verifier.domain.encoding import JsonValue, compact_json
from cap_verifier.domain.errors import BadRequest, InvalidShape
from cap_verifier.domain.identifiers import POLICY_ID_RE, normalize_sha3_ref
from cap_verifier.domain.json_input import (
    index_path,
    join_path,
    require_list,
    require_matching,
    require_object,
    require_str,
    required_field,
)
from cap_verifier.domain.policy_model import (
    KNOWN_OPS,
    Adaptivity,
    PolicyV2,
    RuleV2,
    policy_v2_hash,
)
from cap_verifier.domain.policy_source import parse_adaptivity, parse_rule

IR_VERSION = "1.0"


@dataclass(frozen=True)
class IR:
    """An IR v1 whose `ir_hash` matches its content."""

    ir_version: str
    policy_id: str
    policy_hash: str
    rules: tuple[RuleV2, ...]
    adaptivity: Adaptivity | None
    ir_hash: str

    def to_json(self) -> dict[str, JsonValue]:
        """The IR in its fixed key order, `adaptivity` only when present, `ir_hash` last."""
        out: dict[str, JsonValue] = {
            "ir_version": self.ir_version,
            "policy_id": self.policy_id,
            "policy_hash": self.policy_hash,
            "rules": [rule.to_json() for rule in self.rules],
        }
        if self.adaptivity is not None:
            out["adaptivity"] = self.adaptivity.to_json()
        out["ir_hash"] = self.ir_hash
        return out

    def canonical_json(self) -> str:
        """The compact JSON text of the IR, as stored and as `ir_hash` covers it."""
        return compact_json(self.to_json())


def compute_ir_hash(ir: Mapping[str, Any]) -> str:
    """`sha3-256:` of the compact IR JSON written with `"ir_hash":""` as its last key."""
    body = {key: value for key, value in ir.items() if key != "ir_hash"}
    body["ir_hash"] = ""
    return sha3_ref(compact_json(body))


def _assemble(
    policy_id: str, policy_hash: str, rules: tuple[RuleV2, ...], adaptivity: Adaptivity | None
) -> IR:
    """The IR with its `ir_hash` computed."""
    draft = IR(IR_VERSION, policy_id, policy_hash, rules, adaptivity, ir_hash="")
    return dataclasses.replace(draft, ir_hash=compute_ir_hash(draft.to_json()))


def _ir_operand(operand: JsonValue) -> JsonValue:
    """A rule operand in the IR: a bare string `s` becomes `{"var": s}`."""
    return {"var": operand} if isinstance(operand, str) else copy.deepcopy(operand)


def build_ir(policy: PolicyV2) -> IR:
    """IR v1 of a policy: rules sorted by id (stable), bare-string operands as variables."""
    rules = tuple(
        dataclasses.replace(rule, lhs=_ir_operand(rule.lhs), rhs=_ir_operand(rule.rhs))
        for rule in sorted(policy.rules, key=lambda r: r.id)
    )
    return _assemble(policy.id, policy_v2_hash(policy), rules, policy.adaptivity)


def _parse_ir_rules(value: object, path: str) -> tuple[RuleV2, ...]:
    """The rules of an embedded IR: known ops only, unique ids, operands kept as given."""
    items = require_list(value, path)
    if not items:
        raise InvalidShape(f"{path}: expected at least one rule")
    rules: list[RuleV2] = []
    for i, item in enumerate(items):
        sub = index_path(path, i)
        rule = parse_rule(item, sub)
        if rule.op not in KNOWN_OPS:
            raise InvalidShape(f"{join_path(sub, 'op')}: expected one of {', '.join(KNOWN_OPS)}")
        if any(r.id == rule.id for r in rules):
            raise InvalidShape(f"{join_path(sub, 'id')}: rule id {rule.id!r} is used twice")
        rules.append(rule)
    return tuple(rules)


def parse_ir(obj: object, *, path: str = "ir") -> IR:
    """Validate the JSON of an IR v1 (embedded in a request, or stored) and type it.

    Wrong shape → InvalidShape; a malformed `policy_hash`/`ir_hash` or an `ir_hash` that
    differs from the recomputed one → BadRequest. Rules keep the order they were sent in.
    """
    body = require_object(obj, path)
    version_path = join_path(path, "ir_version")
    if require_str(required_field(body, "ir_version", path), version_path) != IR_VERSION:
        raise InvalidShape(f'{version_path}: expected "{IR_VERSION}"')
    policy_id = require_matching(
        required_field(body, "policy_id", path), join_path(path, "policy_id"), POLICY_ID_RE
    )
    policy_hash = normalize_sha3_ref(
        required_field(body, "policy_hash", path), join_path(path, "policy_hash")
    )
    rules = _parse_ir_rules(required_field(body, "rules", path), join_path(path, "rules"))
    adaptivity = parse_adaptivity(body.get("adaptivity"), join_path(path, "adaptivity"))
    hash_path = join_path(path, "ir_hash")
    claimed = normalize_sha3_ref(required_field(body, "ir_hash", path), hash_path)
    ir = _assemble(policy_id, policy_hash, rules, adaptivity)
    if ir.ir_hash != claimed:
        raise BadRequest(f"{hash_path}: does not match the IR (recomputed {ir.ir_hash})")
    return ir
