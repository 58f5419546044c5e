"""Prometheus Operator: the ServiceMonitor, the black-box Probe of the public endpoint, a
PrometheusRule built from ``alerts/``, and an AlertmanagerConfig converted from
``alerts/alertmanager.yml`` with the Secret its integration keys come from.

The repository's Alertmanager file reads every integration key from a file under
``/etc/alertmanager/secrets/<secret>/<key>`` (the layout kube-prometheus-stack mounts secrets
in); the conversion turns each such file into a reference to key ``<key>`` of Secret
``<secret>``, and that Secret is an ExternalSecret of ``<secrets.key_prefix>/alerting``. An
unknown key of the file is an error, never dropped.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from cap_verifier import paths
from infra.artefacts import Artefacts
from infra.charts import BLACKBOX_EXPORTER
from infra.config import EnvConfig
from infra.model.common import APP, PORT_NAME, Manifest, metadata, selector_labels
from infra.model.rollout import HASH_LABEL
from infra.model.secrets import external_secret

ALERTMANAGER_FILE = "alertmanager.yml"
SECRETS_DIR = "/etc/alertmanager/secrets/"
"""Where the repository's Alertmanager file reads its integration keys from."""
ALERTING_REMOTE_KEY = "alerting"
"""The secret manager entry (under ``secrets.key_prefix``) holding the integration keys."""
BLACKBOX_PORT = 9115
UNTRUSTED_CA_SUFFIX = "_untrusted_ca"
"""The probe module for endpoints with ACME staging certificates (infra.charts defines both)."""
# Alertmanager's ``*_file`` keys -> the AlertmanagerConfig's secret references.
_SECRET_FILES = {
    "routing_key_file": "routingKey",
    "service_key_file": "serviceKey",
    "api_key_file": "apiKey",
    "api_url_file": "apiURL",
}
_IGNORED = {
    "global": "Alertmanager-wide settings belong to the cluster's Alertmanager (the chart values),"
    " an AlertmanagerConfig has none",
}
_MATCHER = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*)(=~|!~|!=|=)"(.*)"$')
# Alertmanager's snake_case route and receiver keys -> AlertmanagerConfig's camelCase.
_CAMEL = {
    "group_by": "groupBy",
    "group_wait": "groupWait",
    "group_interval": "groupInterval",
    "repeat_interval": "repeatInterval",
    "webhook_configs": "webhookConfigs",
    "pagerduty_configs": "pagerdutyConfigs",
    "opsgenie_configs": "opsgenieConfigs",
    "slack_configs": "slackConfigs",
    "send_resolved": "sendResolved",
    "url": "url",
    "api_url": "apiURL",
    "receiver": "receiver",
    "continue": "continue",
    "name": "name",
    "equal": "equal",
    "mute_time_intervals": "muteTimeIntervals",
    "active_time_intervals": "activeTimeIntervals",
    "severity": "severity",
    "description": "description",
    "priority": "priority",
    "message": "message",
    "source": "source",
    "tags": "tags",
    "note": "note",
    "channel": "channel",
    "title": "title",
    "text": "text",
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


def secret_ref(path: str, where: str) -> dict[str, str]:
    """``/etc/alertmanager/secrets/<secret>/<key>`` -> ``{"name": secret, "key": key}``."""
    secret, _, key = path.removeprefix(SECRETS_DIR).partition("/")
    if not path.startswith(SECRETS_DIR) or not secret or not key or "/" in key:
        raise ValueError(
            f"{ALERTMANAGER_FILE}: {where}: {path!r} is not {SECRETS_DIR}<secret>/<key>"
        )
    return {"name": secret, "key": key}


def _links(value: list[dict[str, str]], where: str) -> list[dict[str, str]]:
    links = []
    for link in value:
        if set(link) - {"href", "text"}:
            raise ValueError(f"{ALERTMANAGER_FILE}: {where}: links: only href and text")
        links.append({"href": link["href"], **({"alt": link["text"]} if "text" in link else {})})
    return links


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
        elif key in _SECRET_FILES:
            out[_SECRET_FILES[key]] = secret_ref(value, where)
        elif key == "links":
            out["pagerDutyLinkConfigs"] = _links(value, where)
        elif key in _CAMEL:
            out[_CAMEL[key]] = _camel(value, where)
        else:
            raise ValueError(f"{ALERTMANAGER_FILE}: {where}: unsupported key {key!r}")
    return out


def _range(text: str) -> dict[str, int]:
    start, _, end = str(text).partition(":")
    return {"start": int(start), "end": int(end or start)}


def _time_interval(interval: dict[str, Any], where: str) -> dict[str, Any]:
    """One Alertmanager time interval -> the AlertmanagerConfig's form (times are UTC)."""
    out: dict[str, Any] = {}
    for key, value in interval.items():
        if key == "weekdays":
            out["weekdays"] = list(value)
        elif key == "days_of_month":
            out["daysOfMonth"] = [_range(v) for v in value]
        elif key == "months":
            out["months"] = list(value)
        elif key == "times":
            out["times"] = [{"startTime": t["start_time"], "endTime": t["end_time"]} for t in value]
        else:  # `location` among others: the AlertmanagerConfig knows UTC only
            raise ValueError(f"{ALERTMANAGER_FILE}: {where}: unsupported key {key!r}")
    return out


def _mute_time_intervals(document: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": entry["name"],
            "timeIntervals": [
                _time_interval(interval, f"time_intervals {entry['name']}")
                for interval in entry["time_intervals"]
            ],
        }
        for entry in document.get("time_intervals", [])
    ]


