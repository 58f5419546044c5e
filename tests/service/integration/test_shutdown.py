"""Graceful shutdown: SIGTERM lets an in-flight request finish and refuses new connections."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from cap_ops.devkit.net import port_open
from cap_ops.devkit.service import ServiceProcess
from cap_ops.devkit.tokens import bearer
from cap_ops.poll import wait_until

POLICY = {
    "version": "lksg.v1",
    "name": "Shutdown Policy",
    "created_at": "2025-10-25T09:00:00Z",
    "constraints": {"require_at_least_one_ubo": True, "supplier_count_max": 10},
}


@pytest.mark.slow
def test_sigterm_during_slow_request_lets_it_finish(
    make_service: Callable[..., ServiceProcess], token: Callable[..., str]
) -> None:
    service = make_service(server={"graceful_timeout": 15})
    service.migrate()
    service.start()
    body = json.dumps({"policy": POLICY}).encode()
    first_part_sent = threading.Event()
    release = threading.Event()
    outcome: dict[str, object] = {}

    def slow_body() -> Iterator[bytes]:
        yield body[:10]
        first_part_sent.set()
        release.wait(timeout=30)
        yield body[10:]

    def call() -> None:
        try:
            with service.client() as client:
                response = client.post(
                    "/policy/compile",
                    content=slow_body(),
                    headers={
                        **bearer(token()),
                        "Content-Type": "application/json",
                        "Content-Length": str(len(body)),
                    },
                )
            outcome["status"] = response.status_code
            outcome["body"] = response.json()
        except httpx.HTTPError as exc:
            outcome["error"] = repr(exc)

    caller = threading.Thread(target=call)
    caller.start()
    try:
        assert first_part_sent.wait(10), "the slow request never started"
        time.sleep(0.3)  # let the server read the first part
        assert service.process is not None
        service.process.send_signal(signal.SIGTERM)
        wait_until(lambda: not port_open(service.port), 10, "the listener to close")
        release.set()
        caller.join(timeout=20)
        assert outcome.get("status") == 200, outcome
        assert outcome["body"]["status"] == "compiled"  # type: ignore[index]
        assert service.process.wait(timeout=20) == 0
    finally:
        release.set()
        caller.join(timeout=5)
        service.stop()
