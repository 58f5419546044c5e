"""Immutable values returned by and given to the registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "VERDICTS",
    "AuditRecord",
    "BlobRecord",
    "PolicyV1Record",
    "PolicyV2Record",
    "utc_now",
]

VERDICTS = frozenset({"OK", "WARN", "FAIL"})


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PolicyV1Record:
    """A stored v1 LkSG policy: its metadata and its canonical JSON body."""

    id: str
    policy_hash: str
    name: str
    version: str
    description: str
    status: str
    body_json: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PolicyV2Record:
    """A stored PolicyV2: its hashes, its canonical IR text and the digest of its source."""

    policy_id: str
    version: str
    policy_hash: str
    ir_hash: str
    ir_json: str
    source_digest: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class BlobRecord:
    """A content-addressed policy source (``digest`` = ``sha3-256:`` + hex of ``content``)."""

    digest: str
    media_type: str
    content: bytes
    size: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One verification, as the audit table keeps it: hashes and verdict, never the context.

    ``id`` is None until the record is stored; ``created_at`` defaults to now (UTC).
    """

    request_id: str
    client_id: str
    policy_id: str | None
    policy_hash: str
    ir_hash: str
    verdict: str
    manifest_hash: str
    proof_hash: str
    created_at: datetime = field(default_factory=utc_now)
    id: int | None = None

    def __post_init__(self) -> None:
        """Refuse a verdict outside OK/WARN/FAIL and a naive timestamp."""
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {sorted(VERDICTS)}, not {self.verdict!r}")
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
