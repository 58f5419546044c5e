"""Canonical JSON: the JSON value type and the exact text that every hash covers."""

from __future__ import annotations

import json
from typing import TypeAlias

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None


def compact_json(value: object) -> str:
    """Compact JSON in the given key order: separators `,` `:`, non-ASCII written raw."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def compact_json_sorted(value: object) -> str:
    """Compact JSON with the keys of every object sorted."""
    return json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, sort_keys=True
    )


def sort_keys_deep(value: JsonValue) -> JsonValue:
    """A copy of `value` whose objects (at every depth) have their keys sorted."""
    if isinstance(value, dict):
        return {key: sort_keys_deep(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [sort_keys_deep(item) for item in value]
    return value
