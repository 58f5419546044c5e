"""Sample values for the registry tests (also imported by the spawned race workers)."""

from __future__ import annotations

import hashlib
import json
from typing import TypedDict

from cap_verifier.registry import AuditRecord


def hex0x(seed: str) -> str:
    """A deterministic ``0x`` + 64 hex value."""
    return "0x" + hashlib.sha3_256(seed.encode()).hexdigest()


def sha3(seed: str) -> str:
    """A deterministic ``sha3-256:`` + 64 hex value."""
    return "sha3-256:" + hashlib.sha3_256(seed.encode()).hexdigest()


def v1_args(seed: str = "demo") -> dict[str, str]:
    """Keyword arguments of ``put_policy_v1`` for a v1 policy named after ``seed``."""
    name = f"LkSG policy {seed}"
    body = {
        "version": "lksg.v1",
        "name": name,
        "created_at": "2025-10-25T09:00:00Z",
        "constraints": {"require_at_least_one_ubo": True, "supplier_count_max": 10},
        "notes": "Prüfung ✓",
    }
    return {
        "policy_hash": hex0x(f"v1:{seed}"),
        "name": name,
        "version": "lksg.v1",
        "description": "Prüfung ✓",
        "body_json": json.dumps(body, separators=(",", ":"), ensure_ascii=False),
    }


class PolicyV2Args(TypedDict):
    """Keyword arguments of ``Registry.put_policy_v2``."""

    policy_id: str
    version: str
    policy_hash: str
    ir_hash: str
    ir_json: str
    source: bytes
    media_type: str


def v2_args(policy_id: str = "lksg.v1", seed: str = "a") -> PolicyV2Args:
    """Keyword arguments of ``put_policy_v2``; ``seed`` decides the policy hash and source."""
    policy_hash = sha3(f"policy:{policy_id}:{seed}")
    ir_hash = sha3(f"ir:{policy_id}:{seed}")
    # Byte-exact text: odd spacing and raw non-ASCII must come back unchanged.
    ir_json = (
        f'{{"ir_version":"1.0", "policy_id":"{policy_id}","policy_hash":"{policy_hash}",'
        f'"rules":[],"note":"Lieferkette ü €","ir_hash":"{ir_hash}"}}'
    )
    return {
        "policy_id": policy_id,
        "version": "1.0",
        "policy_hash": policy_hash,
        "ir_hash": ir_hash,
        "ir_json": ir_json,
        "source": f"id: {policy_id}\nversion: '1.0'\n# {seed}\n".encode(),
        "media_type": "application/yaml",
    }


def audit(seed: str, verdict: str = "OK", policy_id: str | None = "lksg.v1") -> AuditRecord:
    """An audit record whose hashes derive from ``seed``."""
    return AuditRecord(
        request_id=f"req-{seed}",
        client_id="client-a",
        policy_id=policy_id,
        policy_hash=sha3(f"policy:{seed}"),
        ir_hash=sha3(f"ir:{seed}"),
        verdict=verdict,
        manifest_hash=hex0x(f"manifest:{seed}"),
        proof_hash=hex0x(f"proof:{seed}"),
    )
