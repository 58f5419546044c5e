"""Prometheus Operator: the ServiceMonitor and a PrometheusRule built from ``alerts/``."""

from __future__ import annotations

import copy
import re
from typing import Any

from cap_verifier import paths
from infra.artefacts import Artefacts
from infra.config import EnvConfig
from infra.model.common import APP, PORT_NAME, Manifest, metadata, selector_labels
from infra.model.rollout import HASH_LABEL

ALERTMANAGER_FILE = "alertmanager.yml"
_MATCHER = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*)(=~|!~|!=|=)"(.*)"$')
# Alertmanager's snake_case route and receiver keys -> AlertmanagerConfig's camelCase.
_CAMEL = {
    "group_by": "groupBy",
    "group_wait": "groupWait",
    "group_interval": "groupInterval",
    "repeat_interval": "repeatInterval",
    "webhook_configs": "webhookConfigs",
    "send_resolved": "sendResolved",
    "url": "url",
    "receiver": "receiver",
    "continue": "continue",
    "name": "name",
    "equal": "equal",
}


def service_monitor(cfg: EnvConfig) -> Manifest:
    spec: dict[str, Any] = {"jobLabel": "app.kubernetes.io/name"}
    if cfg.delivery.canary.enabled:
        # The canary analysis selects the new pods' series by their pod-template hash.
        spec["podTargetLabels"] = [HASH_LABEL]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(cfg, APP),
        "spec": {
            **spec,
            "selector": {"matchLabels": selector_labels(cfg)},
            "namespaceSelector": {"matchNames": [cfg.namespace]},
            "endpoints": [
                {"port": PORT_NAME, "path": paths.METRICS, "interval": "30s", "scheme": "http"}
            ],
        },
    }


def prometheus_rule(cfg: EnvConfig, artefacts: Artefacts) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata(cfg, APP),
        "spec": {"groups": copy.deepcopy(list(artefacts.rule_groups))},
    }


def _matchers(values: list[str]) -> list[dict[str, str]]:
    out = []
    for value in values:
        match = _MATCHER.match(value)
        if match is None:
            raise ValueError(f"{ALERTMANAGER_FILE}: unsupported matcher {value!r}")
        name, op, text = match.groups()
        out.append({"name": name, "matchType": op, "value": text})
    return out


def _camel(node: Any, where: str) -> Any:
    """Convert an Alertmanager routing/receiver node; an unknown key is an error, not dropped."""
    if isinstance(node, list):
        return [_camel(item, where) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "matchers":
            out["matchers"] = _matchers(value)
        elif key in ("source_matchers", "target_matchers"):
            out["sourceMatch" if key == "source_matchers" else "targetMatch"] = _matchers(value)
        elif key == "routes":
            out["routes"] = _camel(value, where)
        elif key in _CAMEL:
            out[_CAMEL[key]] = _camel(value, where)
        else:
            raise ValueError(f"{ALERTMANAGER_FILE}: {where}: unsupported key {key!r}")
    return out


def alertmanager_config(cfg: EnvConfig, artefacts: Artefacts) -> Manifest:
    """The routing tree, inhibit rules and receivers of ``alerts/alertmanager.yml``."""
    document = artefacts.alertmanager
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "AlertmanagerConfig",
        "metadata": metadata(cfg, APP),
        "spec": {
            "route": _camel(document["route"], "route"),
            "inhibitRules": _camel(document.get("inhibit_rules", []), "inhibit_rules"),
            "receivers": _camel(document["receivers"], "receivers"),
        },
    }


def objects(cfg: EnvConfig, artefacts: Artefacts) -> list[Manifest]:
    return [
        service_monitor(cfg),
        prometheus_rule(cfg, artefacts),
        alertmanager_config(cfg, artefacts),
    ]
