"""Prometheus Operator: the ServiceMonitor and a PrometheusRule built from ``alerts/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from infra.config import REPO_ROOT, EnvConfig
from infra.model.common import APP, PORT_NAME, Manifest, metadata, selector_labels

RULES_DIR = REPO_ROOT / "alerts"
RULES_GLOB = "*.rules.yaml"


def rule_groups(directory: Path = RULES_DIR) -> list[dict[str, Any]]:
    """The ``groups`` of every ``alerts/*.rules.yaml``, in file-name order."""
    yaml = YAML(typ="safe", pure=True)
    groups: list[dict[str, Any]] = []
    for path in sorted(directory.glob(RULES_GLOB)):
        document = yaml.load(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or not isinstance(document.get("groups"), list):
            raise ValueError(f"{path.name}: groups: expected a list")
        groups.extend(document["groups"])
    if not groups:
        raise ValueError(f"{directory}: no rule groups in {RULES_GLOB}")
    return groups


def service_monitor(cfg: EnvConfig) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(cfg, APP),
        "spec": {
            "jobLabel": "app.kubernetes.io/name",
            "selector": {"matchLabels": selector_labels(cfg)},
            "namespaceSelector": {"matchNames": [cfg.namespace]},
            "endpoints": [
                {"port": PORT_NAME, "path": "/metrics", "interval": "30s", "scheme": "http"}
            ],
        },
    }


def prometheus_rule(cfg: EnvConfig) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata(cfg, APP),
        "spec": {"groups": rule_groups()},
    }


def objects(cfg: EnvConfig) -> list[Manifest]:
    return [service_monitor(cfg), prometheus_rule(cfg)]
