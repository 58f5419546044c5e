"""Outermost ASGI layer: request id, access log line and request metrics for every request.

It wraps the whole Litestar handler (routing included), so even a 404 for an unknown path
carries ``X-Request-ID`` and is counted.
"""

from __future__ import annotations

import logging
import time

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from cap_verifier.auth.client_cert import XFCC_HEADER, ClientCertPolicy
from cap_verifier.logs import REQUEST_ID_HEADER as _HEADER
from cap_verifier.logs import accepted_request_id, request_id_var
from cap_verifier.metrics import Metrics, method_label
from cap_verifier.paths import OPERATIONAL

REQUEST_ID_HEADER = _HEADER.lower().encode("ascii")
_QUIET_ENDPOINTS = frozenset(OPERATIONAL)
UNMATCHED = "unmatched"
_XFCC = XFCC_HEADER.encode("ascii")

access_log = logging.getLogger("cap_verifier.access")


def request_id_from(scope: Scope) -> str:
    """The caller's X-Request-ID when sane, else a new UUID4 (the rejected value is dropped)."""
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            return accepted_request_id(value.decode("latin-1"))
    return accepted_request_id(None)


class RequestContextMiddleware:
    """Sets the request id, adds the response header, logs and counts the request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, client_certs: ClientCertPolicy) -> None:
        self.app = app
        self.metrics = metrics
        self.client_certs = client_certs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", ()) if h[0] != REQUEST_ID_HEADER]
                headers.append((REQUEST_ID_HEADER, request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            endpoint = scope.get("path_template") or UNMATCHED
            method = method_label(scope["method"])
            self.metrics.observe_request(endpoint, method, status, seconds)
            level = logging.DEBUG if endpoint in _QUIET_ENDPOINTS and status < 400 else logging.INFO
            if access_log.isEnabledFor(level):
                access_log.log(
                    level,
                    "request",
                    extra={
                        "method": method,
                        "endpoint": endpoint,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                        "client_id": scope["state"].get("client_id"),
                        "client_san": self._client_san(scope),
                    },
                )
            request_id_var.reset(token)

    def _client_san(self, scope: Scope) -> str | None:
        """The DNS SANs of a client certificate forwarded by a trusted proxy (XFCC)."""
        client = scope.get("client")
        xfcc = next((v for k, v in scope.get("headers", ()) if k == _XFCC), None)
        return self.client_certs.logged_san(
            client[0] if client else None, None if xfcc is None else xfcc.decode("latin-1")
        )
