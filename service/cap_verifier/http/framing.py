"""What a request may look like before the application reads it, and how long its body may take.

The server (granian) bounds the time to a complete request head (``server.head_timeout``) and the
number of open connections; this ASGI layer, inside the request context (so every refusal has a
request id, a problem body, an access line and a count), refuses:

- a request target longer than ``limits.max_target_bytes`` (414);
- more than ``limits.max_headers`` header fields, or a header section larger than
  ``limits.max_header_bytes`` (431);
- a transfer coding other than ``chunked`` (400: the service decodes no other);

and it watches the body: a body that has not fully arrived within ``server.body_timeout`` seconds
is answered 408 (and the connection closed); a client that hangs up before its body is complete
has aborted, which is counted as 499 (the client's, outside the availability SLI) and never as a
server failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import anyio
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from cap_verifier.http.errors import BodyTimeout, ClientAborted
from cap_verifier.http.problems import send_problem


@dataclass(frozen=True)
class FramingLimits:
    max_target_bytes: int
    max_header_bytes: int
    max_headers: int
    body_timeout: float


def refusal(scope: Scope, limits: FramingLimits) -> tuple[int, str] | None:
    """The status and reason to refuse a request with before reading it, if any."""
    target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
    if target > limits.max_target_bytes:
        return 414, f"the request target is longer than {limits.max_target_bytes} bytes"
    headers = list(scope["headers"])
    if len(headers) > limits.max_headers:
        return 431, f"more than {limits.max_headers} request header fields"
    if sum(len(name) + len(value) for name, value in headers) > limits.max_header_bytes:
        return 431, f"the request header section is larger than {limits.max_header_bytes} bytes"
    codings = [
        coding.strip().lower()
        for name, value in headers
        if name == b"transfer-encoding"
        for coding in value.decode("latin-1").split(",")
    ]
    if codings and codings != ["chunked"]:
        return 400, "the only transfer coding accepted is chunked"
    return None


class FramingGuard:
    """Refuses malformed requests up front and puts a deadline on reading the body."""

    def __init__(self, app: ASGIApp, limits: FramingLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        refused = refusal(scope, self.limits)
        if refused is not None:
            status, detail = refused
            await send_problem(send, status, detail, close=True)
            return
        await self.app(scope, _BodyWatch(receive, self.limits.body_timeout), send)


class _BodyWatch:
    """``receive`` with a deadline on the whole body, turning an early hang-up into
    :class:`ClientAborted` (the application would otherwise see a server error)."""

    def __init__(self, receive: Receive, timeout: float) -> None:
        self._receive = receive
        self._timeout = timeout
        self._deadline: float | None = None
        self._body_done = False

    async def __call__(self) -> ReceiveMessage:
        if self._body_done:
            return await self._receive()
        if self._deadline is None:
            self._deadline = anyio.current_time() + self._timeout
        try:
            with anyio.fail_after(max(self._deadline - anyio.current_time(), 0)):
                message = await self._receive()
        except TimeoutError:
            raise BodyTimeout(
                f"the request body did not arrive within {_seconds(self._timeout)} s"
            ) from None
        if message["type"] == "http.disconnect":
            raise ClientAborted("the client closed the connection before its body was complete")
        if not message.get("more_body", False):
            self._body_done = True
        return message


def _seconds(value: float) -> str:
    return str(int(value)) if math.isclose(value, round(value)) else f"{value:g}"
