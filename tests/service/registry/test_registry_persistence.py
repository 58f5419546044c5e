"""A restart (a new Registry on the same URL) keeps everything."""

from __future__ import annotations

from collections.abc import Callable

from registry_samples import audit, v1_args, v2_args

from cap_verifier.registry import Registry


def test_restart_keeps_policies_blobs_and_audit(
    registry_url: str, open_registry: Callable[..., Registry]
) -> None:
    before = open_registry(registry_url)
    before.migrate()
    v1, _ = before.put_policy_v1(**v1_args())
    v2, _ = before.put_policy_v2(**v2_args())
    loose = before.put_blob(b"a loose source", "text/plain")
    before.record_verification(audit("restart"))
    (recorded,) = before.list_verifications()
    before.close()

    after = open_registry(registry_url)
    after.migrate()

    assert after.current_revision() == Registry.head_revision()
    assert after.get_policy_v1(v1.id) == v1
    assert after.get_policy_v1(v1.policy_hash) == v1
    assert after.get_policy_v2(v2.policy_id) == v2
    source = after.get_blob(v2.source_digest)
    assert source is not None
    assert source.content == v2_args()["source"]
    loose_blob = after.get_blob(loose)
    assert loose_blob is not None
    assert loose_blob.content == b"a loose source"
    assert after.list_verifications() == [recorded]
    assert after.count_policies() == {"v1": 1, "v2": 1, "blobs": 2}
    # Idempotency holds across the restart too.
    assert after.put_policy_v1(**v1_args()) == (v1, False)
    assert after.put_policy_v2(**v2_args()) == (v2, False)


def test_in_memory_sqlite_serves_one_process(open_registry: Callable[..., Registry]) -> None:
    registry = open_registry("sqlite://")
    registry.migrate()

    record, created = registry.put_policy_v1(**v1_args())

    assert created is True
    assert registry.get_policy_v1(record.id) == record
    assert registry.current_revision() == Registry.head_revision()
