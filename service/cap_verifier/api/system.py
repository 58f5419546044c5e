"""Liveness, readiness, metrics and the published contract."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
from litestar import Controller, Request, Response, get
from litestar.exceptions import NotFoundException

from cap_verifier import CONTRACT_VERSION
from cap_verifier.auth.guards import SCOPE_OPT, require_scope
from cap_verifier.metrics import CONTENT_TYPE
from cap_verifier.registry import RegistryError
from cap_verifier.services import services_of

OPENAPI_MEDIA_TYPE = "application/yaml"


@cache
def openapi_document() -> bytes:
    """``openapi/openapi.yaml``: packaged in the wheel, read from the checkout otherwise."""
    packaged = resources.files("cap_verifier").joinpath("openapi.yaml")
    if packaged.is_file():
        return packaged.read_bytes()
    checkout = Path(__file__).resolve().parents[3] / "openapi" / "openapi.yaml"
    return checkout.read_bytes()


class SystemController(Controller):
    tags = ["system"]  # noqa: RUF012

    @get("/healthz", operation_id="GetHealth", cache_control=None)
    async def healthz(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        """Liveness: 200 while the process serves."""
        return {
            "status": "OK",
            "version": CONTRACT_VERSION,
            "build": services_of(request.app).build,
        }

    @get("/readyz", operation_id="GetReadiness")
    async def readyz(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """Readiness: the registry answers and signing keys have been loaded."""
        services = services_of(request.app)
        try:
            await anyio.to_thread.run_sync(services.registry.ping)
            registry = "OK"
        except RegistryError:
            registry = "FAIL"
        if not services.jwks.usable():
            await services.jwks.refresh_if_due()
        jwks = "OK" if services.jwks.usable() else "FAIL"
        ready = registry == "OK" and jwks == "OK"
        body = {
            "status": "OK" if ready else "DEGRADED",
            "checks": [
                {"name": "registry", "status": registry},
                {"name": "jwks", "status": jwks},
            ],
        }
        return Response(body, status_code=200 if ready else 503)

    @get(
        "/metrics",
        operation_id="GetMetrics",
        guards=[require_scope],
        opt={SCOPE_OPT: "metrics"},
        media_type=CONTENT_TYPE,
    )
    async def metrics(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        """Prometheus text format of every worker's metrics."""
        services = services_of(request.app)
        return Response(services.metrics.exposition(), media_type=CONTENT_TYPE)

    @get("/openapi.yaml", operation_id="GetOpenAPI", media_type=OPENAPI_MEDIA_TYPE)
    async def openapi(self) -> Response[bytes]:
        """The API contract."""
        try:
            document = openapi_document()
        except OSError:
            raise NotFoundException("the OpenAPI document is not installed") from None
        return Response(document, media_type=OPENAPI_MEDIA_TYPE)
