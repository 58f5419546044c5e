"""The long-lived objects one worker shares between requests.

They live on ``app.state`` (for the lifespan, the guard and the middleware) and reach the
controllers through litestar's dependency injection: a handler names what it needs as a
parameter (``registry``, ``policies``, ``audit``, ``jwks``, ``metrics``, ``build``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar.di import Provide

from cap_verifier.audit import AuditWriter
from cap_verifier.auth.client_cert import ClientCertPolicy
from cap_verifier.auth.jwks import JWKSCache
from cap_verifier.auth.tokens import TokenValidator
from cap_verifier.http.body import JsonBodyReader
from cap_verifier.metrics import Metrics
from cap_verifier.policy_store import PolicyStore
from cap_verifier.registry import Registry
from cap_verifier.retention import AuditPruner
from cap_verifier.settings import Settings

if TYPE_CHECKING:
    from litestar import Litestar

STATE_KEY = "services"


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    metrics: Metrics
    registry: Registry
    policies: PolicyStore
    """The IR cache in front of the registry."""
    audit: AuditWriter
    pruner: AuditPruner
    """Prunes a SQLite registry's audit table on a schedule."""
    jwks: JWKSCache
    validator: TokenValidator
    client_certs: ClientCertPolicy
    build: str | None

    def dependencies(self) -> dict[str, Provide]:
        """What a route handler may name as a parameter, each bound to this worker's object."""
        provided: dict[str, object] = {
            "registry": self.registry,
            "policies": self.policies,
            "audit": self.audit,
            "jwks": self.jwks,
            "metrics": self.metrics,
            "build": self.build,
            "json_body": JsonBodyReader(self.settings.limits.max_json_depth),
        }
        return {
            name: Provide(_constant(value), use_cache=True, sync_to_thread=False)
            for name, value in provided.items()
        }


def _constant(value: object) -> Callable[[], Any]:
    """A provider that always returns ``value``."""
    return lambda: value


def services_of(app: Litestar | Any) -> Services:
    services: Services = app.state[STATE_KEY]
    return services
