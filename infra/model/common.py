"""Names, labels and metadata shared by every object."""

from __future__ import annotations

from typing import Any

from infra.config import EnvConfig

APP = "cap-verifier"
PART_OF = "cap-verifier-ops"
PORT = 8080
PORT_NAME = "http"
CONFIG_DIR = "/etc/cap-verifier"
CONFIG_FILE = "config.yaml"
UID = 1000

Manifest = dict[str, Any]


def selector_labels(cfg: EnvConfig) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/instance": f"{APP}-{cfg.env}"}


def labels(cfg: EnvConfig) -> dict[str, str]:
    return {
        **selector_labels(cfg),
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/version": cfg.image.version,
    }


def metadata(cfg: EnvConfig, name: str, *, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespaced:
        meta["namespace"] = cfg.namespace
    meta["labels"] = labels(cfg)
    return meta


# API groups served by the Kubernetes API server itself. Every other group
# (gateway.networking.k8s.io included) is a CRD group.
BUILTIN_GROUPS = frozenset(
    {
        "",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "apps",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "internal.apiserver.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "resource.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
        "storagemigration.k8s.io",
    }
)


def api_group(api_version: str) -> str:
    """``apps/v1`` -> ``apps``; ``v1`` -> ``""`` (the core group)."""
    return api_version.rpartition("/")[0]


def is_builtin(obj: Manifest) -> bool:
    """Whether ``obj``'s kind is served by the API server itself, not by a CRD."""
    return api_group(str(obj["apiVersion"])) in BUILTIN_GROUPS
