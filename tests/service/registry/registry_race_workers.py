"""Process targets of the concurrency tests (a module of its own so that spawn can import it)."""

from __future__ import annotations

from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from registry_samples import v1_args, v2_args

from cap_verifier.registry import Registry

BARRIER_TIMEOUT_S = 60


def migrate_worker(url: str, barrier: Barrier, queue: Queue[Any]) -> None:
    """Migrate once, in step with the other worker; report the revision reached."""
    try:
        registry = Registry(url)
        try:
            barrier.wait(BARRIER_TIMEOUT_S)
            registry.migrate()
            queue.put(("ok", registry.current_revision()))
        finally:
            registry.close()
    except BaseException as exc:
        barrier.abort()
        queue.put(("error", repr(exc)))


def put_worker(url: str, rounds: int, barrier: Barrier, queue: Queue[Any]) -> None:
    """Put the same v1 and v2 policies as the other worker, round by round, in lock step.

    Reports, per round, the v1 id and created flag, and the v2 hash and created flag.
    """
    try:
        registry = Registry(url)
        results = []
        try:
            for i in range(rounds):
                barrier.wait(BARRIER_TIMEOUT_S)
                v1, v1_created = registry.put_policy_v1(**v1_args(f"race-{i}"))
                barrier.wait(BARRIER_TIMEOUT_S)
                v2, v2_created = registry.put_policy_v2(**v2_args(f"race.{i}"))
                results.append((i, v1.id, v1_created, v2.policy_hash, v2_created))
        finally:
            registry.close()
        queue.put(("ok", results))
    except BaseException as exc:
        barrier.abort()
        queue.put(("error", repr(exc)))
