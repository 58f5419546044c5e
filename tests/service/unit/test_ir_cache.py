"""The IR cache's eviction policy (ORR 4.6-04): when full, the least recently used policy goes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cachetools import FIFOCache

from cap_verifier import cache as cache_module
from cap_verifier.cache import CachedPolicy, IRCache
from cap_verifier.domain import compile_policy_v2
from cap_verifier.metrics import Metrics
from cap_verifier.settings import CacheSettings

CAPACITY = 3


def _policy(policy_id: str) -> CachedPolicy:
    doc = {
        "id": policy_id,
        "version": "1",
        "legal_basis": [{"directive": "LkSG"}],
        "description": "cache eviction",
        "inputs": {"audited": {"type": "bool"}},
        "rules": [{"id": "r", "op": "eq", "lhs": "audited", "rhs": True}],
    }
    return CachedPolicy(version="1", ir=compile_policy_v2(doc, "relaxed").ir)


def _survivors(cache: IRCache) -> set[str]:
    """Fill the cache, read the oldest entry, add one more: which ids are still cached."""
    ids = [f"lksg.p{i}" for i in range(CAPACITY + 1)]
    for policy_id in ids[:CAPACITY]:
        cache.put(_policy(policy_id))
    assert cache.get(ids[0]) is not None  # the oldest entry is now the most recently used
    cache.put(_policy(ids[CAPACITY]))
    assert len(cache) == CAPACITY
    return {policy_id for policy_id in ids if cache.get(policy_id) is not None}


def _cache() -> IRCache:
    return IRCache(CacheSettings(max_entries=CAPACITY, ttl_seconds=3600), Metrics("test"))


@pytest.mark.orr("4.6-04")
def test_a_full_cache_evicts_the_least_recently_used_policy() -> None:
    assert _survivors(_cache()) == {"lksg.p0", "lksg.p2", "lksg.p3"}


def test_the_check_tells_lru_from_insertion_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a deliberately wrong policy (first in, first out) the same scenario differs."""
    fifo: Callable[..., FIFOCache[str, CachedPolicy]] = lambda maxsize, ttl: FIFOCache(maxsize)  # noqa: E731
    monkeypatch.setattr(cache_module, "TTLCache", fifo)
    assert _survivors(_cache()) == {"lksg.p1", "lksg.p2", "lksg.p3"}
