"""Gateway API with Envoy Gateway: TLS 1.3 at the gateway, optional mTLS, API paths only."""

from __future__ import annotations

from typing import Any

from cap_verifier import paths
from infra.config import EnvConfig
from infra.model.certs import HTTP_LISTENER, secret_name
from infra.model.common import APP, PORT, Manifest, metadata
from infra.model.rollout import CANARY_SERVICE

GATEWAY_API = "gateway.networking.k8s.io"
ENVOY_GATEWAY = "gateway.envoyproxy.io/v1alpha1"
HTTPS_LISTENER = "https"
ENVOY_GATEWAY_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
# The API paths only: /metrics is scraped inside the cluster and never routed.
API_PATHS = paths.PUBLIC


def gateway(cfg: EnvConfig) -> Manifest:
    return {
        "apiVersion": f"{GATEWAY_API}/v1",
        "kind": "Gateway",
        "metadata": metadata(cfg, APP),
        "spec": {
            "gatewayClassName": cfg.edge.gateway_class_name,
            "listeners": [
                {
                    # Plain HTTP only for the cert-manager HTTP-01 challenge route.
                    "name": HTTP_LISTENER,
                    "protocol": "HTTP",
                    "port": 80,
                    "hostname": cfg.host,
                    "allowedRoutes": {"namespaces": {"from": "Same"}},
                },
                {
                    "name": HTTPS_LISTENER,
                    "protocol": "HTTPS",
                    "port": 443,
                    "hostname": cfg.host,
                    "tls": {
                        "mode": "Terminate",
                        "certificateRefs": [{"kind": "Secret", "name": secret_name(cfg)}],
                    },
                    "allowedRoutes": {"namespaces": {"from": "Same"}},
                },
            ],
        },
    }


def http_route(cfg: EnvConfig) -> Manifest:
    return {
        "apiVersion": f"{GATEWAY_API}/v1",
        "kind": "HTTPRoute",
        "metadata": metadata(cfg, APP),
        "spec": {
            "parentRefs": [
                {
                    "group": GATEWAY_API,
                    "kind": "Gateway",
                    "name": APP,
                    "sectionName": HTTPS_LISTENER,
                }
            ],
            "hostnames": [cfg.host],
            "rules": [
                {
                    "matches": [
                        {"path": {"type": "PathPrefix", "value": path}} for path in API_PATHS
                    ],
                    "backendRefs": backend_refs(cfg),
                }
            ],
        },
    }


def backend_refs(cfg: EnvConfig) -> list[dict[str, Any]]:
    """The Service; with the canary, also the canary Service, whose weight Argo Rollouts moves."""
    if not cfg.delivery.canary.enabled:
        return [{"kind": "Service", "name": APP, "port": PORT}]
    return [
        {"kind": "Service", "name": APP, "port": PORT, "weight": 100},
        {"kind": "Service", "name": CANARY_SERVICE, "port": PORT, "weight": 0},
    ]


def https_redirect(cfg: EnvConfig) -> Manifest:
    """Plain HTTP answers 301 to HTTPS; ACME's exact challenge paths take precedence over ``/``."""
    return {
        "apiVersion": f"{GATEWAY_API}/v1",
        "kind": "HTTPRoute",
        "metadata": metadata(cfg, f"{APP}-https-redirect"),
        "spec": {
            "parentRefs": [
                {
                    "group": GATEWAY_API,
                    "kind": "Gateway",
                    "name": APP,
                    "sectionName": HTTP_LISTENER,
                }
            ],
            "hostnames": [cfg.host],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "filters": [
                        {
                            "type": "RequestRedirect",
                            "requestRedirect": {"scheme": "https", "statusCode": 301},
                        }
                    ],
                }
            ],
        },
    }


TLS_HANDSHAKE_SECONDS = 10
"""The TLS handshake limit of the pods' server (granian's TLS listener, fixed)."""
IDLE_CLIENT_SECONDS = 60
"""How long Envoy keeps an idle client connection (Envoy's default is an hour)."""


def envoy_duration(seconds: float) -> str:
    """A Gateway API duration: whole seconds, else milliseconds (``2500ms``)."""
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{round(seconds * 1000)}ms"


