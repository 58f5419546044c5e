"""RFC 9457 problem details for every error (contract §1): never a trace, never empty."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import (
    ExceptionHandlersMap,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Send,
)

from cap_verifier.auth.tokens import AuthError
from cap_verifier.domain import DomainError
from cap_verifier.http.errors import BodyTimeout, ClientAborted
from cap_verifier.logs import request_id_var
from cap_verifier.registry import PolicyConflict, RegistryUnavailable

PROBLEM_JSON = "application/problem+json"
CLIENT_CLOSED_REQUEST = 499
"""Not a status any client sees (it has gone): nginx's code for a client abort, so that the
access log and the metrics tell it from a server failure."""
log = logging.getLogger("cap_verifier.errors")

_SLUGS = {
    400: "bad-request",
    408: "request-timeout",
    414: "uri-too-long",
    431: "headers-too-large",
    499: "client-closed-request",
    401: "invalid-token",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "policy-conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "unprocessable-content",
    429: "rate-limited",
    500: "internal-error",
    503: "unavailable",
}


def _title(status: int) -> str:
    return "Client Closed Request" if status == CLIENT_CLOSED_REQUEST else HTTPStatus(status).phrase


def document(status: int, detail: str, slug: str | None = None) -> dict[str, Any]:
    """The problem document, with the current request id."""
    return {
        "type": f"urn:cap-verifier:problem:{slug or _SLUGS.get(status, 'error')}",
        "title": _title(status),
        "status": status,
        "detail": detail,
        "request_id": request_id_var.get(),
    }


def problem(
    status: int,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    slug: str | None = None,
) -> Response[dict[str, Any]]:
    """A problem+json response with the current request id."""
    body = document(status, detail, slug)
    if extra:
        body.update(extra)
    return Response(content=body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def send_problem(send: Send, status: int, detail: str, *, close: bool = False) -> None:
    """A problem+json response straight on the ASGI channel, for refusals made before the
    application runs; ``close`` asks the server to close the connection afterwards."""
    body = msgspec.json.encode(document(status, detail))
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", b"%d" % len(body))]
    if close:
        headers.append((b"connection", b"close"))
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": headers,
    }
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(start)
    await send(end)


def _http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        log.error("request failed", exc_info=exc)
    detail = exc.detail if exc.detail and exc.detail != HTTPStatus(status).phrase else ""
    if status == 413:
        detail = "the request body is larger than limits.max_body_bytes"
    elif status == 404 and not detail:
        detail = "no such resource"
    elif status == 405:
        detail = "this method is not allowed on this path"
    elif status == 429:
        detail = "rate limit exceeded; retry later"
    headers = dict(exc.headers or {})
    if status == 429:
        headers.setdefault("Retry-After", headers.get("RateLimit-Reset", "1"))
    return problem(status, detail or HTTPStatus(status).description, headers=headers)


def _domain_error(_: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    return problem(exc.status, exc.detail)


def _auth_error(_: Request[Any, Any, Any], exc: AuthError) -> Response[Any]:
    challenge = exc.www_authenticate
    headers = {"WWW-Authenticate": challenge} if challenge else None
    slug = "insufficient-scope" if exc.reason == "insufficient_scope" else None
    if exc.reason == "client_cert":
        slug = "client-certificate"
    return problem(exc.status, exc.detail, headers=headers, slug=slug)


def _conflict(_: Request[Any, Any, Any], exc: PolicyConflict) -> Response[Any]:
    return problem(409, str(exc))


def _unavailable(_: Request[Any, Any, Any], exc: RegistryUnavailable) -> Response[Any]:
    log.error("registry unavailable", exc_info=exc)
    return problem(503, "the policy registry is unavailable; retry later", slug="registry")


def _body_timeout(_: Request[Any, Any, Any], exc: BodyTimeout) -> Response[Any]:
    return problem(408, str(exc), headers={"Connection": "close"})


def _client_aborted(_: Request[Any, Any, Any], exc: ClientAborted) -> Response[Any]:
    log.info("client aborted", extra={"reason": str(exc)})
    return problem(CLIENT_CLOSED_REQUEST, str(exc), headers={"Connection": "close"})


def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled error", exc_info=exc)
    return problem(500, "unexpected error; quote the request_id when reporting it")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HTTPException: _http_exception,
    DomainError: _domain_error,
    AuthError: _auth_error,
    PolicyConflict: _conflict,
    RegistryUnavailable: _unavailable,
    BodyTimeout: _body_timeout,
    ClientAborted: _client_aborted,
    Exception: _unexpected,
}
