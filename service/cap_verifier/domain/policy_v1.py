"""The v1 LkSG policy (spec 2.1): typed parsing, canonical JSON and its `0x` SHA3 hash."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from cap_verifier.domain.digests import sha3_hex32
from cap_verifier.domain.encoding import compact_json
from cap_verifier.domain.errors import InvalidShape
from cap_verifier.domain.json_input import (
    index_path,
    join_path,
    require_bool,
    require_list,
    require_object,
    require_str,
    required_field,
    shape_error,
)

StatementRoot = Literal["sanctions_root", "jurisdiction_root"]
STATEMENT_ROOTS: tuple[StatementRoot, ...] = ("sanctions_root", "jurisdiction_root")

_RFC3339_RE = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})[Tt]"
    r"(?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?P<oh>[0-9]{2}):(?P<om>[0-9]{2}))"
)


@dataclass(frozen=True)
class ConstraintsV1:
    """The `constraints` object of a v1 policy."""

    require_at_least_one_ubo: bool
    supplier_count_max: int
    ubo_count_min: int | None = None
    require_statement_roots: tuple[StatementRoot, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """Canonical ordered dict; absent optionals are omitted."""
        out: dict[str, Any] = {
            "require_at_least_one_ubo": self.require_at_least_one_ubo,
            "supplier_count_max": self.supplier_count_max,
        }
        if self.ubo_count_min is not None:
            out["ubo_count_min"] = self.ubo_count_min
        if self.require_statement_roots is not None:
            out["require_statement_roots"] = list(self.require_statement_roots)
        return out


@dataclass(frozen=True)
class PolicyV1:
    """A validated v1 LkSG policy."""

    version: str
    name: str
    created_at: str
    constraints: ConstraintsV1
    notes: str = ""

    def to_json(self) -> dict[str, Any]:
        """Canonical ordered dict: version, name, created_at, constraints, notes."""
        return {
            "version": self.version,
            "name": self.name,
            "created_at": self.created_at,
            "constraints": self.constraints.to_json(),
            "notes": self.notes,
        }


def is_rfc3339(value: str) -> bool:
    """True for an RFC 3339 date-time with a valid calendar date, time and offset."""
    match = _RFC3339_RE.fullmatch(value)
    if match is None:
        return False
    try:
        date(int(match["y"]), int(match["mo"]), int(match["d"]))
    except ValueError:
        return False
    hour, minute, second = int(match["h"]), int(match["mi"]), int(match["s"])
    if hour > 23 or minute > 59 or second > 60:
        return False
    if second == 60 and (hour, minute) != (23, 59):
        return False  # a leap second is only ever 23:59:60
    return match["oh"] is None or (int(match["oh"]) <= 23 and int(match["om"]) <= 59)


def _positive_int(value: object, path: str) -> int:
    """A JSON integer > 0, also when written as a whole number (10.0), else InvalidShape."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON Schema counts 10.0 as an integer; the hash writes 10
    if isinstance(value, bool) or not isinstance(value, int):
        raise shape_error(path, "an integer", value)
    if value <= 0:
        raise InvalidShape(f"{path}: expected an integer greater than 0, got {value}")
    return value


def _statement_roots(value: object, path: str) -> tuple[StatementRoot, ...]:
    """A non-empty, duplicate-free subset of the statement root names."""
    items = require_list(value, path)
    if not items:
        raise InvalidShape(f"{path}: expected a non-empty array")
    roots: list[StatementRoot] = []
    for i, item in enumerate(items):
        sub = index_path(path, i)
        name = require_str(item, sub)
        root = next((r for r in STATEMENT_ROOTS if r == name), None)
        if root is None:
            raise InvalidShape(f"{sub}: expected one of sanctions_root, jurisdiction_root")
        if root in roots:
            raise InvalidShape(f"{sub}: {root} is listed twice")
        roots.append(root)
    return tuple(roots)


def _parse_constraints(value: object, path: str) -> ConstraintsV1:
    """Validate the `constraints` object."""
    obj = require_object(value, path)
    ubo_min = obj.get("ubo_count_min")
    roots = obj.get("require_statement_roots")
    return ConstraintsV1(
        require_at_least_one_ubo=require_bool(
            required_field(obj, "require_at_least_one_ubo", path),
            join_path(path, "require_at_least_one_ubo"),
        ),
        supplier_count_max=_positive_int(
            required_field(obj, "supplier_count_max", path), join_path(path, "supplier_count_max")
        ),
        ubo_count_min=None
        if ubo_min is None
        else _positive_int(ubo_min, join_path(path, "ubo_count_min")),
        require_statement_roots=None
        if roots is None
        else _statement_roots(roots, join_path(path, "require_statement_roots")),
    )


def parse_policy_v1(obj: object, *, path: str = "policy") -> PolicyV1:
    """Validate a v1 policy object (unknown keys ignored, null optionals treated as absent).

    Raises InvalidShape for any missing field, wrong type or invalid value; `path` prefixes
    the JSON paths in the messages ("" when the policy is the request body itself).
    """
    body = require_object(obj, path)
    version = require_str(required_field(body, "version", path), join_path(path, "version"))
    if not version.startswith("lksg.v"):
        raise InvalidShape(f"{join_path(path, 'version')}: expected a string starting with lksg.v")
    name = require_str(required_field(body, "name", path), join_path(path, "name"))
    if not name.strip():
        raise InvalidShape(f"{join_path(path, 'name')}: must not be blank")
    created_at = require_str(
        required_field(body, "created_at", path), join_path(path, "created_at")
    )
    if not is_rfc3339(created_at):
        raise InvalidShape(f"{join_path(path, 'created_at')}: expected an RFC 3339 date-time")
    notes = body.get("notes")
    return PolicyV1(
        version=version,
        name=name,
        created_at=created_at,
        constraints=_parse_constraints(
            required_field(body, "constraints", path), join_path(path, "constraints")
        ),
        notes="" if notes is None else require_str(notes, join_path(path, "notes")),
    )


def policy_v1_hash(policy: PolicyV1) -> str:
    """`0x` + SHA3-256 of the policy's canonical compact JSON."""
    return sha3_hex32(compact_json(policy.to_json()))
