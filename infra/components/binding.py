"""Placeholders in plain manifests replaced by Pulumi outputs (a role ARN the program creates).

A string that holds a placeholder becomes ``Output.concat`` of its parts, so a placeholder may
sit inside a longer value (``<repository>@sha256:...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pulumi

Values = Mapping[str, pulumi.Input[str]]


def bind(value: Any, values: Values) -> Any:
    """``value`` with every placeholder (a key of ``values``) replaced by its value."""
    if not values:
        return value
    if isinstance(value, dict):
        return {k: bind(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [bind(v, values) for v in value]
    if isinstance(value, str):
        pattern = "(" + "|".join(re.escape(k) for k in sorted(values, key=len, reverse=True)) + ")"
        parts = [p for p in re.split(pattern, value) if p]
        if len(parts) == 1 and parts[0] not in values:
            return value
        return pulumi.Output.concat(*[values.get(p, p) for p in parts])
    return value
