"""Times of the backup library: RFC 3339 UTC in manifests, ``YYYYmmddTHHMMSSZ`` in names."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

from cap_ops.backup.errors import BackupError

__all__ = ["STAMP_RE", "parse_rfc3339", "parse_stamp", "rfc3339", "stamp", "utc", "utc_now"]

STAMP_RE: Final = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")
"""A UTC timestamp as directory and database names carry it: ``20260101T020000Z``."""

_STAMP_FORMAT: Final = "%Y%m%dT%H%M%SZ"
_RFC3339_RE: Final = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z$"
)


def utc_now() -> datetime:
    """Now, timezone-aware UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0)


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is refused (its zone would be a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise BackupError(f"time {moment.isoformat()} has no time zone (give an aware datetime)")
    return moment.astimezone(UTC)


def rfc3339(moment: datetime) -> str:
    """``2026-01-01T02:00:00Z``: RFC 3339, UTC, to the second."""
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime:
    """The UTC time of ``2026-01-01T02:00:00Z`` (fraction allowed); ValueError otherwise."""
    if not _RFC3339_RE.fullmatch(text):
        raise ValueError(f"expected an RFC 3339 UTC time like 2026-01-01T02:00:00Z, got {text!r}")
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def stamp(moment: datetime) -> str:
    """``20260101T020000Z``: the name form of a UTC time."""
    return utc(moment).strftime(_STAMP_FORMAT)


def parse_stamp(text: str) -> datetime | None:
    """The UTC time of a name stamp, or None when ``text`` is not one."""
    if not STAMP_RE.fullmatch(text):
        return None
    try:
        return datetime.strptime(text, _STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:  # 20261399T…: the shape of a stamp, not a date
        return None
