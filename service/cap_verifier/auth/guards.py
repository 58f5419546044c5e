"""Litestar guard: client certificate policy, bearer token, then the endpoint's scope."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from cap_verifier.auth.client_cert import XFCC_HEADER
from cap_verifier.auth.tokens import AuthError, Principal, bearer_token
from cap_verifier.services import services_of

SCOPE_OPT = "scope"


async def require_scope(
    connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
) -> None:
    """Admit the request when its token is valid and holds the route's scope.

    The route names its scope by key of ``oauth2.scopes`` in ``opt={"scope": …}``.
    Every refusal is counted under ``cap_verifier_auth_failures_total{reason}``.
    """
    services = services_of(connection.app)
    scope_key = route_handler.opt.get(SCOPE_OPT)
    if scope_key is None:
        if connection.scope.get("method") == "OPTIONS":
            return  # Litestar's generated OPTIONS handler: it only lists the allowed methods
        raise RuntimeError(f"route {route_handler} is guarded but names no scope")  # fail closed
    if scope_key == "metrics" and not services.settings.metrics.require_auth:
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
            )
    except AuthError as exc:
        services.metrics.auth_failures.labels(reason=exc.reason).inc()
        raise
