"""``model(cfg) -> list[dict]``: every Kubernetes object of one environment, in a stable order.

Each object carries its Argo CD sync wave (namespaces and plain config, then custom resources,
then the workload; :mod:`infra.platform`), and custom resources also
``SkipDryRunOnMissingResource`` so that the first sync can apply them after their CRDs arrive.
The Pulumi program orders its resources by the same waves.
"""

from __future__ import annotations

from infra.config import EnvConfig
from infra.model import (
    certs,
    dashboards,
    database,
    gateway,
    monitoring,
    namespace,
    network,
    scaling,
    secrets,
    service,
    workload,
)
from infra.model.common import Manifest
from infra.platform import (
    WAVE_CUSTOM_RESOURCES,
    WAVE_NAMESPACE,
    WAVE_PLATFORM_RESOURCES,
    WAVE_SERVICE,
)

__all__ = [
    "CORE_GROUPS",
    "SYNC_OPTIONS_ANNOTATION",
    "WAVE_ANNOTATION",
    "Manifest",
    "model",
    "sync_wave",
]

WAVE_ANNOTATION = "argocd.argoproj.io/sync-wave"
SYNC_OPTIONS_ANNOTATION = "argocd.argoproj.io/sync-options"
CORE_GROUPS = frozenset({"", "apps", "autoscaling", "policy", "networking.k8s.io", "batch"})
# Cluster-wide custom resources other objects refer to.
_PLATFORM_KINDS = frozenset({"GatewayClass", "ClusterIssuer", "ClusterSecretStore"})
_SERVICE_KINDS = frozenset(
    {"Deployment", "Rollout", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
)


def group(obj: Manifest) -> str:
    api_version: str = obj["apiVersion"]
    return api_version.rpartition("/")[0]


def sync_wave(obj: Manifest) -> int:
    """Namespaces and config first, then custom resources, then the workload."""
    kind = obj["kind"]
    if kind in _PLATFORM_KINDS:
        return WAVE_PLATFORM_RESOURCES
    if kind in _SERVICE_KINDS:
        return WAVE_SERVICE
    if group(obj) in CORE_GROUPS:
        return WAVE_NAMESPACE
    return WAVE_CUSTOM_RESOURCES


def _annotate(obj: Manifest) -> Manifest:
    annotations = dict(obj["metadata"].get("annotations", {}))
    annotations[WAVE_ANNOTATION] = str(sync_wave(obj))
    if group(obj) not in CORE_GROUPS:
        annotations[SYNC_OPTIONS_ANNOTATION] = "SkipDryRunOnMissingResource=true"
    return {**obj, "metadata": {**obj["metadata"], "annotations": annotations}}


def model(cfg: EnvConfig) -> list[Manifest]:
    """Plain manifests for ``cfg``; a pure function of the config."""
    objects = [
        *namespace.objects(cfg),
        *network.objects(cfg),
        *secrets.objects(cfg),
        *database.objects(cfg),
        *workload.objects(cfg),
        *service.objects(cfg),
        *scaling.objects(cfg),
        *certs.objects(cfg),
        *gateway.objects(cfg),
        *monitoring.objects(cfg),
        *dashboards.objects(cfg),
    ]
    return [_annotate(obj) for obj in objects]
