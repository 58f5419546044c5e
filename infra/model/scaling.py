"""HorizontalPodAutoscaler (autoscaling/v2) and PodDisruptionBudget."""

from __future__ import annotations

from infra.config import EnvConfig
from infra.model.common import APP, Manifest, metadata, selector_labels

CPU_UTILIZATION = 60
MEMORY_UTILIZATION = 70
SCALE_UP_PODS = 5
SCALE_UP_PERIOD = 60
SCALE_DOWN_PODS = 1
SCALE_DOWN_PERIOD = 300


def _resource(name: str, utilization: int) -> dict[str, object]:
    return {
        "type": "Resource",
        "resource": {
            "name": name,
            "target": {"type": "Utilization", "averageUtilization": utilization},
        },
    }


def scale_target(cfg: EnvConfig) -> dict[str, str]:
    """The workload: the Rollout where the canary is on, else the Deployment."""
    if cfg.delivery.canary.enabled:
        return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": APP}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP}


def hpa(cfg: EnvConfig) -> Manifest:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(cfg, APP),
        "spec": {
            "scaleTargetRef": scale_target(cfg),
            "minReplicas": cfg.scaling.hpa.min_replicas,
            "maxReplicas": cfg.scaling.hpa.max_replicas,
            "metrics": [
                _resource("cpu", CPU_UTILIZATION),
                _resource("memory", MEMORY_UTILIZATION),
            ],
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "selectPolicy": "Max",
                    "policies": [
                        {"type": "Pods", "value": SCALE_UP_PODS, "periodSeconds": SCALE_UP_PERIOD}
                    ],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": cfg.scaling.hpa.scale_down_stabilization_seconds,
                    "selectPolicy": "Min",
                    "policies": [
                        {
                            "type": "Pods",
                            "value": SCALE_DOWN_PODS,
                            "periodSeconds": SCALE_DOWN_PERIOD,
                        }
                    ],
                },
            },
        },
    }


def pdb(cfg: EnvConfig) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(cfg, APP),
        "spec": {
            "minAvailable": cfg.scaling.pdb_min_available,
            "selector": {"matchLabels": selector_labels(cfg)},
        },
    }


def objects(cfg: EnvConfig) -> list[Manifest]:
    out: list[Manifest] = []
    if cfg.scaling.hpa.enabled:
        out.append(hpa(cfg))
    if cfg.scaling.pdb_min_available > 0:
        out.append(pdb(cfg))
    return out
