"""ServiceAccount, ConfigMap (service config), registry PVC (SQLite) and the Deployment."""

from __future__ import annotations

import hashlib
import io
from typing import Any

from ruamel.yaml import YAML

from cap_verifier import paths
from infra.config import DIGEST_ENVIRONMENTS, EnvConfig
from infra.model import rollout
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
from infra.model.secrets import (
    IMAGE_PULL_SECRET,
    REGISTRY_SECRET,
    REGISTRY_URL_KEY,
    pulls_with_secret,
)

CONFIG_MAP = f"{APP}-config"
REGISTRY_PVC = f"{APP}-registry"
MIGRATE_CONTAINER = "migrate"
REGISTRY_URL_DIR = "/var/run/cap-verifier/registry"


def image(cfg: EnvConfig) -> str:
    """The image reference; staging and prod refuse anything but a digest."""
    if cfg.env in DIGEST_ENVIRONMENTS and (cfg.image.digest is None or cfg.image.tag is not None):
        raise ValueError(f"{cfg.env}: image must be pinned by digest, not by tag")
    return cfg.image.reference


def service_config(cfg: EnvConfig) -> dict[str, Any]:
    """The verifier's config file (README "The verifier"); TLS ends at the gateway."""
    return {
        "server": {
            "host": "0.0.0.0",  # noqa: S104 - the pod port, fenced by NetworkPolicy
            "port": PORT,
            "graceful_timeout": cfg.service.graceful_timeout_seconds,
            **{
                key: value
                for key, value in (
                    ("head_timeout", cfg.service.head_timeout_seconds),
                    ("body_timeout", cfg.service.body_timeout_seconds),
                )
                if value is not None
            },
        },
        "tls": {
            "enabled": False,
            "require_mtls": cfg.edge.require_mtls,
            "allowed_client_sans": list(cfg.edge.allowed_client_sans),
            "trusted_proxies": [cfg.edge.gateway_cidr],
        },
        "oauth2": {
            "issuer": cfg.oauth2.issuer,
            "audience": cfg.oauth2.audience,
            "jwks_url": cfg.oauth2.jwks_url,
        },
        "registry": _registry_config(cfg),
        "logging": {"level": cfg.service.log_level},
        "metrics": {"require_auth": False},
    }


def _registry_config(cfg: EnvConfig) -> dict[str, str]:
    if cfg.registry.kind == "sqlite":
        return {"url": cfg.registry.url}
    # url (without the password) documents the target; url_file, with it, wins.
    return {"url": cfg.registry.url, "url_file": f"{REGISTRY_URL_DIR}/{REGISTRY_URL_KEY}"}


def service_config_text(cfg: EnvConfig) -> str:
    yaml = YAML(typ="rt", pure=True)  # keeps insertion order
    yaml.indent(mapping=2, sequence=2, offset=0)
    yaml.width = 4096
    buffer = io.StringIO()
    yaml.dump(service_config(cfg), buffer)
    return buffer.getvalue()


def service_account(cfg: EnvConfig) -> Manifest:
    """The pods' identity; it carries the registry credentials where nodes have none."""
    account: Manifest = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(cfg, APP),
        "automountServiceAccountToken": False,
    }
    if pulls_with_secret(cfg):
        account["imagePullSecrets"] = [{"name": IMAGE_PULL_SECRET}]
    return account


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
            "resources": {"requests": {"storage": cfg.registry.storage_size}},
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
    return cfg.service.prestop_sleep_seconds + cfg.service.graceful_timeout_seconds + 5


def _env(cfg: EnvConfig) -> list[dict[str, Any]]:
    return [{"name": "CAP_VERIFIER_CONFIG", "value": f"{CONFIG_DIR}/{CONFIG_FILE}"}]


def _pull_policy(cfg: EnvConfig) -> str:
    """A digest never changes; a tag may, so pull it (and authenticate) every time."""
    return "IfNotPresent" if cfg.image.digest is not None else "Always"


SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": UID,
    "runAsGroup": UID,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _mounts(cfg: EnvConfig) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir
        {"name": "data", "mountPath": "/data"},
    ]
    if cfg.registry.kind == "postgresql":
        # The registry URL with its password, a file from External Secrets; never in git or env.
        mounts.append({"name": "registry-url", "mountPath": REGISTRY_URL_DIR, "readOnly": True})
    return mounts


def migrate_container(cfg: EnvConfig) -> dict[str, Any]:
    """Apply the registry migrations before the server starts (idempotent, advisory-locked)."""
    return {
        "name": MIGRATE_CONTAINER,
        "image": image(cfg),
        "imagePullPolicy": _pull_policy(cfg),
        "args": ["migrate", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        "env": _env(cfg),
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {
                "cpu": cfg.service.resources.cpu_limit,
                "memory": cfg.service.resources.memory_limit,
            },
        },
        "securityContext": dict(SECURITY_CONTEXT),
        "volumeMounts": _mounts(cfg),
    }


def container(cfg: EnvConfig) -> dict[str, Any]:
    return {
        "name": APP,
        "image": image(cfg),
        "imagePullPolicy": _pull_policy(cfg),
        "args": ["serve", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        "ports": [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
        "env": _env(cfg),
        "resources": {
            "requests": {
                "cpu": cfg.service.resources.cpu_request,
                "memory": cfg.service.resources.memory_request,
            },
            "limits": {
                "cpu": cfg.service.resources.cpu_limit,
                "memory": cfg.service.resources.memory_limit,
            },
        },
        "startupProbe": _probe(paths.HEALTHZ, 2, 30),
        "livenessProbe": _probe(paths.HEALTHZ, 10, 3),
        "readinessProbe": _probe(paths.READYZ, 5, 2),
        "lifecycle": {
            "preStop": {"exec": {"command": ["sleep", str(cfg.service.prestop_sleep_seconds)]}}
        },
        "securityContext": dict(SECURITY_CONTEXT),
        "volumeMounts": _mounts(cfg),
    }


def volumes(cfg: EnvConfig) -> list[dict[str, Any]]:
    data: dict[str, Any]
    if cfg.registry.kind == "sqlite":
        data = {"name": "data", "persistentVolumeClaim": {"claimName": REGISTRY_PVC}}
    else:
        data = {"name": "data", "emptyDir": {"sizeLimit": "256Mi"}}
    out = [
        {"name": "config", "configMap": {"name": CONFIG_MAP}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        data,
    ]
    if cfg.registry.kind == "postgresql":
        out.append(
            {
                "name": "registry-url",
                "secret": {
                    "secretName": REGISTRY_SECRET,
                    "items": [{"key": REGISTRY_URL_KEY, "path": REGISTRY_URL_KEY}],
                    "defaultMode": 0o440,  # owner and fsGroup (the service's group) read
                },
            }
        )
    return out


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
        "initContainers": [migrate_container(cfg)],
        "containers": [container(cfg)],
        "volumes": volumes(cfg),
    }


def workload(cfg: EnvConfig) -> Manifest:
    """A Deployment, or in canary environments an Argo Rollouts Rollout of the same pods."""
    config_hash = hashlib.sha256(service_config_text(cfg).encode()).hexdigest()
    strategy: dict[str, Any]
    if cfg.registry.kind == "sqlite":
        # One writer on a ReadWriteOnce volume: stop the old pod before starting the new one.
        strategy = {"type": "Recreate"}
    else:
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    spec: dict[str, Any] = {}
    if not cfg.scaling.hpa.enabled:
        spec["replicas"] = cfg.scaling.replicas
    template = {
        "metadata": {
            "labels": labels(cfg),
            "annotations": {"cap-verifier.example.com/config-sha256": config_hash},
        },
        "spec": pod_spec(cfg),
    }
    if cfg.delivery.canary.enabled:
        return rollout.rollout(cfg, template)
    spec |= {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": selector_labels(cfg)},
        "strategy": strategy,
        "template": template,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(cfg, APP),
        "spec": spec,
    }


def objects(cfg: EnvConfig) -> list[Manifest]:
    out = [service_account(cfg), config_map(cfg)]
    if cfg.registry.kind == "sqlite":
        out.append(registry_pvc(cfg))
    out.append(workload(cfg))
    return out
