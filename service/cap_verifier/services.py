"""The long-lived objects one worker shares between requests, kept on ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cap_verifier.audit import AuditWriter
from cap_verifier.auth.client_cert import ClientCertPolicy
from cap_verifier.auth.jwks import JWKSCache
from cap_verifier.auth.tokens import TokenValidator
from cap_verifier.cache import IRCache
from cap_verifier.metrics import Metrics
from cap_verifier.registry import Registry
from cap_verifier.settings import Settings

if TYPE_CHECKING:
    from litestar import Litestar

STATE_KEY = "services"


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    metrics: Metrics
    registry: Registry
    cache: IRCache
    audit: AuditWriter
    jwks: JWKSCache
    validator: TokenValidator
    client_certs: ClientCertPolicy
    build: str | None


def services_of(app: Litestar | Any) -> Services:
    services: Services = app.state[STATE_KEY]
    return services
