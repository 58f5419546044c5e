"""The verification audit table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from registry_samples import audit

from cap_verifier.registry import AuditRecord, Registry


def test_record_and_list_verifications(registry: Registry) -> None:
    record = audit("one", verdict="WARN", policy_id=None)

    registry.record_verification(record)
    (stored,) = registry.list_verifications()

    assert stored.id is not None
    assert stored == AuditRecord(
        request_id="req-one",
        client_id="client-a",
        policy_id=None,
        policy_hash=record.policy_hash,
        ir_hash=record.ir_hash,
        verdict="WARN",
        manifest_hash=record.manifest_hash,
        proof_hash=record.proof_hash,
        created_at=record.created_at,
        id=stored.id,
    )
    assert stored.created_at.tzinfo is UTC


def test_list_verifications_newest_first_with_limit(registry: Registry) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i, verdict in enumerate(["OK", "WARN", "FAIL", "OK"]):
        fields = {
            **_fields(audit(str(i), verdict=verdict)),
            "created_at": base + timedelta(minutes=i),
        }
        registry.record_verification(AuditRecord(**fields))

    newest = registry.list_verifications(limit=3)

    assert [r.request_id for r in newest] == ["req-3", "req-2", "req-1"]
    assert [r.verdict for r in newest] == ["OK", "FAIL", "WARN"]
    assert len(registry.list_verifications()) == 4


def test_timestamps_in_other_zones_are_stored_as_utc(registry: Registry) -> None:
    cet = datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=1)))
    registry.record_verification(AuditRecord(**{**_fields(audit("tz")), "created_at": cet}))

    (stored,) = registry.list_verifications()

    assert stored.created_at == datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    assert stored.created_at.tzinfo is UTC


@pytest.mark.parametrize("limit", [0, -1, 10_001])
def test_list_verifications_refuses_a_bad_limit(registry: Registry, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        registry.list_verifications(limit=limit)


def test_audit_record_refuses_unknown_verdict_and_naive_time() -> None:
    with pytest.raises(ValueError, match="verdict"):
        audit("x", verdict="MAYBE")
    with pytest.raises(ValueError, match="timezone"):
        AuditRecord(**{**_fields(audit("x")), "created_at": datetime(2026, 1, 1)})


def _fields(record: AuditRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}
