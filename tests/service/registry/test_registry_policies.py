"""v1 policies, PolicyV2 policies and their source blobs, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, timedelta
from typing import Any

import pytest
from registry_samples import PolicyV2Args, hex0x, sha3, v1_args, v2_args

from cap_verifier.registry import PolicyConflict, PolicyV1Record, Registry, blob_digest

# -- v1 ------------------------------------------------------------------------------------


def test_put_v1_stores_a_new_policy(registry: Registry) -> None:
    args = v1_args()

    record, created = registry.put_policy_v1(**args)

    assert created is True
    assert uuid.UUID(record.id).version == 4
    assert record.policy_hash == args["policy_hash"]
    assert (record.name, record.version, record.description) == (
        args["name"],
        "lksg.v1",
        "Prüfung ✓",
    )
    assert record.status == "active"
    assert record.body_json == args["body_json"]
    assert record.created_at.utcoffset() == timedelta(0)
    assert record.updated_at == record.created_at


def test_put_v1_is_idempotent_by_hash(registry: Registry) -> None:
    first, created_first = registry.put_policy_v1(**v1_args())
    again, created_again = registry.put_policy_v1(**v1_args())

    assert (created_first, created_again) == (True, False)
    assert again == first
    assert registry.count_policies()["v1"] == 1


def test_get_v1_by_id_and_by_hash(registry: Registry) -> None:
    record, _ = registry.put_policy_v1(**v1_args())

    assert registry.get_policy_v1(record.id) == record
    assert registry.get_policy_v1(record.id.upper()) == record
    assert registry.get_policy_v1(record.policy_hash) == record
    assert registry.get_policy_v1("0x" + record.policy_hash[2:].upper()) == record


@pytest.mark.parametrize(
    "unknown",
    [str(uuid.UUID(int=0x4, version=4)), hex0x("never stored"), "not-a-uuid", "0x1234", ""],
)
def test_get_v1_unknown_is_none(registry: Registry, unknown: str) -> None:
    registry.put_policy_v1(**v1_args())

    assert registry.get_policy_v1(unknown) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("policy_hash", "0x1234"),
        ("policy_hash", sha3("x")),
        ("body_json", "[1]"),
        ("body_json", "{"),
    ],
)
def test_put_v1_refuses_malformed_input(registry: Registry, field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        registry.put_policy_v1(**{**v1_args(), field: value})
    assert registry.count_policies()["v1"] == 0


def test_put_v1_from_many_threads_stores_one_row(registry: Registry) -> None:
    start = threading.Barrier(8)

    def put(_: int) -> tuple[PolicyV1Record, bool]:
        start.wait(10)
        return registry.put_policy_v1(**v1_args("threads"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(put, range(8)))

    assert sum(created for _, created in results) == 1
    assert len({record for record, _ in results}) == 1
    assert registry.count_policies()["v1"] == 1


# -- blobs ---------------------------------------------------------------------------------


def test_put_blob_is_content_addressed_and_idempotent(registry: Registry) -> None:
    content = b"id: lksg.v1\nversion: '1.0'\n\x00\xff"

    digest = registry.put_blob(content, "application/yaml")
    again = registry.put_blob(content, "text/plain")

    assert digest == again == "sha3-256:" + hashlib.sha3_256(content).hexdigest()
    assert digest == blob_digest(content)
    blob = registry.get_blob(digest)
    assert blob is not None
    assert (blob.content, blob.size, blob.media_type) == (content, len(content), "application/yaml")
    assert blob.created_at.tzinfo is UTC
    assert registry.count_policies()["blobs"] == 1
    assert registry.get_blob(blob_digest(b"other")) is None


# -- PolicyV2 ------------------------------------------------------------------------------


def test_put_v2_stores_policy_ir_and_source(registry: Registry) -> None:
    args = v2_args()

    record, created = registry.put_policy_v2(**args)

    assert created is True
    assert record.policy_id == "lksg.v1"
    assert (record.version, record.policy_hash, record.ir_hash) == (
        "1.0",
        args["policy_hash"],
        args["ir_hash"],
    )
    assert record.ir_json == args["ir_json"]  # byte-exact, spacing and non-ASCII included
    assert record.source_digest == blob_digest(args["source"])
    blob = registry.get_blob(record.source_digest)
    assert blob is not None
    assert blob.content == args["source"]
    assert blob.media_type == "application/yaml"
    assert record.created_at.utcoffset() == timedelta(0)
    assert registry.get_policy_v2("lksg.v1") == record


def test_put_v2_same_hash_returns_the_stored_record(registry: Registry) -> None:
    first, _ = registry.put_policy_v2(**v2_args())
    # Same policy (same hash), source formatted differently: the stored record wins and
    # the unused new source is not kept.
    other_source = b"# reformatted\n" + v2_args()["source"]

    reformatted: PolicyV2Args = {**v2_args(), "source": other_source}
    again, created = registry.put_policy_v2(**reformatted)

    assert created is False
    assert again == first
    assert registry.get_blob(blob_digest(other_source)) is None
    assert registry.count_policies() == {"v1": 0, "v2": 1, "blobs": 1}


def test_put_v2_conflict_leaves_the_stored_row_unchanged(registry: Registry) -> None:
    stored, _ = registry.put_policy_v2(**v2_args(seed="a"))
    rival = v2_args(seed="b")

    with pytest.raises(PolicyConflict) as excinfo:
        registry.put_policy_v2(**rival)

    assert excinfo.value.policy_id == "lksg.v1"
    assert excinfo.value.stored_hash == stored.policy_hash
    assert excinfo.value.given_hash == rival["policy_hash"]
    assert "SELECT" not in str(excinfo.value).upper()
    assert registry.get_policy_v2("lksg.v1") == stored
    assert registry.get_blob(blob_digest(rival["source"])) is None
    assert registry.count_policies() == {"v1": 0, "v2": 1, "blobs": 1}


def test_get_v2_unknown_is_none(registry: Registry) -> None:
    registry.put_policy_v2(**v2_args())

    assert registry.get_policy_v2("lksg.v2") is None
    assert registry.get_policy_v2("") is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("policy_id", "Upper.Case"),
        ("policy_id", "x" * 256),
        ("policy_hash", hex0x("x")),
        ("ir_hash", "sha3-256:abc"),
        ("ir_json", "not json"),
        ("media_type", " "),
    ],
)
def test_put_v2_refuses_malformed_input(registry: Registry, field: str, value: str) -> None:
    malformed: dict[str, Any] = {**v2_args(), field: value}
    with pytest.raises(ValueError, match=field):
        registry.put_policy_v2(**malformed)
    assert registry.count_policies() == {"v1": 0, "v2": 0, "blobs": 0}


def test_count_policies(registry: Registry) -> None:
    registry.put_policy_v1(**v1_args("one"))
    registry.put_policy_v1(**v1_args("two"))
    registry.put_policy_v2(**v2_args("p.one"))
    registry.put_blob(b"loose source", "application/yaml")

    assert registry.count_policies() == {"v1": 2, "v2": 1, "blobs": 2}
