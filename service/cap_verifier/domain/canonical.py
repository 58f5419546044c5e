"""Canonical JSON, hashing and hex helpers shared by the domain modules."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import TypeAlias

import blake3

from cap_verifier.domain.errors import BadRequest, InvalidShape

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None

SHA3_PREFIX = "sha3-256:"
HEX32_RE = re.compile(r"0x[0-9a-fA-F]{64}")
SHA3_REF_RE = re.compile(r"sha3-256:[0-9a-fA-F]{64}")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

MAX_JSON_DEPTH = 64
MAX_JSON_NODES = 200_000


def compact_json(value: object) -> str:
    """Compact JSON in the given key order: separators `,` `:`, non-ASCII written raw."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def compact_json_sorted(value: object) -> str:
    """Compact JSON with the keys of every object sorted."""
    return json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, sort_keys=True
    )


def _as_bytes(data: str | bytes) -> bytes:
    """UTF-8 bytes of `data` (bytes pass through)."""
    return data.encode("utf-8") if isinstance(data, str) else data


def sha3_hex(data: str | bytes) -> str:
    """Lower-case hex SHA3-256 (FIPS 202, not Keccak) of `data`."""
    return hashlib.sha3_256(_as_bytes(data)).hexdigest()


def sha3_ref(data: str | bytes) -> str:
    """`sha3-256:` followed by the SHA3-256 hex digest of `data`."""
    return SHA3_PREFIX + sha3_hex(data)


def blake3_hex(data: str | bytes) -> str:
    """Lower-case hex BLAKE3 (32 bytes) of `data`."""
    digest: str = blake3.blake3(_as_bytes(data)).hexdigest()
    return digest


def blake3_root(parts: Iterable[str]) -> str:
    """`0x` + BLAKE3 of the concatenation of `parts`."""
    return "0x" + blake3_hex("".join(parts))


def join_path(prefix: str, key: str) -> str:
    """JSON path of `key` inside `prefix` (`a.b`, or `a["odd key"]` for non-identifiers)."""
    if _IDENT_RE.fullmatch(key):
        return f"{prefix}.{key}" if prefix else key
    shown = key if len(key) <= 80 else key[:77] + "..."
    return f"{prefix}[{json.dumps(shown, ensure_ascii=False)}]"


def index_path(prefix: str, index: int) -> str:
    """JSON path of item `index` of the list at `prefix`."""
    return f"{prefix}[{index}]"


def where(path: str) -> str:
    """The path as shown in a message; the empty path is the request body itself."""
    return path or "request body"


def type_name(value: object) -> str:
    """JSON type name of a Python value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def shape_error(path: str, expected: str, value: object) -> InvalidShape:
    """An InvalidShape saying what was expected at `path` and which JSON type was found."""
    return InvalidShape(f"{where(path)}: expected {expected}, got {type_name(value)}")


def check_text(value: str, path: str) -> str:
    """Reject strings that cannot be encoded as UTF-8 (lone surrogates): 400."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{where(path)}: string is not valid Unicode") from None
    return value


def require_str(value: object, path: str) -> str:
    """`value` as a string, else InvalidShape."""
    if not isinstance(value, str):
        raise shape_error(path, "a string", value)
    return check_text(value, path)


def require_bool(value: object, path: str) -> bool:
    """`value` as a boolean, else InvalidShape."""
    if not isinstance(value, bool):
        raise shape_error(path, "a boolean", value)
    return value


def require_object(value: object, path: str) -> Mapping[str, object]:
    """`value` as a JSON object, else InvalidShape."""
    if not isinstance(value, Mapping):
        raise shape_error(path, "an object", value)
    return value


def require_list(value: object, path: str) -> list[object]:
    """`value` as a JSON array, else InvalidShape."""
    if not isinstance(value, list):
        raise shape_error(path, "an array", value)
    return value


def is_hex32(value: object) -> bool:
    """True when `value` is `0x` + 64 hex digits (either case)."""
    return isinstance(value, str) and HEX32_RE.fullmatch(value) is not None


def normalize_hex32(value: object, path: str) -> str:
    """A hex32 value in lower case; a non-string is 422, a malformed string 400."""
    if not isinstance(value, str):
        raise shape_error(path, "a string (0x followed by 64 hex digits)", value)
    if HEX32_RE.fullmatch(value) is None:
        raise BadRequest(f"{where(path)}: expected 0x followed by 64 hex digits")
    return value.lower()


def normalize_sha3_ref(value: object, path: str) -> str:
    """A `sha3-256:` + 64 hex value in lower case; a non-string is 422, a malformed one 400."""
    if not isinstance(value, str):
        raise shape_error(path, "a string (sha3-256: followed by 64 hex digits)", value)
    if SHA3_REF_RE.fullmatch(value) is None:
        raise BadRequest(f"{where(path)}: expected sha3-256: followed by 64 hex digits")
    return value.lower()


def sort_keys_deep(value: JsonValue) -> JsonValue:
    """A copy of `value` whose objects (at every depth) have their keys sorted."""
    if isinstance(value, dict):
        return {key: sort_keys_deep(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [sort_keys_deep(item) for item in value]
    return value


class _Budget:
    """Counts visited nodes so that alias-expanded YAML cannot blow up."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def spend(self, path: str) -> None:
        """Use one node; BadRequest once the limit is reached."""
        self.left -= 1
        if self.left < 0:
            raise BadRequest(f"{where(path)}: document has more than {MAX_JSON_NODES} values")


def to_json_value(value: object, path: str, *, budget: _Budget | None = None) -> JsonValue:
    """Validate that `value` is plain JSON and return a detached copy; otherwise 400."""
    return _copy_json(value, path, 0, budget or _Budget(MAX_JSON_NODES))


def _copy_json(value: object, path: str, depth: int, budget: _Budget) -> JsonValue:
    """Recursive worker of `to_json_value`."""
    budget.spend(path)
    if depth > MAX_JSON_DEPTH:
        raise BadRequest(f"{where(path)}: nested deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadRequest(f"{where(path)}: expected a finite number")
        return value
    if isinstance(value, str):
        return check_text(value, path)
    if isinstance(value, list):
        return [
            _copy_json(item, index_path(path, i), depth + 1, budget) for i, item in enumerate(value)
        ]
    if isinstance(value, dict):
        out: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise BadRequest(
                    f"{where(path)}: object key of type {type_name(key)} is not a string"
                )
            sub = join_path(path, check_text(key, path))
            out[key] = _copy_json(item, sub, depth + 1, budget)
        return out
    raise BadRequest(
        f"{where(path)}: value of type {type_name(value)} is not representable as JSON"
    )
