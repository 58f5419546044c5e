"""``model(cfg, artefacts) -> list[dict]``: every Kubernetes object of one environment, in a stable
order; a pure function of its arguments (no file I/O: :mod:`infra.artefacts` reads at the edge).

Each object carries its Argo CD sync wave (namespaces and plain config, then custom resources,
then the workload; :mod:`infra.charts`), and custom resources also
``SkipDryRunOnMissingResource`` so that the first sync can apply them after their CRDs arrive.
The Pulumi program orders its resources by the same waves.
"""

from __future__ import annotations

from infra.artefacts import Artefacts
from infra.charts import (
    WAVE_CUSTOM_RESOURCES,
    WAVE_NAMESPACE,
    WAVE_PLATFORM_RESOURCES,
    WAVE_SERVICE,
)
from infra.config import EnvConfig
from infra.model import (
    admission,
    audit,
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
from infra.model.common import Manifest, is_builtin

__all__ = [
    "SYNC_OPTIONS_ANNOTATION",
    "WAVE_ANNOTATION",
    "Manifest",
    "model",
    "sync_wave",
]

WAVE_ANNOTATION = "argocd.argoproj.io/sync-wave"
SYNC_OPTIONS_ANNOTATION = "argocd.argoproj.io/sync-options"
# Cluster-wide custom resources other objects refer to, or that admit the pods of the namespaces
# that follow them (ClusterImagePolicy).
_PLATFORM_KINDS = frozenset(
    {"GatewayClass", "ClusterIssuer", "ClusterSecretStore", "ClusterImagePolicy"}
)
_SERVICE_KINDS = frozenset(
    {
        "Deployment",
        "Rollout",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "CronJob",  # after the workload, whose init container migrates the registry
    }
)


def sync_wave(obj: Manifest) -> int:
    """Namespaces and config first, then custom resources, then the workload."""
    kind = obj["kind"]
    if kind in _PLATFORM_KINDS:
        return WAVE_PLATFORM_RESOURCES
    if kind in _SERVICE_KINDS:
        return WAVE_SERVICE
    if is_builtin(obj):
        return WAVE_NAMESPACE
    return WAVE_CUSTOM_RESOURCES


def _annotate(obj: Manifest) -> Manifest:
    annotations = dict(obj["metadata"].get("annotations", {}))
    annotations[WAVE_ANNOTATION] = str(sync_wave(obj))
    if not is_builtin(obj):
        annotations[SYNC_OPTIONS_ANNOTATION] = "SkipDryRunOnMissingResource=true"
    return {**obj, "metadata": {**obj["metadata"], "annotations": annotations}}


def model(cfg: EnvConfig, artefacts: Artefacts) -> list[Manifest]:
    """Plain manifests for ``cfg``, embedding the generated ``artefacts``."""
    objects = [
        *namespace.objects(cfg),
        *admission.objects(cfg, artefacts),
        *network.objects(cfg),
        *secrets.objects(cfg),
        *database.objects(cfg),
        *workload.objects(cfg),
        *audit.objects(cfg),
        *service.objects(cfg, artefacts),
        *scaling.objects(cfg),
        *certs.objects(cfg),
        *gateway.objects(cfg),
        *monitoring.objects(cfg, artefacts),
        *dashboards.objects(cfg, artefacts),
    ]
    return [_annotate(obj) for obj in objects]
