"""The JSON log lines of a running verifier, read from its captured stdout."""

from __future__ import annotations

import json
from typing import Any

from cap_ops.devkit.service import ServiceProcess
from cap_ops.poll import wait_until

ACCESS_MESSAGE = "request"


def log_lines(service: ServiceProcess) -> list[dict[str, Any]]:
    """Every JSON line the service has written so far."""
    return [json.loads(line) for line in service.logs().splitlines() if line.startswith("{")]


def request_lines(service: ServiceProcess, request_id: str) -> list[dict[str, Any]]:
    """The lines of one request, once its access line is written (it follows the response)."""

    def mine() -> list[dict[str, Any]]:
        return [line for line in log_lines(service) if line.get("request_id") == request_id]

    wait_until(
        lambda: any(line.get("message") == ACCESS_MESSAGE for line in mine()),
        10,
        f"the access line of request {request_id}",
    )
    return mine()


def access_line(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The one access line among a request's lines."""
    (line,) = [line for line in lines if line.get("message") == ACCESS_MESSAGE]
    return line
