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

from infra.config import EnvConfig
from infra.model.common import APP, Manifest, metadata, selector_labels
from infra.platform import MONITORING_NAMESPACE, ROLLOUTS_GATEWAY_PLUGIN

ROLLOUTS_API = "argoproj.io/v1alpha1"
CANARY_SERVICE = f"{APP}-canary"
ANALYSIS_TEMPLATE = f"{APP}-canary"
CANARY_WEIGHTS = (5, 25, 50, 100)
HASH_ARG = "canary-hash"
HASH_LABEL = "rollouts-pod-template-hash"
PROMETHEUS_URL = f"http://kube-prometheus-stack-prometheus.{MONITORING_NAMESPACE}.svc:9090"
ANALYSIS_INTERVAL = "1m"
BREACH_WINDOW = "5m"

# SLO thresholds of the canary (ORR 8.1-05..07).
MAX_ERROR_RATIO = 0.01
MAX_P95_SECONDS = 0.5
MAX_5XX_PER_MINUTE = 10

API_REQUESTS = 'endpoint!~"/healthz|/readyz|/metrics"'


def _selector(canary_hash: str) -> str:
    return f'job="{APP}",{HASH_LABEL.replace("-", "_")}="{canary_hash}",{API_REQUESTS}'


def _sustained(expr: str) -> str:
    """The lowest value of ``expr`` over the breach window: above a limit only if always above."""
    return f"min_over_time(({expr})[{BREACH_WINDOW}:{ANALYSIS_INTERVAL}])"


def error_ratio_query(canary_hash: str) -> str:
    """Share of the canary's API requests answered with a 5xx (NaN without traffic)."""
    sel = _selector(canary_hash)
    errors = f'sum(rate(cap_verifier_requests_total{{{sel},result="fail"}}[1m]))'
    total = f"sum(rate(cap_verifier_requests_total{{{sel}}}[1m]))"
    return _sustained(f"({errors} or vector(0)) / ({total} or vector(0))")


def p95_latency_query(canary_hash: str) -> str:
    """p95 duration of the canary's API requests, in seconds."""
    sel = _selector(canary_hash)
    return _sustained(
        "histogram_quantile(0.95, sum by (le) "
        f"(rate(cap_verifier_request_duration_seconds_bucket{{{sel}}}[1m])))"
    )


def server_errors_per_minute_query(canary_hash: str) -> str:
    """5xx answers of the canary per minute."""
    sel = _selector(canary_hash)
    return _sustained(
        f'(sum(increase(cap_verifier_requests_total{{{sel},result="fail"}}[1m])) or vector(0))'
    )


def _metric(name: str, query: str, condition: str) -> dict[str, Any]:
    return {
        "name": name,
        "interval": ANALYSIS_INTERVAL,
        # The query already waits for a 5-minute breach: the first failure aborts.
        "failureLimit": 0,
        "consecutiveErrorLimit": 5,
        "successCondition": condition,
        "provider": {"prometheus": {"address": PROMETHEUS_URL, "query": query}},
    }


def analysis_metrics(canary_hash: str) -> list[dict[str, Any]]:
    """The analysis metrics; each passes on NaN (no traffic yet) or below its limit."""
    return [
        _metric(
            "error-rate",
            error_ratio_query(canary_hash),
            f"isNaN(result[0]) || result[0] < {MAX_ERROR_RATIO}",
        ),
        _metric(
            "p95-latency",
            p95_latency_query(canary_hash),
            f"isNaN(result[0]) || result[0] < {MAX_P95_SECONDS}",
        ),
        _metric(
            "server-errors-per-minute",
            server_errors_per_minute_query(canary_hash),
            f"isNaN(result[0]) || result[0] < {MAX_5XX_PER_MINUTE}",
        ),
    ]


def analysis_template(cfg: EnvConfig) -> Manifest:
    return {
        "apiVersion": ROLLOUTS_API,
        "kind": "AnalysisTemplate",
        "metadata": metadata(cfg, ANALYSIS_TEMPLATE),
        "spec": {
            "args": [{"name": HASH_ARG}],
            "metrics": analysis_metrics(f"{{{{args.{HASH_ARG}}}}}"),
        },
    }


def steps(cfg: EnvConfig) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for weight in CANARY_WEIGHTS:
        out.append({"setWeight": weight})
        out.append({"pause": {"duration": f"{cfg.canary_step_pause_minutes}m"}})
    return out


def rollout(cfg: EnvConfig, template: dict[str, Any]) -> Manifest:
    """The Rollout that replaces the Deployment where ``canary_enabled``."""
    return {
        "apiVersion": ROLLOUTS_API,
        "kind": "Rollout",
        "metadata": metadata(cfg, APP),
        "spec": {
            "revisionHistoryLimit": 5,
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


def objects(cfg: EnvConfig) -> list[Manifest]:
    """The canary's AnalysisTemplate (the Rollout comes from the workload, its Service from
    :mod:`infra.model.service`)."""
    return [analysis_template(cfg)] if cfg.canary_enabled else []
