"""Stored PolicyV2s as the API reads and writes them: the IR cache in front of the registry.

The registry is the source of truth: a cache miss reads it, a stored policy is cached at once.
Registry calls run in a worker thread (they block).
"""

from __future__ import annotations

import json

import anyio

from cap_verifier.cache import CachedPolicy, IRCache
from cap_verifier.domain import CompileResult, CompileV2Request, parse_ir
from cap_verifier.registry import PolicyV2Record, Registry


def cached_from_record(record: PolicyV2Record) -> CachedPolicy:
    """The cache entry of a stored PolicyV2 (its IR text typed again)."""
    return CachedPolicy(version=record.version, ir=parse_ir(json.loads(record.ir_json)))


class PolicyStore:
    """Read and store PolicyV2s through the IR cache."""

    def __init__(self, registry: Registry, cache: IRCache) -> None:
        self._registry = registry
        self._cache = cache

    async def get(self, policy_id: str) -> CachedPolicy | None:
        """A stored PolicyV2 from the cache, or from the registry on a miss; None if unknown."""
        cached = self._cache.get(policy_id)
        if cached is not None:
            return cached
        loaded = await anyio.to_thread.run_sync(self._load, policy_id)
        if loaded is not None:
            self._cache.put(loaded)
        return loaded

    async def save(self, compiled: CompileResult, request: CompileV2Request) -> None:
        """Store a compiled PolicyV2 with its source text (idempotent), then cache it.

        Raises PolicyConflict when the id is stored with another policy hash.
        """
        stored = await anyio.to_thread.run_sync(self._put, compiled, request)
        self._cache.put(stored)

    def _load(self, policy_id: str) -> CachedPolicy | None:
        record = self._registry.get_policy_v2(policy_id)
        return None if record is None else cached_from_record(record)

    def _put(self, compiled: CompileResult, request: CompileV2Request) -> CachedPolicy:
        record, _created = self._registry.put_policy_v2(
            policy_id=compiled.policy.id,
            version=compiled.policy.version,
            policy_hash=compiled.policy_hash,
            ir_hash=compiled.ir_hash,
            ir_json=compiled.ir.canonical_json(),
            source=request.source_text.encode("utf-8"),
            media_type=f"application/{request.source_format}",
        )
        return cached_from_record(record)
