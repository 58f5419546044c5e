"""Litestar guard: client certificate policy, bearer token, then the endpoint's scope."""

from __future__ import annotations

import logging
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Scope

from cap_verifier.auth.client_cert import XFCC_HEADER
from cap_verifier.auth.tokens import AuthError, Principal, bearer_token
from cap_verifier.services import services_of

SCOPE_OPT = "scope"
METRICS_SCOPE = "metrics"
"""The scope key of ``/metrics``: enforced only with ``metrics.require_auth``."""
log = logging.getLogger("cap_verifier.auth")


async def require_scope(
    connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
) -> None:
    """Admit the request when its token is valid and holds the route's scope.

    The route names its scope by key of ``oauth2.scopes`` in ``opt={"scope": …}``.
    Every refusal is counted under ``cap_verifier_auth_failures_total{reason}`` and logged
    once (:func:`log_failure`); a success is not logged apart from the access line.
    """
    services = services_of(connection.app)
    scope_key = route_handler.opt.get(SCOPE_OPT)
    if scope_key is None:
        if connection.scope.get("method") == "OPTIONS":
            return  # Litestar's generated OPTIONS handler: it only lists the allowed methods
        raise RuntimeError(f"route {route_handler} is guarded but names no scope")  # fail closed
    if scope_key == METRICS_SCOPE and not services.settings.metrics.require_auth:
        return
    required: str = getattr(services.settings.oauth2.scopes, scope_key)
    try:
        client = connection.scope.get("client")
        services.client_certs.check(
            client[0] if client else None, connection.headers.get(XFCC_HEADER)
        )
        principal: Principal = await services.validator.validate(
            bearer_token(connection.headers.get("authorization"))
        )
        connection.scope["state"]["client_id"] = principal.client_id
        if required not in principal.scopes:
            raise AuthError(
                "insufficient_scope",
                f"the token lacks the scope {required}",
                status=403,
                scope=required,
                client_id=principal.client_id,
            )
    except AuthError as exc:
        services.metrics.auth_failures.labels(reason=exc.reason).inc()
        if exc.client_id is not None:
            connection.scope["state"]["client_id"] = exc.client_id
        log_failure(exc, connection.scope)
        raise


def log_failure(exc: AuthError, scope: Scope) -> None:
    """One WARNING line per refused request: its reason and, when a verified token named it,
    the client id. Never the token or the Authorization header, nor any part of them."""
    log.warning(
        "authentication failed",
        extra={
            "event": "auth_failure",
            "reason": exc.reason,
            "client_id": exc.client_id,
            "endpoint": scope.get("path_template"),
            "method": scope.get("method"),
        },
    )
