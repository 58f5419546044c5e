"""``model(cfg) -> list[dict]``: every Kubernetes object of one environment, in a stable order."""

from __future__ import annotations

from infra.config import EnvConfig
from infra.model import (
    certs,
    gateway,
    monitoring,
    namespace,
    network,
    scaling,
    service,
    workload,
)
from infra.model.common import Manifest

__all__ = ["Manifest", "model"]


def model(cfg: EnvConfig) -> list[Manifest]:
    """Plain manifests for ``cfg``; a pure function of the config."""
    return [
        *namespace.objects(cfg),
        *network.objects(cfg),
        *workload.objects(cfg),
        *service.objects(cfg),
        *scaling.objects(cfg),
        *certs.objects(cfg),
        *gateway.objects(cfg),
        *monitoring.objects(cfg),
    ]
