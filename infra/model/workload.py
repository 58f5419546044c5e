"""ServiceAccount, ConfigMap (service config), registry PVC (SQLite) and the Deployment."""

from __future__ import annotations

import hashlib
import io
from typing import Any

from ruamel.yaml import YAML

from infra.config import DIGEST_ENVIRONMENTS, EnvConfig
from infra.model.common import (
    APP,
    CONFIG_DIR,
    CONFIG_FILE,
    PORT,
    PORT_NAME,
    UID,
    Manifest,
    labels,
    metadata,
    selector_labels,
)

CONFIG_MAP = f"{APP}-config"
REGISTRY_PVC = f"{APP}-registry"
REGISTRY_SECRET = f"{APP}-registry"


def image(cfg: EnvConfig) -> str:
    """The image reference; staging and prod refuse anything but a digest."""
    if cfg.env in DIGEST_ENVIRONMENTS and (cfg.image_digest is None or cfg.image_tag is not None):
        raise ValueError(f"{cfg.env}: image must be pinned by digest, not by tag")
    return cfg.image


def service_config(cfg: EnvConfig) -> dict[str, Any]:
    """The verifier's config file (README "The verifier"); TLS ends at the gateway."""
    return {
        "server": {
            "host": "0.0.0.0",  # noqa: S104 - the pod port, fenced by NetworkPolicy
            "port": PORT,
            "graceful_timeout": cfg.graceful_timeout_seconds,
        },
        "tls": {
            "enabled": False,
            "require_mtls": cfg.require_mtls,
            "allowed_client_sans": list(cfg.allowed_client_sans),
            "trusted_proxies": [cfg.gateway_cidr],
        },
        "oauth2": {
            "issuer": cfg.oauth2_issuer,
            "audience": cfg.oauth2_audience,
            "jwks_url": cfg.oauth2_jwks_url,
        },
        "registry": {"url": cfg.registry_url},
        "logging": {"level": cfg.log_level},
        "metrics": {"require_auth": False},
    }


def service_config_text(cfg: EnvConfig) -> str:
    yaml = YAML(typ="rt", pure=True)  # keeps insertion order
    yaml.indent(mapping=2, sequence=2, offset=0)
    yaml.width = 4096
    buffer = io.StringIO()
    yaml.dump(service_config(cfg), buffer)
    return buffer.getvalue()


def service_account(cfg: EnvConfig) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(cfg, APP),
        "automountServiceAccountToken": False,
    }


def config_map(cfg: EnvConfig) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(cfg, CONFIG_MAP),
        "data": {CONFIG_FILE: service_config_text(cfg)},
    }


def registry_pvc(cfg: EnvConfig) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(cfg, REGISTRY_PVC),
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": cfg.registry_storage_size}},
        },
    }


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def termination_grace_seconds(cfg: EnvConfig) -> int:
    """preStop sleep, then the server's own graceful drain, plus a little slack."""
    return cfg.prestop_sleep_seconds + cfg.graceful_timeout_seconds + 5


def container(cfg: EnvConfig) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": "CAP_VERIFIER_CONFIG", "value": f"{CONFIG_DIR}/{CONFIG_FILE}"},
    ]
    if cfg.registry_kind == "postgresql":
        env.append(
            {
                "name": "PGPASSWORD",
                "valueFrom": {
                    "secretKeyRef": {"name": REGISTRY_SECRET, "key": "password", "optional": True}
                },
            }
        )
    return {
        "name": APP,
        "image": image(cfg),
        "imagePullPolicy": "IfNotPresent",
        "args": ["serve", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        "ports": [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
        "env": env,
        "resources": {
            "requests": {"cpu": cfg.cpu_request, "memory": cfg.memory_request},
            "limits": {"cpu": cfg.cpu_limit, "memory": cfg.memory_limit},
        },
        "startupProbe": _probe("/healthz", 2, 30),
        "livenessProbe": _probe("/healthz", 10, 3),
        "readinessProbe": _probe("/readyz", 5, 2),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(cfg.prestop_sleep_seconds)]}}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir
            {"name": "data", "mountPath": "/data"},
        ],
    }


def volumes(cfg: EnvConfig) -> list[dict[str, Any]]:
    data: dict[str, Any]
    if cfg.registry_kind == "sqlite":
        data = {"name": "data", "persistentVolumeClaim": {"claimName": REGISTRY_PVC}}
    else:
        data = {"name": "data", "emptyDir": {"sizeLimit": "256Mi"}}
    return [
        {"name": "config", "configMap": {"name": CONFIG_MAP}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        data,
    ]


def pod_spec(cfg: EnvConfig) -> dict[str, Any]:
    match = {"matchLabels": selector_labels(cfg)}
    return {
        "serviceAccountName": APP,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": termination_grace_seconds(cfg),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": match,
            },
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": match,
            },
        ],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": match,
                        },
                    }
                ]
            }
        },
        "containers": [container(cfg)],
        "volumes": volumes(cfg),
    }


def deployment(cfg: EnvConfig) -> Manifest:
    config_hash = hashlib.sha256(service_config_text(cfg).encode()).hexdigest()
    strategy: dict[str, Any]
    if cfg.registry_kind == "sqlite":
        # One writer on a ReadWriteOnce volume: stop the old pod before starting the new one.
        strategy = {"type": "Recreate"}
    else:
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    spec: dict[str, Any] = {}
    if not cfg.hpa_enabled:
        spec["replicas"] = cfg.replicas
    spec |= {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": selector_labels(cfg)},
        "strategy": strategy,
        "template": {
            "metadata": {
                "labels": labels(cfg),
                "annotations": {"cap-verifier.example.com/config-sha256": config_hash},
            },
            "spec": pod_spec(cfg),
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(cfg, APP),
        "spec": spec,
    }


def objects(cfg: EnvConfig) -> list[Manifest]:
    out = [service_account(cfg), config_map(cfg)]
    if cfg.registry_kind == "sqlite":
        out.append(registry_pvc(cfg))
    out.append(deployment(cfg))
    return out
