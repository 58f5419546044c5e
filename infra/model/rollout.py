"""The prod canary with Argo Rollouts: 5 → 25 → 50 → 100 % of the traffic, 15 minutes a step.

Traffic is split on the HTTPRoute by the Gateway API plugin (exact weights, not pod ratios): the
route sends to the stable Service and to ``cap-verifier-canary``, and the controller moves the
weights. A background analysis queries Prometheus every minute on the canary's pods only (the
ServiceMonitor copies the ``rollouts-pod-template-hash`` pod label onto the series) and aborts the
rollout, sending all traffic back to the stable pods, at the first failed measurement.

Each query answers "has the SLO been breached for the whole of the last 5 minutes?" (a
``min_over_time`` over a 5-minute subquery), so a blip does not roll back and a breach lasting more
than 5 minutes does (ORR 8.1-08). A canary that has served nothing yet measures NaN, which passes.
"""

from __future__ import annotations

from typing import Any

from cap_ops.monitoring import Monitoring
from infra.charts import KUBE_PROMETHEUS_STACK, ROLLOUTS_GATEWAY_PLUGIN
from infra.config import EnvConfig
from infra.model.common import APP, Manifest, metadata, selector_labels

ROLLOUTS_API = "argoproj.io/v1alpha1"
CANARY_SERVICE = f"{APP}-canary"
ANALYSIS_TEMPLATE = f"{APP}-canary"
CANARY_WEIGHTS = (5, 25, 50, 100)
HASH_ARG = "canary-hash"
HASH_LABEL = "rollouts-pod-template-hash"
ROLLBACK_WINDOW_REVISIONS = 3
"""Going back to one of the last three revisions (playbooks/rollback.yml) skips the canary
steps: the old version has been measured already, and a rollback must finish in minutes."""
PROMETHEUS_URL = (
    f"http://{KUBE_PROMETHEUS_STACK.name}-prometheus.{KUBE_PROMETHEUS_STACK.namespace}.svc:9090"
)


class CanaryQueries:
    """The analysis queries on one canary's API requests, limits from the monitoring table
    (``canary`` and the latency objective ``slo``)."""

    def __init__(self, table: Monitoring, canary_hash: str) -> None:
        self.table = table
        hash_matcher = f'{HASH_LABEL.replace("-", "_")}="{canary_hash}"'
        self.selector = table.api(f"{table.selector},{hash_matcher}")

    def _sustained(self, expr: str) -> str:
        """The lowest value of ``expr`` over the breach window: above a limit only if always
        above."""
        canary = self.table.canary
        return f"min_over_time(({expr})[{canary.breach_window}:{canary.interval}])"

    def error_ratio(self) -> str:
        """Share of the canary's API requests answered with a 5xx (NaN without traffic)."""
        errors = f'sum(rate(cap_verifier_requests_total{{{self.selector},result="fail"}}[1m]))'
        total = f"sum(rate(cap_verifier_requests_total{{{self.selector}}}[1m]))"
        return self._sustained(f"({errors} or vector(0)) / ({total} or vector(0))")

    def latency(self) -> str:
        """The latency objective's quantile of the canary's API request durations, in seconds."""
        return self._sustained(
            f"histogram_quantile({self.table.slo.latency_quantile:g}, sum by (le) "
            f"(rate(cap_verifier_request_duration_seconds_bucket{{{self.selector}}}[1m])))"
        )

    def server_errors_per_minute(self) -> str:
        """5xx answers of the canary per minute."""
        return self._sustained(
            "(sum(increase(cap_verifier_requests_total"
            f'{{{self.selector},result="fail"}}[1m])) or vector(0))'
        )


def _metric(table: Monitoring, name: str, query: str, limit: float) -> dict[str, Any]:
    """One analysis metric; it passes on NaN (no traffic yet) or below ``limit``."""
    return {
        "name": name,
        "interval": table.canary.interval,
        # The query already waits for a breach over the whole window: the first failure aborts.
        "failureLimit": 0,
        "consecutiveErrorLimit": 5,
        "successCondition": f"isNaN(result[0]) || result[0] < {limit:g}",
        "provider": {"prometheus": {"address": PROMETHEUS_URL, "query": query}},
    }


def analysis_metrics(table: Monitoring, canary_hash: str) -> list[dict[str, Any]]:
    queries = CanaryQueries(table, canary_hash)
    canary, slo = table.canary, table.slo
    return [
        _metric(table, "error-rate", queries.error_ratio(), canary.max_error_ratio),
        _metric(
            table,
            f"p{slo.latency_quantile * 100:g}-latency",
            queries.latency(),
            slo.latency_threshold_seconds,
        ),
        _metric(
            table,
            "server-errors-per-minute",
            queries.server_errors_per_minute(),
            canary.max_5xx_per_minute,
        ),
    ]


def analysis_template(cfg: EnvConfig, table: Monitoring) -> Manifest:
    return {
        "apiVersion": ROLLOUTS_API,
        "kind": "AnalysisTemplate",
        "metadata": metadata(cfg, ANALYSIS_TEMPLATE),
        "spec": {
            "args": [{"name": HASH_ARG}],
            "metrics": analysis_metrics(table, f"{{{{args.{HASH_ARG}}}}}"),
        },
    }


def steps(cfg: EnvConfig) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for weight in CANARY_WEIGHTS:
        out.append({"setWeight": weight})
        out.append({"pause": {"duration": f"{cfg.delivery.canary.step_pause_minutes}m"}})
    return out


def rollout(cfg: EnvConfig, template: dict[str, Any]) -> Manifest:
    """The Rollout that replaces the Deployment where ``delivery.canary.enabled``."""
    return {
        "apiVersion": ROLLOUTS_API,
        "kind": "Rollout",
        "metadata": metadata(cfg, APP),
        "spec": {
            "revisionHistoryLimit": 5,
            "rollbackWindow": {"revisions": ROLLBACK_WINDOW_REVISIONS},
            "selector": {"matchLabels": selector_labels(cfg)},
            "template": template,
            "strategy": {
                "canary": {
                    "stableService": APP,
                    "canaryService": CANARY_SERVICE,
                    "maxSurge": "25%",
                    "maxUnavailable": 0,
                    "abortScaleDownDelaySeconds": 30,
                    "trafficRouting": {
                        "plugins": {
                            ROLLOUTS_GATEWAY_PLUGIN: {"httpRoute": APP, "namespace": cfg.namespace}
                        }
                    },
                    "analysis": {
                        "templates": [{"templateName": ANALYSIS_TEMPLATE}],
                        "startingStep": 1,
                        "args": [
                            {
                                "name": HASH_ARG,
                                "valueFrom": {"podTemplateHashValue": "Latest"},
                            }
                        ],
                    },
                    "steps": steps(cfg),
                }
            },
        },
    }


def objects(cfg: EnvConfig, table: Monitoring) -> list[Manifest]:
    """The canary's AnalysisTemplate (the Rollout comes from the workload, its Service from
    :mod:`infra.model.service`)."""
    return [analysis_template(cfg, table)] if cfg.delivery.canary.enabled else []
