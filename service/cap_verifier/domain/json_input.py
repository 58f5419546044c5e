"""Reading untrusted JSON input: JSON paths for messages, type checks and plain-JSON copies.

Every check raises a domain error whose detail starts with the JSON path of the value:
InvalidShape (422) for a wrong type or shape, BadRequest (400) for a malformed value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping

from cap_verifier.domain.encoding import JsonValue
from cap_verifier.domain.errors import BadRequest, InvalidShape

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

MAX_JSON_DEPTH = 64
MAX_JSON_NODES = 200_000


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


def require_non_empty_str(value: object, path: str) -> str:
    """A non-empty string, else InvalidShape."""
    text = require_str(value, path)
    if not text:
        raise InvalidShape(f"{path}: must not be empty")
    return text


def require_matching(value: object, path: str, pattern: re.Pattern[str]) -> str:
    """A string matching `pattern` in full, else InvalidShape."""
    text = require_str(value, path)
    if pattern.fullmatch(text) is None:
        raise InvalidShape(f"{path}: must match ^{pattern.pattern}$")
    return text


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


def required_field(obj: Mapping[str, object], key: str, path: str) -> object:
    """The value of a required key; a missing key (or null) is InvalidShape."""
    value = obj.get(key)
    if value is None:
        raise InvalidShape(f"{join_path(path, key)}: required field is missing")
    return value


def optional_str(obj: Mapping[str, object], key: str, path: str) -> str | None:
    """An optional string field (null means absent)."""
    value = obj.get(key)
    return None if value is None else require_str(value, join_path(path, key))


def optional_list(obj: Mapping[str, object], key: str, path: str) -> list[object]:
    """An optional array field; absent or null is the empty list."""
    value = obj.get(key)
    return [] if value is None else require_list(value, join_path(path, key))


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
