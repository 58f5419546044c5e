"""The registry behind the API: PostgreSQL races, restarts and cache flushes lose nothing."""

from __future__ import annotations

import base64
import signal
import threading
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from cap_ops.devkit.service import ServiceProcess
from cap_ops.devkit.tokens import bearer
from cap_ops.poll import wait_until

V1_POLICY = {
    "version": "lksg.v1",
    "name": "Race Policy",
    "created_at": "2025-10-25T09:00:00Z",
    "constraints": {"require_at_least_one_ubo": True, "supplier_count_max": 5},
}


def _compile_v2(client: httpx.Client, policy_yaml: str) -> httpx.Response:
    body = {"policy_yaml": base64.b64encode(policy_yaml.encode()).decode(), "persist": True}
    return client.post("/policy/v2/compile", json=body)


@pytest.mark.postgres
@pytest.mark.slow
def test_two_processes_compiling_at_once_on_postgresql_store_one_row(
    make_service: Callable[..., ServiceProcess],
    postgres_url: str,
    token: Callable[..., str],
    lksg_policy_yaml: str,
) -> None:
    first = make_service(registry={"url": postgres_url})
    second = make_service(registry={"url": postgres_url})
    first.migrate()
    first.start()
    second.start()
    auth = bearer(token())
    results: dict[str, list[httpx.Response]] = {"v1": [], "v2": []}
    barrier = threading.Barrier(2)

    def race(service: ServiceProcess) -> None:
        with service.client(headers=auth) as client:
            client.get("/healthz")  # connection warm: the race is on the compile itself
            barrier.wait()
            results["v1"].append(client.post("/policy/compile", json={"policy": V1_POLICY}))
            results["v2"].append(_compile_v2(client, lksg_policy_yaml))

    try:
        threads = [threading.Thread(target=race, args=(s,)) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert [r.status_code for r in results["v1"]] == [200, 200]
        assert [r.status_code for r in results["v2"]] == [200, 200]
        assert len({r.json()["policy_id"] for r in results["v1"]}) == 1
        with psycopg.connect(postgres_url.replace("+psycopg", "")) as conn:
            v1_rows = conn.execute("SELECT count(*) FROM policies_v1").fetchone()
            v2_rows = conn.execute("SELECT count(*) FROM policies_v2").fetchone()
        assert v1_rows == (1,)
        assert v2_rows == (1,)
    finally:
        first.stop()
        second.stop()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_restart_keeps_every_policy(
    make_service: Callable[..., ServiceProcess],
    request: pytest.FixtureRequest,
    token: Callable[..., str],
    lksg_policy_yaml: str,
    backend: str,
) -> None:
    sections: dict[str, Any] = {}
    if backend == "postgresql":
        sections["registry"] = {"url": request.getfixturevalue("postgres_url")}
    service = make_service(**sections)
    service.migrate()
    service.start()
    auth = bearer(token())
    try:
        with service.client(headers=auth) as client:
            v1 = client.post("/policy/compile", json={"policy": V1_POLICY}).json()
            v2 = _compile_v2(client, lksg_policy_yaml).json()
        service.stop()
        service.start()
        with service.client(headers=auth) as client:
            assert (
                client.get(f"/policy/{v1['policy_id']}").json()["metadata"]["hash"]
                == v1["policy_hash"]
            )
            stored = client.get("/policy/v2/lksg.v1")
        assert stored.status_code == 200
        assert stored.json()["ir"] == v2["ir"]
    finally:
        service.stop()


@pytest.mark.orr("4.6-06")
def test_cache_flush_by_worker_reload_never_loses_a_policy(
    make_service: Callable[..., ServiceProcess], token: Callable[..., str], lksg_policy_yaml: str
) -> None:
    """SIGHUP reloads the workers, which empties their caches; reads go to the registry."""
    service = make_service()
    service.migrate()
    service.start()
    auth = bearer(token())
    try:
        with service.client(headers=auth) as client:
            assert _compile_v2(client, lksg_policy_yaml).status_code == 200
            assert client.get("/policy/v2/lksg.v1").status_code == 200  # cached
        assert service.process is not None
        service.process.send_signal(signal.SIGHUP)
        wait_until(lambda: "Stopped old worker" in service.logs(), 15, "the workers to respawn")

        def served() -> bool:
            try:
                with service.client(headers=auth) as client:
                    return client.get("/policy/v2/lksg.v1").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(served, 15, "the policy after the reload")
    finally:
        service.stop()


def test_cache_disabled_serves_from_the_registry(
    make_service: Callable[..., ServiceProcess], token: Callable[..., str], lksg_policy_yaml: str
) -> None:
    service = make_service(cache={"enabled": False})
    service.migrate()
    service.start()
    try:
        with service.client(headers=bearer(token())) as client:
            assert _compile_v2(client, lksg_policy_yaml).status_code == 200
            for _ in range(3):
                assert client.get("/policy/v2/lksg.v1").status_code == 200
            verified = client.post(
                "/verify",
                json={"policy_id": "lksg.v1", "context": {"supplier_hashes": ["0x" + "11" * 32]}},
            )
            assert verified.status_code == 200
            text = client.get("/metrics").text
        assert "cap_verifier_cache_hits_total 0.0" in text
    finally:
        service.stop()
