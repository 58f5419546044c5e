"""NetworkPolicies: deny all, then open exactly what the verifier needs."""

from __future__ import annotations

from typing import Any

from infra.charts import ENVOY_GATEWAY, KUBE_PROMETHEUS_STACK
from infra.config import EnvConfig
from infra.model.common import APP, PORT, Manifest, metadata, selector_labels

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def namespace_selector(name: str) -> dict[str, Any]:
    return {"matchLabels": {NAMESPACE_NAME_LABEL: name}}


def dns_egress(cfg: EnvConfig) -> dict[str, Any]:
    """Egress to kube-dns only, by namespace and pod labels, on 53 UDP and TCP."""
    return {
        "to": [
            {
                "namespaceSelector": namespace_selector(cfg.cluster.dns_namespace),
                "podSelector": {"matchLabels": dict(cfg.cluster.dns_pod_labels)},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def _policy(cfg: EnvConfig, name: str, types: list[str], **rules: Any) -> Manifest:
    spec: dict[str, Any] = {"podSelector": {"matchLabels": selector_labels(cfg)}}
    spec["policyTypes"] = types
    spec.update(rules)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(cfg, name),
        "spec": spec,
    }


def default_deny(cfg: EnvConfig) -> Manifest:
    policy = _policy(cfg, "default-deny", ["Ingress", "Egress"])
    policy["spec"]["podSelector"] = {}
    return policy


def ingress(cfg: EnvConfig) -> Manifest:
    port = [{"protocol": "TCP", "port": PORT}]
    return _policy(
        cfg,
        f"{APP}-ingress",
        ["Ingress"],
        ingress=[
            {
                "from": [{"namespaceSelector": namespace_selector(ENVOY_GATEWAY.namespace)}],
                "ports": port,
            },
            {
                "from": [
                    {"namespaceSelector": namespace_selector(KUBE_PROMETHEUS_STACK.namespace)}
                ],
                "ports": port,
            },
        ],
    )


def egress(cfg: EnvConfig) -> Manifest:
    rules: list[dict[str, Any]] = [
        dns_egress(cfg),
        {
            "to": [{"ipBlock": {"cidr": cfg.oauth2.jwks_cidr}}],
            "ports": [{"protocol": "TCP", "port": cfg.oauth2.jwks_port}],
        },
    ]
    if cfg.database is not None:
        rules.append(
            {
                "to": [
                    {
                        "namespaceSelector": namespace_selector(cfg.database.namespace),
                        "podSelector": {"matchLabels": dict(cfg.database.pod_labels)},
                    }
                ],
                "ports": [{"protocol": "TCP", "port": cfg.database.port}],
            }
        )
    return _policy(cfg, f"{APP}-egress", ["Egress"], egress=rules)


def objects(cfg: EnvConfig) -> list[Manifest]:
    return [default_deny(cfg), ingress(cfg), egress(cfg)]
