"""The ClusterIP Service in front of the pods (port 8080, named http)."""

from __future__ import annotations

from infra.config import EnvConfig
from infra.model import rollout
from infra.model.common import APP, PORT, PORT_NAME, Manifest, metadata, selector_labels


def service(cfg: EnvConfig) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(cfg, APP),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(cfg),
            "ports": [
                {"name": PORT_NAME, "port": PORT, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }


def objects(cfg: EnvConfig) -> list[Manifest]:
    return [service(cfg), *rollout.objects(cfg)]
