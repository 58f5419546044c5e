"""The URL paths of the service, each written once (routes, probes, rate limits, logs, infra)."""

from __future__ import annotations

HEALTHZ = "/healthz"
"""Liveness: 200 while the process serves."""
READYZ = "/readyz"
"""Readiness: 200 when the registry answers and signing keys are loaded, else 503."""
METRICS = "/metrics"
"""Prometheus metrics; on the pod port only, never routed to the public."""
OPENAPI = "/openapi.yaml"
"""The published contract."""
PROBES = (HEALTHZ, READYZ)
"""The paths of the container probes."""

POLICY = "/policy"
"""Prefix of every policy route: v1 (``/policy/compile``, ``/policy/{id}``) and PolicyV2
(``/policy/v2/compile``, ``/policy/v2/{id}``)."""
VERIFY = "/verify"
"""``POST /verify``."""
API = (POLICY, VERIFY)
"""The prefixes of the authenticated API."""
PUBLIC = (*PROBES, OPENAPI, *API)
"""Every path prefix a client outside the pod may reach (all but ``/metrics``)."""
OPERATIONAL = (*PROBES, METRICS)
"""The paths the platform calls (probes, scrapes): never rate limited, and logged at DEBUG
when they succeed."""