def secret_files(document: Any) -> dict[str, list[str]]:
    """Secret name -> its keys, of every integration key file the Alertmanager file reads."""
    found: dict[str, set[str]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _SECRET_FILES:
                    ref = secret_ref(value, key)
                    found.setdefault(ref["name"], set()).add(ref["key"])
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(document.get("receivers", []))
    return {name: sorted(keys) for name, keys in sorted(found.items())}


def alertmanager_config(cfg: EnvConfig, artefacts: Artefacts) -> Manifest:
    """The routing tree, time intervals, inhibit rules and receivers of
    ``alerts/alertmanager.yml``."""
    document = artefacts.alertmanager
    known = {"route", "inhibit_rules", "receivers", "time_intervals", *_IGNORED}
    unknown = sorted(set(document) - known)
    if unknown:
        raise ValueError(f"{ALERTMANAGER_FILE}: unsupported key {unknown[0]!r}")
    spec: dict[str, Any] = {
        "route": _camel(document["route"], "route"),
        "inhibitRules": _camel(document.get("inhibit_rules", []), "inhibit_rules"),
        "receivers": _camel(document["receivers"], "receivers"),
    }
    intervals = _mute_time_intervals(document)
    if intervals:
        spec["muteTimeIntervals"] = intervals
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "AlertmanagerConfig",
        "metadata": metadata(cfg, APP),
        "spec": spec,
    }


def alerting_secrets(cfg: EnvConfig, artefacts: Artefacts) -> list[Manifest]:
    """An ExternalSecret for every Secret the AlertmanagerConfig reads its keys from."""
    return [
        external_secret(cfg, name, cfg.namespace, ALERTING_REMOTE_KEY, {key: key for key in keys})
        for name, keys in secret_files(artefacts.alertmanager).items()
    ]


def probe_module(cfg: EnvConfig, artefacts: Artefacts) -> str:
    """The blackbox module: certificates verified, except ACME staging ones (no trust store
    holds their CA; their expiry is still measured)."""
    module = artefacts.monitoring.probe.module
    return module if cfg.edge.acme_environment == "production" else module + UNTRUSTED_CA_SUFFIX


def probe(cfg: EnvConfig, artefacts: Artefacts) -> Manifest:
    """The black-box probe of /healthz through the public endpoint (the Gateway), as clients
    go: an outage in front of healthy pods still shows."""
    table = artefacts.monitoring.probe
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Probe",
        "metadata": metadata(cfg, f"{APP}-healthz"),
        "spec": {
            "jobName": table.job,
            "interval": table.interval,
            "module": probe_module(cfg, artefacts),
            "prober": {
                "url": f"{BLACKBOX_EXPORTER.name}.{BLACKBOX_EXPORTER.namespace}.svc:{BLACKBOX_PORT}"
            },
            "targets": {"staticConfig": {"static": [f"https://{cfg.host}{paths.HEALTHZ}"]}},
        },
    }


def objects(cfg: EnvConfig, artefacts: Artefacts) -> list[Manifest]:
    return [
        service_monitor(cfg),
        probe(cfg, artefacts),
        prometheus_rule(cfg, artefacts),
        alertmanager_config(cfg, artefacts),
        *alerting_secrets(cfg, artefacts),
    ]
