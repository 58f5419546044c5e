"""Namespace (Pod Security "restricted", image admission), ResourceQuota and LimitRange."""

from __future__ import annotations

import re

from infra.charts import POLICY_INCLUDE_LABEL
from infra.config import EnvConfig
from infra.model.common import APP, Manifest, labels, metadata

POD_SECURITY_LEVEL = "restricted"


def _scale(quantity: str, factor: int) -> str:
    """Multiply a CPU/memory quantity such as ``500m`` or ``512Mi`` by ``factor``."""
    match = re.fullmatch(r"([0-9]+)([A-Za-z]*)", quantity)
    if match is None:
        raise ValueError(f"not an integer quantity: {quantity!r}")
    digits, suffix = match.groups()
    return f"{int(digits) * factor}{suffix}"


def namespace(cfg: EnvConfig) -> Manifest:
    """The service's namespace, where policy-controller admits only signed images
    (:mod:`infra.model.admission`)."""
    ns = restricted_namespace(cfg, cfg.namespace)
    ns["metadata"]["labels"][POLICY_INCLUDE_LABEL] = "true"
    return ns


def restricted_namespace(cfg: EnvConfig, name: str) -> Manifest:
    """A namespace with Pod Security "restricted" enforced, audited and warned."""
    ns_labels = {
        **labels(cfg),
        "pod-security.kubernetes.io/enforce": POD_SECURITY_LEVEL,
        "pod-security.kubernetes.io/audit": POD_SECURITY_LEVEL,
        "pod-security.kubernetes.io/warn": POD_SECURITY_LEVEL,
    }
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": ns_labels},
    }


def resource_quota(cfg: EnvConfig) -> Manifest:
    pods = cfg.scaling.quota_pods
    hard = {
        "pods": str(pods),
        "requests.cpu": _scale(cfg.service.resources.cpu_request, pods),
        "requests.memory": _scale(cfg.service.resources.memory_request, pods),
        "limits.cpu": _scale(cfg.service.resources.cpu_limit, pods),
        "limits.memory": _scale(cfg.service.resources.memory_limit, pods),
        "persistentvolumeclaims": "1" if cfg.registry.kind == "sqlite" else "0",
        "services.loadbalancers": "0",
        "services.nodeports": "0",
    }
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": metadata(cfg, APP),
        "spec": {"hard": hard},
    }


def limit_range(cfg: EnvConfig) -> Manifest:
    container = {
        "type": "Container",
        "default": {
            "cpu": cfg.service.resources.cpu_limit,
            "memory": cfg.service.resources.memory_limit,
        },
        "defaultRequest": {
            "cpu": cfg.service.resources.cpu_request,
            "memory": cfg.service.resources.memory_request,
        },
        "max": {
            "cpu": cfg.service.resources.cpu_limit,
            "memory": cfg.service.resources.memory_limit,
        },
    }
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": metadata(cfg, APP),
        "spec": {"limits": [container]},
    }


def objects(cfg: EnvConfig) -> list[Manifest]:
    return [namespace(cfg), resource_quota(cfg), limit_range(cfg)]