def gateway_class(cfg: EnvConfig) -> Manifest:
    """The class the Gateway names, served by the Envoy Gateway controller."""
    return {
        "apiVersion": f"{GATEWAY_API}/v1",
        "kind": "GatewayClass",
        "metadata": metadata(cfg, cfg.edge.gateway_class_name, namespaced=False),
        "spec": {"controllerName": ENVOY_GATEWAY_CONTROLLER},
    }


def _san_matchers(sans: tuple[str, ...]) -> list[dict[str, str]]:
    """``*.clients.example.com`` -> Suffix ``.clients.example.com``; anything else Exact."""
    return [
        {"type": "Suffix", "value": san[1:]}
        if san.startswith("*.")
        else {"type": "Exact", "value": san}
        for san in sans
    ]


def client_traffic_policy(cfg: EnvConfig) -> Manifest:
    # With minVersion 1.3 the suites are TLS 1.3's fixed AEAD set (AES-GCM, CHACHA20-POLY1305):
    # the CRD rejects `ciphers` ("no effect if the minimum possible TLS version is 1.3").
    tls: dict[str, Any] = {
        "minVersion": "1.3",
        "maxVersion": "1.3",
        "alpnProtocols": ["h2", "http/1.1"],
    }
    head, body = cfg.service.head_timeout, cfg.service.body_timeout
    spec: dict[str, Any] = {
        "targetRefs": [
            {"group": GATEWAY_API, "kind": "Gateway", "name": APP, "sectionName": HTTPS_LISTENER}
        ],
        "tls": tls,
        # The service's own deadlines, enforced at the edge first: a silent or slow client is
        # cut off by Envoy before it holds a connection to a pod.
        "timeout": {
            "tcp": {"tlsHandshakeTimeout": envoy_duration(TLS_HANDSHAKE_SECONDS)},
            "http": {
                "requestHeadersReceivedTimeout": envoy_duration(head),
                "requestReceivedTimeout": envoy_duration(head + body),
                "idleTimeout": envoy_duration(IDLE_CLIENT_SECONDS),
            },
        },
        "connection": {"connectionLimit": {"value": cfg.edge.connection_limit}},
    }
    if cfg.edge.require_mtls:
        tls["clientValidation"] = {
            "caCertificateRefs": [{"kind": "Secret", "name": cfg.edge.mtls_ca_secret}],
            "subjectAltNames": {"dnsNames": _san_matchers(cfg.edge.allowed_client_sans)},
        }
        spec["headers"] = {
            "xForwardedClientCert": {
                "mode": "SanitizeSet",
                "certDetailsToAdd": ["Subject", "DNS", "URI"],
            }
        }
    else:
        spec["headers"] = {"xForwardedClientCert": {"mode": "Sanitize"}}
    return {
        "apiVersion": ENVOY_GATEWAY,
        "kind": "ClientTrafficPolicy",
        "metadata": metadata(cfg, APP),
        "spec": spec,
    }


def backend_traffic_policy(cfg: EnvConfig) -> Manifest:
    return {
        "apiVersion": ENVOY_GATEWAY,
        "kind": "BackendTrafficPolicy",
        "metadata": metadata(cfg, APP),
        "spec": {
            "targetRefs": [{"group": GATEWAY_API, "kind": "HTTPRoute", "name": APP}],
            "rateLimit": {
                "type": "Local",
                "local": {
                    "rules": [
                        {
                            "limit": {
                                "requests": cfg.edge.rate_limit.requests,
                                "unit": cfg.edge.rate_limit.unit,
                            }
                        }
                    ]
                },
            },
            "timeout": {
                "http": {
                    "requestTimeout": f"{cfg.edge.request_timeout_seconds}s",
                    # Below the pods' idle limit (their head timeout), so that Envoy never sends
                    # a request on a connection the pod is closing.
                    "connectionIdleTimeout": envoy_duration(cfg.service.head_timeout / 2),
                }
            },
        },
    }


def objects(cfg: EnvConfig) -> list[Manifest]:
    return [
        gateway_class(cfg),
        gateway(cfg),
        http_route(cfg),
        https_redirect(cfg),
        client_traffic_policy(cfg),
        backend_traffic_policy(cfg),
    ]
