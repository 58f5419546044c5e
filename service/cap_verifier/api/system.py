"""Liveness, readiness, metrics and the published contract."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException

from cap_verifier import __version__
from cap_verifier.auth.guards import METRICS_SCOPE, SCOPE_OPT, require_scope
from cap_verifier.auth.jwks import JWKSCache
from cap_verifier.metrics import CONTENT_TYPE, Metrics
from cap_verifier.paths import HEALTHZ, METRICS, OPENAPI, READYZ
from cap_verifier.registry import Registry, RegistryError

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

    @get(HEALTHZ, operation_id="GetHealth", cache_control=None)
    async def healthz(self, build: NamedDependency[str | None]) -> dict[str, Any]:
        """Liveness: 200 while the process serves."""
        return {"status": "OK", "version": __version__, "build": build}

    @get(READYZ, operation_id="GetReadiness")
    async def readyz(
        self, registry: NamedDependency[Registry], jwks: NamedDependency[JWKSCache]
    ) -> Response[dict[str, Any]]:
        """Readiness: the registry answers and signing keys have been loaded."""
        try:
            await anyio.to_thread.run_sync(registry.ping)
            registry_status = "OK"
        except RegistryError:
            registry_status = "FAIL"
        if not jwks.usable():
            await jwks.refresh_if_due()
        jwks_status = "OK" if jwks.usable() else "FAIL"
        ready = registry_status == "OK" and jwks_status == "OK"
        body = {
            "status": "OK" if ready else "DEGRADED",
            "checks": [
                {"name": "registry", "status": registry_status},
                {"name": "jwks", "status": jwks_status},
            ],
        }
        return Response(body, status_code=200 if ready else 503)

    @get(
        METRICS,
        operation_id="GetMetrics",
        guards=[require_scope],
        opt={SCOPE_OPT: METRICS_SCOPE},
        media_type=CONTENT_TYPE,
    )
    async def metrics(self, metrics: NamedDependency[Metrics]) -> Response[bytes]:
        """Prometheus text format of every worker's metrics."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    @get(OPENAPI, operation_id="GetOpenAPI", media_type=OPENAPI_MEDIA_TYPE)
    async def openapi(self) -> Response[bytes]:
        """The API contract."""
        try:
            document = openapi_document()
        except OSError:
            raise NotFoundException("the OpenAPI document is not installed") from None
        return Response(document, media_type=OPENAPI_MEDIA_TYPE)
