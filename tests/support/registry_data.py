"""Registry contents for tests: filled by the service's own code, read back row by row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData, Table, create_engine, select

from cap_verifier.domain import (
    compact_json,
    compile_policy_v2,
    load_policy_yaml,
    parse_policy_v1,
    policy_v1_hash,
)
from cap_verifier.registry import AuditRecord, Registry
from support.vectors import LKSG_YAML, V1_POLICY

TABLES = ("policies_v1", "policy_blobs", "policies_v2", "verifications")


def audit(seed: str) -> AuditRecord:
    """An audit record, as /verify writes one (hashes only)."""
    return AuditRecord(
        request_id=f"req-{seed}",
        client_id="client-a",
        policy_id="lksg.v1",
        policy_hash="sha3-256:" + "a" * 64,
        ir_hash="sha3-256:" + "b" * 64,
        verdict="OK",
        manifest_hash="0x" + "c" * 64,
        proof_hash="0x" + "d" * 64,
    )


def store_policies(registry: Registry, seed: str, count: int = 2) -> None:
    """Store v1 and PolicyV2 policies the way the API does, and audit records."""
    for i in range(count):
        policy = parse_policy_v1({**V1_POLICY, "name": f"LkSG {seed} {i}"})
        registry.put_policy_v1(
            policy_hash=policy_v1_hash(policy),
            name=policy.name,
            version=policy.version,
            description=policy.notes,
            body_json=compact_json(policy.to_json()),
        )
        document = load_policy_yaml(LKSG_YAML)
        assert isinstance(document, dict)
        document["id"] = f"lksg.{seed}-{i}"
        compiled = compile_policy_v2(document, "strict")
        registry.put_policy_v2(
            compiled.policy.id,
            version=compiled.policy.version,
            policy_hash=compiled.policy_hash,
            ir_hash=compiled.ir_hash,
            ir_json=compiled.ir.canonical_json(),
            source=compact_json(document).encode(),
            media_type="application/json",
        )
        registry.record_verification(audit(f"{seed}-{i}"))
    compiled = compile_policy_v2(load_policy_yaml(LKSG_YAML), "strict")
    registry.put_policy_v2(  # the YAML source, byte for byte (idempotent across seeds)
        compiled.policy.id,
        version=compiled.policy.version,
        policy_hash=compiled.policy_hash,
        ir_hash=compiled.ir_hash,
        ir_json=compiled.ir.canonical_json(),
        source=LKSG_YAML.encode(),
        media_type="application/yaml",
    )


def table_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every registry table (alembic_version included), in primary-key order."""
    engine = create_engine(url)
    try:
        metadata = MetaData()
        out: dict[str, list[tuple[Any, ...]]] = {}
        with engine.connect() as conn:
            for name in (*TABLES, "alembic_version"):
                table = Table(name, metadata, autoload_with=conn)
                query = select(table).order_by(*table.primary_key.columns)
                out[name] = [tuple(row) for row in conn.execute(query)]
        return out
    finally:
        engine.dispose()


def counts_of(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, int]:
    return {name: len(found) for name, found in rows.items() if name != "alembic_version"}
