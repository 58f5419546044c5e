"""The PolicyV2 model (contract 2.2): typed, immutable values and the policy hash.

A value of these types has a valid shape (see `policy_source` for how input becomes one); it
may still carry lint findings (see `lints`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

from cap_verifier.domain.digests import sha3_ref
from cap_verifier.domain.encoding import JsonValue, compact_json

KNOWN_OPS: tuple[str, ...] = ("non_membership", "eq", "range_min")
PREDICATE_FUNCS: tuple[str, ...] = ("lt", "gt", "eq")
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


def policy_v2_hash(policy: PolicyV2) -> str:
    """`sha3-256:` + SHA3-256 of the policy's canonical compact JSON."""
    return sha3_ref(compact_json(policy.to_json()))


def operand_var_name(operand: object) -> str | None:
    """The variable an IR/predicate operand names (`{"var": name}` only)."""
    if isinstance(operand, Mapping):
        name = operand.get("var")
        return name if isinstance(name, str) else None
    return None
