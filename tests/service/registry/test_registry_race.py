"""Two processes racing to store the same policies: one row each, no exception."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable

import pytest
from registry_race_workers import put_worker
from registry_samples import v1_args

from cap_verifier.registry import Registry

ROUNDS = 20


@pytest.mark.slow
@pytest.mark.usefixtures("registry")  # migrated before the race
def test_two_processes_putting_the_same_policies(
    registry_url: str, open_registry: Callable[..., Registry]
) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    queue = ctx.Queue()
    workers = [
        ctx.Process(target=put_worker, args=(registry_url, ROUNDS, barrier, queue))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    outcomes = [queue.get(timeout=240) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    assert [status for status, _ in outcomes] == ["ok", "ok"], outcomes
    assert all(worker.exitcode == 0 for worker in workers)
    first, second = (results for _, results in outcomes)
    for (i, v1_id_a, v1_new_a, v2_hash_a, v2_new_a), (
        j,
        v1_id_b,
        v1_new_b,
        v2_hash_b,
        v2_new_b,
    ) in zip(first, second, strict=True):
        assert i == j
        assert v1_id_a == v1_id_b, f"round {i}: both callers get the one v1 record"
        assert v1_new_a + v1_new_b == 1, f"round {i}: exactly one v1 insert"
        assert v2_hash_a == v2_hash_b
        assert v2_new_a + v2_new_b == 1, f"round {i}: exactly one v2 insert"

    check = open_registry(registry_url)
    assert check.count_policies() == {"v1": ROUNDS, "v2": ROUNDS, "blobs": ROUNDS}
    for i in range(ROUNDS):
        stored = check.get_policy_v1(v1_args(f"race-{i}")["policy_hash"])
        assert stored is not None
        assert stored.id == first[i][1]
        assert check.get_policy_v2(f"race.{i}") is not None
