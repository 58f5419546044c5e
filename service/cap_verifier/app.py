"""Application factory: ``create_app(settings)`` wires settings, services and routes."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.middleware.rate_limit import RateLimitConfig

from cap_verifier import __version__
from cap_verifier.api.policies import PolicyController
from cap_verifier.api.system import SystemController
from cap_verifier.api.verification import VerificationController
from cap_verifier.audit import AuditWriter
from cap_verifier.auth.client_cert import ClientCertPolicy
from cap_verifier.auth.jwks import JWKSCache
from cap_verifier.auth.tokens import TokenValidator
from cap_verifier.cache import IRCache
from cap_verifier.http.context import RequestContextMiddleware
from cap_verifier.http.framing import FramingGuard, FramingLimits
from cap_verifier.http.problems import EXCEPTION_HANDLERS
from cap_verifier.logs import configure_logging
from cap_verifier.metrics import Metrics
from cap_verifier.paths import OPERATIONAL
from cap_verifier.policy_store import PolicyStore
from cap_verifier.registry import Registry
from cap_verifier.retention import AuditPruner
from cap_verifier.services import STATE_KEY, Services, services_of
from cap_verifier.settings import Settings, load_settings

BUILD_ENV = "CAP_VERIFIER_BUILD"
UNRATED_PATHS = [f"^{re.escape(path)}$" for path in OPERATIONAL]
log = logging.getLogger("cap_verifier")


def build_services(settings: Settings, *, registry: Registry | None = None) -> Services:
    metrics = Metrics(__version__)
    jwks = JWKSCache(settings.oauth2, metrics)
    registry = registry or Registry(settings.registry.url)
    return Services(
        settings=settings,
        metrics=metrics,
        registry=registry,
        policies=PolicyStore(registry, IRCache(settings.cache, metrics)),
        audit=AuditWriter(registry),
        pruner=AuditPruner(registry, settings.registry),
        jwks=jwks,
        validator=TokenValidator(settings.oauth2, jwks),
        client_certs=ClientCertPolicy(settings.tls),
        build=os.environ.get(BUILD_ENV) or None,
    )


@asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    services = services_of(app)
    await services.jwks.refresh()  # a failure is logged; /readyz reports it
    await services.audit.start()
    await services.pruner.start()
    log.info("service started", extra={"event": "startup"})
    try:
        yield
    finally:
        await services.pruner.stop()
        await services.audit.stop()
        await services.jwks.aclose()
        services.registry.close()
        services.metrics.mark_worker_gone()
        log.info("service stopped", extra={"event": "shutdown"})


def create_app(
    settings: Settings,
    *,
    registry: Registry | None = None,
    configure_logs: bool = True,
) -> Litestar:
    """The verifier as an ASGI app. ``registry`` lets a caller share an open registry."""
    if configure_logs:
        configure_logging(settings.logging.level)
    services = build_services(settings, registry=registry)
    middleware = []
    if settings.limits.rate_limit is not None:
        rate = settings.limits.rate_limit
        middleware.append(
            RateLimitConfig(rate_limit=(rate.per, rate.requests), exclude=UNRATED_PATHS).middleware
        )
    app = Litestar(
        route_handlers=[SystemController, PolicyController, VerificationController],
        dependencies=services.dependencies(),
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=middleware,
        lifespan=[_lifespan],
        state=State({STATE_KEY: services}),
        openapi_config=None,
        logging_config=None,
        request_max_body_size=settings.limits.max_body_bytes,
        debug=False,
    )
    limits = FramingLimits(
        max_target_bytes=settings.limits.max_target_bytes,
        max_header_bytes=settings.limits.max_header_bytes,
        max_headers=settings.limits.max_headers,
        body_timeout=settings.server.body_timeout,
    )
    app.asgi_handler = RequestContextMiddleware(
        FramingGuard(app.asgi_handler, limits), services.metrics, services.client_certs
    )
    return app


def create_app_from_env() -> Litestar:
    """Factory for granian workers: settings from ``CAP_VERIFIER_CONFIG`` and the environment."""
    return create_app(load_settings(os.environ.get("CAP_VERIFIER_CONFIG")))
