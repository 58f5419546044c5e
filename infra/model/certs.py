"""cert-manager: a Let's Encrypt ClusterIssuer (HTTP-01 through the gateway) and the Certificate."""

from __future__ import annotations

from infra.config import EnvConfig
from infra.model.common import APP, Manifest, metadata

ACME_SERVERS = {
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "production": "https://acme-v02.api.letsencrypt.org/directory",
}
DURATION = "2160h"  # 90 days
RENEW_BEFORE = "744h"  # 31 days before expiry (renewed at 59 days of age): never <= 30 days left
HTTP_LISTENER = "http"


def issuer_name(cfg: EnvConfig) -> str:
    return f"letsencrypt-{cfg.edge.acme_environment}"


CERTIFICATE = f"{APP}-tls"
"""The serving Certificate and its Secret (also the name cert-manager's metrics carry)."""


def secret_name(cfg: EnvConfig) -> str:
    return CERTIFICATE


def cluster_issuer(cfg: EnvConfig) -> Manifest:
    name = issuer_name(cfg)
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "ClusterIssuer",
        "metadata": metadata(cfg, name, namespaced=False),
        "spec": {
            "acme": {
                "server": ACME_SERVERS[cfg.edge.acme_environment],
                "email": cfg.edge.acme_email,
                "privateKeySecretRef": {"name": f"{name}-account-key"},
                "solvers": [
                    {
                        "http01": {
                            "gatewayHTTPRoute": {
                                "parentRefs": [
                                    {
                                        "group": "gateway.networking.k8s.io",
                                        "kind": "Gateway",
                                        "name": APP,
                                        "namespace": cfg.namespace,
                                        "sectionName": HTTP_LISTENER,
                                    }
                                ]
                            }
                        }
                    }
                ],
            }
        },
    }


def certificate(cfg: EnvConfig) -> Manifest:
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": metadata(cfg, secret_name(cfg)),
        "spec": {
            "secretName": secret_name(cfg),
            "dnsNames": [cfg.host],
            "duration": DURATION,
            "renewBefore": RENEW_BEFORE,
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "issuerRef": {
                "group": "cert-manager.io",
                "kind": "ClusterIssuer",
                "name": issuer_name(cfg),
            },
        },
    }


def objects(cfg: EnvConfig) -> list[Manifest]:
    return [cluster_issuer(cfg), certificate(cfg)]
