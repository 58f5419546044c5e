"""The ClusterIP Service in front of the pods (port 8080, named http)."""

from __future__ import annotations

from infra.artefacts import Artefacts
from infra.config import EnvConfig
from infra.model import rollout
from infra.model.common import APP, PORT, PORT_NAME, Manifest, metadata, selector_labels


def service(cfg: EnvConfig, name: str = APP) -> Manifest:
    """A ClusterIP Service on the pods' port; the canary's Service too (Argo Rollouts adds the
    pod-template hash to its selector)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(cfg, name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(cfg),
            "ports": [
                {"name": PORT_NAME, "port": PORT, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }


def objects(cfg: EnvConfig, artefacts: Artefacts) -> list[Manifest]:
    canary = [service(cfg, rollout.CANARY_SERVICE)] if cfg.delivery.canary.enabled else []
    return [service(cfg), *canary, *rollout.objects(cfg, artefacts.monitoring)]
