"""Durations as people read them in alert descriptions and dashboards."""

from __future__ import annotations


def human_seconds(value: float) -> str:
    """600 -> 10m, 3600 -> 1h, 0.5 -> 500ms."""
    if value < 1:
        return f"{value * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value % size == 0:
            return f"{value / size:g}{unit}"
    return f"{value:g}s"
