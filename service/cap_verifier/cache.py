"""In-process cache of compiled PolicyV2 IR (contract §5): LRU with a TTL.

The registry is the source of truth; a miss reads it again, so a flush or a restart never
loses a policy. The cache is shared by the worker's threads, hence the lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from cachetools import TTLCache

from cap_verifier.domain import IR
from cap_verifier.metrics import Metrics
from cap_verifier.settings import CacheSettings


@dataclass(frozen=True, slots=True)
class CachedPolicy:
    """A stored PolicyV2 as the API serves it: its version and its IR."""

    version: str
    ir: IR

    @property
    def policy_id(self) -> str:
        """The id the policy is stored and cached under."""
        return self.ir.policy_id


class IRCache:
    """LRU + TTL map of policy id → CachedPolicy, counted in the metrics."""

    def __init__(self, settings: CacheSettings, metrics: Metrics) -> None:
        self.enabled = settings.enabled
        self._metrics = metrics
        self._lock = threading.Lock()
        self._entries: TTLCache[str, CachedPolicy] = TTLCache(
            maxsize=settings.max_entries, ttl=settings.ttl_seconds
        )

    def get(self, policy_id: str) -> CachedPolicy | None:
        if not self.enabled:
            return None
        with self._lock:
            entry = self._entries.get(policy_id)
            size = len(self._entries)
        (self._metrics.cache_hits if entry is not None else self._metrics.cache_misses).inc()
        self._metrics.cache_entries.set(size)
        return entry

    def put(self, entry: CachedPolicy) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._entries[entry.policy_id] = entry
            size = len(self._entries)
        self._metrics.cache_entries.set(size)

    def clear(self) -> int:
        """Drop every entry; returns how many there were."""
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
        self._metrics.cache_entries.set(0)
        return count

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
