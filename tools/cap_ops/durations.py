"""Prometheus durations: parsed to seconds, and written as people read them."""

from __future__ import annotations

import re

PATTERN = r"^([0-9]+(ms|s|m|h|d|w|y))+$"
"""A Prometheus duration such as ``5m`` or ``1h30m`` (for ``msgspec.Meta(pattern=...)``)."""

_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: str) -> float:
    """Seconds of a Prometheus duration such as ``5m`` or ``1h30m``; ValueError otherwise."""
    parts = _PART.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"{duration!r} is not a Prometheus duration")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


def human_seconds(value: float) -> str:
    """600 -> 10m, 3600 -> 1h, 0.5 -> 500ms."""
    if value < 1:
        return f"{value * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value % size == 0:
            return f"{value / size:g}{unit}"
    return f"{value:g}s"
