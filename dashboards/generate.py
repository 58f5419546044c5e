"""Write the Grafana dashboards of ``dashboards/`` from Python (grafana-foundation-sdk).

    .venv/bin/python -m dashboards.generate           # (re)write dashboards/*.json
    .venv/bin/python -m dashboards.generate --check   # exit 1 when a committed file is not current

The output is a pure function of the monitoring table (:mod:`cap_ops.monitoring`, read from
``alerts/config.yaml``, which the alert rules read too): same table, same bytes. The log panels'
LogQL is :mod:`cap_ops.log_store`'s, which the runbooks' queries are too. Every dashboard
passes through :func:`dashboard`, the one place that applies the shared settings (uid from the
file name, tags, refresh, time zone, the ``datasource`` and ``job`` variables, panel ids).

The panels read the recording rules of ``alerts/verifier.recording.rules.yaml`` wherever one
exists, so that a panel shows what its alert sees; every threshold line is a number of the table,
coloured by the severity of the alert that watches it, and every description names that alert.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import logs as logs_builder
from grafana_foundation_sdk.builders import loki, prometheus, stat, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from infra.model.certs import CERTIFICATE
from infra.model.common import APP
from msgspec import structs

from cap_ops import log_store, monitoring
from cap_ops.durations import human_seconds
from cap_ops.generated import write_or_check
from cap_ops.monitoring import (
    AUTH_FAILURES_RATE,
    CACHE_HIT_RATIO,
    CACHE_LOOKUPS_RATE,
    REQUESTS_RATE,
    Alert,
    LatencyObjective,
    Monitoring,
    Severity,
    error_ratio,
)
from cap_verifier.typed_yaml import ConfigError

DASHBOARDS_DIR = Path(__file__).resolve().parent
ROOT = DASHBOARDS_DIR.parent

TAGS = ["cap-verifier", "generated"]
REFRESH = "30s"  # the scrape interval of the ServiceMonitor (ORR 3.1)
TIMEZONE = "utc"
TIME_FROM = "now-6h"
DATASOURCE_VARIABLE = "datasource"
JOB_VARIABLE = "job"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")
JOB = f'job=~"${JOB_VARIABLE}"'
"""The matcher of every selector of the service's series: what the alerts select on."""
LOGS_DATASOURCE_VARIABLE = "loki_datasource"
LOGS_DATASOURCE = model.DataSourceRef(type_val="loki", uid=f"${{{LOGS_DATASOURCE_VARIABLE}}}")
NAMESPACE_VARIABLE = "namespace"
"""The namespace whose logs the log panels read, one of those Loki holds lines of the app in."""
REQUEST_ID_VARIABLE = log_store.REQUEST_ID_VARIABLE.removeprefix("$")

SLI_WINDOW = "5m"
"""The window of the recording rules the alerts read (HighErrorRate: ``error_ratio("5m")``)."""
SPIKE_WINDOW = "1m"  # FivexxSpike counts the 5xx answers of one minute
BURN_RATE_ALERT = "VerifierErrorBudgetBurn"  # configured by burn_rate_windows, not in alerts
DAY_SECONDS = 86400
RESULT_COLORS = {"ok": "green", "warn": "yellow", "fail": "red"}
SEVERITY_COLORS: dict[Severity, str] = {
    "P0": "dark-red",
    "P1": "red",
    "P2": "orange",
    "P3": "yellow",
}
"""The colour of a threshold line: the severity of the alert that fires past it."""
QUIET = "No alert watches this panel."


# --- Building blocks ------------------------------------------------------------------------


def percent(ratio: float) -> str:
    return f"{ratio * 100:g}%"


def alert_name(field_name: str) -> str:
    """The alert's name as the config spells it (``high_error_rate`` -> ``HighErrorRate``)."""
    for entry in structs.fields(monitoring.Alerts):
        if entry.name == field_name:
            return entry.encode_name
    raise KeyError(f"alerts: no alert {field_name}")


def latency_alert(t: Monitoring, objective: LatencyObjective) -> tuple[str, Alert]:
    """The alert of a latency objective: HighP95Latency for p95."""
    field_name = f"high_{objective.name}_latency"
    alert: Alert | None = getattr(t.alerts, field_name, None)
    if alert is None:
        raise ConfigError(f"alerts: no High{objective.name.upper()}Latency for slo.latency")
    return alert_name(field_name), alert


def recorded(rule: str) -> str:
    """A recording rule of ``alerts/verifier.recording.rules.yaml`` on the selected jobs."""
    return f"{rule}{{{JOB}}}"


def rate(metric: str, matchers: str) -> str:
    return f"rate({metric}{{{matchers}}}[$__rate_interval])"


def query(expr: str, legend: str, ref_id: str, *, instant: bool = False) -> prometheus.Dataquery:
    """One PromQL target on the dashboard's datasource variable, with its ref_id."""
    target = (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref_id)
        .datasource(DATASOURCE)
    )
    return target.instant() if instant else target.range()


def targets(
    queries: Sequence[tuple[str, str]], *, instant: bool = False
) -> list[cogbuilder.Builder[Any]]:
    """(expr, legend) pairs as targets with ref_ids A, B, C, ... in order."""
    return [
        query(expr, legend, chr(ord("A") + i), instant=instant)
        for i, (expr, legend) in enumerate(queries)
    ]


def steps(base: str, *thresholds: tuple[float, str]) -> dashboard_builder.ThresholdsConfig:
    """Absolute threshold steps, ``base`` colour below the lowest; one step per value (the last
    colour given for a value wins), in ascending order."""
    by_value = dict(thresholds)
    return (
        dashboard_builder.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps(
            [
                model.Threshold(value=None, color=base),
                *(model.Threshold(value=v, color=by_value[v]) for v in sorted(by_value)),
            ]
        )
    )


def rising(*lines: tuple[float, Severity]) -> dashboard_builder.ThresholdsConfig:
    """Green below the lines; past each, the colour of the severity that fires there."""
    return steps("green", *((value, SEVERITY_COLORS[severity]) for value, severity in lines))


def falling(line: float, severity: Severity) -> dashboard_builder.ThresholdsConfig:
    """The severity's colour below the line, green from it on."""
    return steps(SEVERITY_COLORS[severity], (line, "green"))


def color(name: str) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": name})


def right_axis(unit: str) -> list[model.DynamicConfigValue]:
    """Override properties: a series on the right axis in its own unit."""
    return [
        model.DynamicConfigValue(id_val="unit", value=unit),
        model.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
    ]


def graph(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[tuple[str, str]],
    *,
    width: int,
    height: int = 8,
    thresholds: dashboard_builder.ThresholdsConfig | None = None,
    minimum: float | None = 0,
    maximum: float | None = None,
) -> timeseries.Panel:
    """A time series panel; ``thresholds`` are drawn as dashed lines."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
        .targets(targets(queries))
        .fill_opacity(10)
        .legend(
            common_builder.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common_builder.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if thresholds is not None:
        panel = panel.thresholds(thresholds).thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    if minimum is not None:
        panel = panel.min(minimum)
    if maximum is not None:
        panel = panel.max(maximum)
    return panel


def single(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[tuple[str, str]],
    *,
    width: int,
    height: int = 5,
    thresholds: dashboard_builder.ThresholdsConfig | None = None,
    sparkline: bool = True,
    text_mode: common.BigValueTextMode = common.BigValueTextMode.AUTO,
    no_value: str = "",
    decimals: int | None = None,
) -> stat.Panel:
    """A stat panel: with a sparkline a range query, without one an instant query."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
        .targets(targets(queries, instant=not sparkline))
        .graph_mode(common.BigValueGraphMode.AREA if sparkline else common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.VALUE)
        .text_mode(text_mode)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(thresholds or steps("green"))
    )
    if no_value:
        panel = panel.no_value(no_value)
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


Section = tuple[str, Sequence[cogbuilder.Builder[model.Panel]]]
"""A row title and its panels, laid out left to right, wrapping at 24 columns."""


def uid(file_name: str) -> str:
    """A stable uid from the file name (the mixin's ``std.md5(filename)``), 32 characters."""
    return hashlib.md5(file_name.encode(), usedforsecurity=False).hexdigest()


Variable = cogbuilder.Builder[model.VariableModel]


def dashboard(
    file_name: str,
    title: str,
    description: str,
    default_job: str,
    sections: Sequence[Section],
    *,
    variables: Sequence[Variable] = (),
) -> model.Dashboard:
    """The one place that applies the settings every dashboard shares; ``variables`` come after
    the shared ``datasource`` and ``job``."""
    builder = (
        dashboard_builder.Dashboard(title)
        .uid(uid(file_name))
        .description(description)
        .tags(TAGS)
        .refresh(REFRESH)
        .timezone(TIMEZONE)
        .time(TIME_FROM, "now")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .readonly()  # generated: an edit in Grafana is lost at the next deployment
        .annotation(  # Grafana's built-in "Annotations & Alerts", as Grafana itself writes it
            dashboard_builder.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
            .built_in(1)
        )
        .with_variable(
            dashboard_builder.DatasourceVariable(DATASOURCE_VARIABLE)
            .label("Data source")
            .type("prometheus")
        )
        .with_variable(
            dashboard_builder.QueryVariable(JOB_VARIABLE)
            .label("Job")
            .datasource(DATASOURCE)
            .query("label_values(cap_verifier_build_info, job)")
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".+")
            .current(model.VariableOption(selected=True, text=[default_job], value=[default_job]))
        )
    )
    for variable in variables:
        builder = builder.with_variable(variable)
    for row_title, panels in sections:
        builder = builder.with_row(dashboard_builder.Row(row_title))
        for panel in panels:
            builder = builder.with_panel(panel)
    built = builder.build()
    for number, placed in enumerate(built.panels or [], start=1):
        placed.id_val = number
    return built


# --- The verifier dashboard: one function per row -------------------------------------------


def probes(t: Monitoring) -> str:
    """The endpoints the SLIs leave out, for descriptions."""
    return ", ".join(t.sli_excluded_endpoints)


def overview(t: Monitoring) -> Section:
    """Traffic, scrape targets and versions at a glance."""
    quiet = t.alerts.no_traffic
    partial, total = t.alerts.target_down.partial, t.alerts.target_down.total
    down = alert_name("target_down")
    return (
        "Overview",
        [
            single(
                "Total Requests",
                f"API requests per second over {SLI_WINDOW} ({probes(t)} excluded; the recording"
                f" rule {REQUESTS_RATE}), every result; the sparkline is the trend over the time"
                f" range. Alert {alert_name('no_traffic')} ({quiet.severity}) fires when no API"
                f" request arrives for {quiet.window} while a target is up.",
                "reqps",
                [(f"sum({recorded(REQUESTS_RATE)})", "requests/s")],
                width=8,
            ),
            single(
                "Targets Down",
                "Share of the scrape targets of the job that do not answer Prometheus. Alert"
                f" {down}: {partial.severity} above {partial.down_percent:g}% for"
                f" {partial.for_}, {total.severity} when no target is up for {total.for_}"
                " (then this panel shows no target).",
                "percent",
                [(f"100 * (count(up{{{JOB}}} == 0) or vector(0)) / count(up{{{JOB}}})", "down")],
                width=8,
                thresholds=rising((partial.down_percent, partial.severity), (100, total.severity)),
                no_value="no target",
            ),
            single(
                "Versions Running",
                "Processes per service version (cap_verifier_build_info): more than one version"
                f" during a rollout only. {QUIET}",
                "short",
                [(f"count by (version) (cap_verifier_build_info{{{JOB}}})", "{{version}}")],
                width=8,
                sparkline=False,
                text_mode=common.BigValueTextMode.VALUE_AND_NAME,
            ),
        ],
    )


def period_error_ratio(t: Monitoring) -> str:
    """Share of API requests answered with a 5xx over the SLO period (0 before the first 5xx)."""
    api = t.api(JOB)
    period = t.slo.period
    total = f"sum by (job) (increase(cap_verifier_requests_total{{{api}}}[{period}]))"
    failed = (
        f'sum by (job) (increase(cap_verifier_requests_total{{{api},result="fail"}}[{period}]))'
    )
    return f"(({failed} or 0 * {total}) / {total})"


def burn_lines(t: Monitoring) -> list[tuple[float, Severity]]:
    """Every factor of the burn-rate alerts with the severity it fires at (the most urgent one
    where two windows share a factor)."""
    lines: dict[float, Severity] = {}
    for window in t.burn_rate_windows:
        known = lines.get(window.factor, window.severity)
        lines[window.factor] = min(known, window.severity)  # "P1" < "P2": the more urgent
    return sorted(lines.items())


def slo(t: Monitoring) -> Section:
    """The availability objective over its period, the budget left and how fast it burns."""
    target, budget, period = t.slo.availability_target, t.error_budget, t.slo.period
    tiers = "; ".join(
        f"{w.factor:g}x over {w.long} and {w.short} ({w.severity})" for w in t.burn_rate_windows
    )
    burn = BURN_RATE_ALERT
    return (
        f"Availability SLO ({percent(target)} over {period})",
        [
            single(
                f"Availability ({period})",
                f"Share of API requests ({probes(t)} excluded) answered without a 5xx over the"
                f" last {period}, the SLO period; red below the {percent(target)} objective."
                f" Alert {burn} watches the same errors over shorter windows (panel Error Budget"
                " Burn Rate).",
                "percentunit",
                [(f"1 - {period_error_ratio(t)}", "{{job}}")],
                width=6,
                height=8,
                thresholds=steps("red", (target, "green")),
                sparkline=False,
                decimals=3,
            ),
            single(
                f"Error Budget Remaining ({period})",
                f"Share of the {period} error budget ({percent(budget)} of the API requests may"
                f" fail) not yet spent over the last {period}: 1 - error ratio / budget; below 0"
                f" the objective is missed. Alert {burn} pages before it runs out.",
                "percentunit",
                [(f"1 - {period_error_ratio(t)} / {budget:g}", "{{job}}")],
                width=6,
                height=8,
                thresholds=steps("red", (0, "green")),
                sparkline=False,
                decimals=1,
            ),
            graph(
                "Error Budget Burn Rate",
                "Error ratio over each window of the burn-rate alerts (the recording rules)"
                f" divided by the error budget ({percent(budget)}): 1 spends the budget in exactly"
                f" {period}. Alert {burn} fires when a long and a short window both exceed its"
                f" factor: {tiers}. The lines are the factors, coloured by severity.",
                "x",
                [
                    (f"{recorded(error_ratio(window))} / {budget:g}", f"{{{{job}}}} {window}")
                    for window in t.burn_ranges
                ],
                width=12,
                thresholds=rising(*burn_lines(t)),
            ),
        ],
    )


def request_results(t: Monitoring) -> timeseries.Panel:
    spike = alert_name("fivexx_spike")
    panel = graph(
        "Request Results",
        f"API requests per second by result ({probes(t)} excluded): ok = 2xx/3xx, warn = 4xx,"
        " fail = 5xx or unhandled (label result of cap_verifier_requests_total). Alerts:"
        f" {spike} on the fail line (panel 5xx per Minute), {alert_name('no_traffic')} when"
        " every line is 0 (panel API Traffic).",
        "reqps",
        [(f"sum by (result) ({rate('cap_verifier_requests_total', t.api(JOB))})", "{{result}}")],
        width=12,
    )
    for result, colour in RESULT_COLORS.items():
        panel = panel.override_by_name(result, [color(colour)])
    return panel


def requests(t: Monitoring) -> Section:
    """ORR 3.2: results, error rate; the 5xx bursts and the traffic the alerts watch."""
    errors, spike, quiet = t.alerts.high_error_rate, t.alerts.fivexx_spike, t.alerts.no_traffic
    max_errors = t.slo.max_error_ratio
    failed = f'{t.api(JOB)},result="fail"'
    traffic = graph(
        "API Traffic",
        f"API requests per second over {SLI_WINDOW} ({REQUESTS_RATE}) and the scrape targets"
        f" up (right axis). Alert {alert_name('no_traffic')} ({quiet.severity}): no API request"
        f" for {quiet.window} while a target is up; a down target is"
        f" {alert_name('target_down')}'s.",
        "reqps",
        [
            (recorded(REQUESTS_RATE), "{{job}} API requests/s"),
            (f"sum by (job) (up{{{JOB}}})", "{{job}} targets up"),
        ],
        width=12,
    ).override_by_query("B", right_axis("short"))
    return (
        "Requests and errors",
        [
            request_results(t),
            graph(
                "Error Rate",
                f"Share of API requests answered with a 5xx over {SLI_WINDOW} (the recording rule"
                f" {error_ratio(SLI_WINDOW)}). Alert {alert_name('high_error_rate')}"
                f" ({errors.severity}): above {percent(max_errors)} (the line) for {errors.for_}.",
                "percentunit",
                [(recorded(error_ratio(SLI_WINDOW)), "{{job}}")],
                width=12,
                thresholds=rising((max_errors, errors.severity)),
            ),
            graph(
                "5xx per Minute",
                f"API requests answered with a 5xx within each minute. Alert"
                f" {alert_name('fivexx_spike')} ({spike.severity}): more than {spike.per_minute}"
                f" (the line) for {spike.for_}, whatever the traffic.",
                "short",
                [
                    (
                        "sum by (job) (increase(cap_verifier_requests_total"
                        f"{{{failed}}}[{SPIKE_WINDOW}]))",
                        "{{job}}",
                    )
                ],
                width=12,
                thresholds=rising((spike.per_minute, spike.severity)),
            ),
            traffic,
            graph(
                "Verification Verdicts",
                "Verdicts of /verify per second (cap_verifier_verifications_total): ok, warn,"
                f" fail are the policy outcome, not the HTTP status. {QUIET}",
                "ops",
                [
                    (
                        f"sum by (verdict) ({rate('cap_verifier_verifications_total', JOB)})",
                        "{{verdict}}",
                    )
                ],
                width=12,
            ),
            graph(
                "Requests by Route and Code",
                "Requests per second by route template and status code, probes and scrapes"
                f" included: where the errors of the panels above come from. {QUIET}",
                "reqps",
                [
                    (
                        f"sum by (endpoint, code) ({rate('cap_verifier_requests_total', JOB)})",
                        "{{endpoint}} {{code}}",
                    )
                ],
                width=12,
            ),
        ],
    )


def route_quantile(t: Monitoring, objective: LatencyObjective) -> str:
    bucket = rate("cap_verifier_request_duration_seconds_bucket", t.api(JOB))
    return f"histogram_quantile({objective.quantile:g}, sum by (endpoint, le) ({bucket}))"


def latency(t: Monitoring) -> Section:
    """ORR 3.2: every latency objective, alerted on the recording rules, and per route."""
    objectives = t.slo.latency
    alerts = [latency_alert(t, o) for o in objectives]
    names = "/".join(o.name for o in objectives)
    watched = "; ".join(
        f"{name} ({alert.severity}): {o.name} above {human_seconds(o.threshold_seconds)} for"
        f" {alert.for_}"
        for o, (name, alert) in zip(objectives, alerts, strict=True)
    )
    width = 24 // (len(objectives) + 1)
    main = graph(
        "Request Duration",
        f"{names} of API request durations over {SLI_WINDOW} ({probes(t)} excluded; the"
        f" recording rules). The dashed lines are the latency objectives. Alerts: {watched}.",
        "s",
        [(recorded(t.latency_slis[o.quantile]), f"{{{{job}}}} {o.name}") for o in objectives],
        width=width,
        thresholds=rising(
            *(
                (o.threshold_seconds, alert.severity)
                for o, (_, alert) in zip(objectives, alerts, strict=True)
            )
        ),
    )
    by_route = [
        graph(
            f"Request Duration {o.name} by Route",
            f"{o.name} of API request durations per route template ({probes(t)} excluded): which"
            f" route moves the {o.name} that {name} watches (line: the"
            f" {human_seconds(o.threshold_seconds)} objective).",
            "s",
            [(route_quantile(t, o), "{{endpoint}}")],
            width=width,
            thresholds=rising((o.threshold_seconds, alert.severity)),
        )
        for o, (name, alert) in zip(objectives, alerts, strict=True)
    ]
    return ("Latency", [main, *by_route])


def auth(t: Monitoring) -> Section:
    """Refused requests by reason against the HighAuthFailureRate ratio; the signing keys."""
    refused = t.alerts.high_auth_failure_rate
    name = alert_name("high_auth_failure_rate")
    stale, expired = t.alerts.jwks_stale, t.alerts.jwks_expired
    never = t.alerts.jwks_never_loaded
    ttl, max_stale = t.jwks.cache_ttl_seconds, t.jwks.max_stale_seconds
    failures = recorded(AUTH_FAILURES_RATE)
    requests = recorded(REQUESTS_RATE)
    return (
        "Authentication",
        [
            graph(
                "Auth Failures by Reason",
                f"Refused requests / all API requests over {SLI_WINDOW}, per reason and for every"
                f" reason together (the recording rules). Alert {name} ({refused.severity}): all"
                f" reasons above {percent(refused.ratio)} (the line) for {refused.for_}, with at"
                f" least {refused.min_rate_per_second:g} refusals/s (panel Auth Failures per"
                " Second).",
                "percentunit",
                [
                    (f"{failures} / on (job) group_left {requests}", "{{job}} {{reason}}"),
                    (f"sum by (job) ({failures}) / {requests}", "{{job}} all reasons"),
                ],
                width=12,
                thresholds=rising((refused.ratio, refused.severity)),
            ),
            graph(
                "Auth Failures per Second",
                f"Refused requests per second over {SLI_WINDOW}, every reason together"
                f" ({AUTH_FAILURES_RATE}). Alert {name} speaks only above the line"
                f" ({refused.min_rate_per_second:g}/s), so that a handful of requests cannot"
                " page.",
                "reqps",
                [(f"sum by (job) ({failures})", "{{job}}")],
                width=12,
                thresholds=rising((refused.min_rate_per_second, refused.severity)),
            ),
            graph(
                "JWKS Age",
                "Seconds since each process fetched the signing keys it verifies tokens with"
                f" (-1: never loaded, alert {alert_name('jwks_never_loaded')}, {never.severity})."
                f" Lines: the cache TTL ({human_seconds(ttl)}, alert"
                f" {alert_name('jwks_stale')}, {stale.severity}) and the stale limit"
                f" ({human_seconds(max_stale)}, alert {alert_name('jwks_expired')},"
                f" {expired.severity}), past which tokens are refused. Both alerts also need"
                " failed refetches (panel JWKS Refreshes).",
                "s",
                [(f"max by (instance) (cap_verifier_jwks_age_seconds{{{JOB}}})", "{{instance}}")],
                width=12,
                thresholds=steps(
                    SEVERITY_COLORS[never.severity],
                    (0, "green"),
                    (ttl, SEVERITY_COLORS[stale.severity]),
                    (max_stale, SEVERITY_COLORS[expired.severity]),
                ),
                minimum=None,
            ),
            graph(
                "JWKS Refreshes",
                f"Fetches of the signing keys over the last {stale.failure_window} by outcome"
                " (cap_verifier_jwks_refreshes_total); errors here make an old key set alert"
                f" ({alert_name('jwks_stale')}, {alert_name('jwks_expired')}).",
                "short",
                [
                    (
                        "sum by (outcome) (increase(cap_verifier_jwks_refreshes_total"
                        f"{{{JOB}}}[{stale.failure_window}]))",
                        "{{outcome}}",
                    )
                ],
                width=12,
            ),
        ],
    )


def cache(t: Monitoring) -> Section:
    """ORR 3.2: the hit rate against its objective, and whether the cache is used at all."""
    low = t.alerts.low_cache_hit_rate
    name = alert_name("low_cache_hit_rate")
    target = t.slo.min_cache_hit_ratio
    return (
        "Policy cache",
        [
            graph(
                "Cache Hit Rate",
                f"IR cache hits / lookups over {SLI_WINDOW} (the recording rule) and since each"
                f" process started (cap_verifier_cache_hit_ratio). Alert {name}"
                f" ({low.severity}): the {SLI_WINDOW} ratio below {percent(target)} (the line) for"
                f" {low.for_} while there are lookups (panel Cache Lookups); expected for a while"
                " after a restart or a cache flush.",
                "percentunit",
                [
                    (recorded(CACHE_HIT_RATIO), f"{{{{job}}}} {SLI_WINDOW}"),
                    (f"cap_verifier_cache_hit_ratio{{{JOB}}}", "{{instance}} since start"),
                ],
                width=12,
                thresholds=falling(target, low.severity),
                maximum=1,
            ),
            graph(
                "Cache Lookups",
                f"IR cache lookups per second over {SLI_WINDOW} (the recording rule) and the"
                f" misses, each of which reads the registry. Alert {name} speaks only above the"
                f" line ({low.min_lookups_per_second:g}/s).",
                "ops",
                [
                    (recorded(CACHE_LOOKUPS_RATE), "{{job}} lookups"),
                    (f"sum({rate('cap_verifier_cache_misses_total', JOB)})", "misses"),
                ],
                width=6,
                thresholds=rising((low.min_lookups_per_second, low.severity)),
            ),
            graph(
                "Cache Entries",
                f"Compiled policies (IR) held in the caches of the live processes. {QUIET}",
                "short",
                [(f"sum by (instance) (cap_verifier_cache_entries{{{JOB}}})", "{{instance}}")],
                width=6,
            ),
        ],
    )


def probe(t: Monitoring) -> Section:
    """The black-box probe through the public endpoint, and the certificates clients see."""
    down, expiry = t.alerts.endpoint_down, t.alerts.certificate_expiry
    expires = alert_name("certificate_expiry")
    selector = t.probe_selector
    return (
        f"Public endpoint (black-box probe, job {t.probe.job})",
        [
            graph(
                "Endpoint Probe",
                f"Whether the black-box probe of /healthz through the public endpoint succeeds"
                f" (probe_success, module {t.probe.module}, every {t.probe.interval}). Alert"
                f" {alert_name('endpoint_down')} ({down.severity}): 0 for {down.for_}.",
                "bool_yes_no",
                [(f"max by (instance) (probe_success{{{selector}}})", "{{instance}}")],
                width=8,
                thresholds=falling(1, down.severity),
                maximum=1,
            ),
            graph(
                "Probe Duration",
                "Seconds the black-box probe takes (probe_duration_seconds: DNS, TLS handshake,"
                f" /healthz); a slow edge shows here before clients complain. {QUIET}",
                "s",
                [(f"max by (instance) (probe_duration_seconds{{{selector}}})", "{{instance}}")],
                width=8,
            ),
            graph(
                "Certificate Days Left",
                "Days until the earliest expiry of the certificate chain the public endpoint"
                " serves (probe_ssl_earliest_cert_expiry) and of cert-manager's Certificate"
                f" {CERTIFICATE}. Alert {expires} ({expiry.severity}): under {expiry.days} days"
                f" (the line) for {expiry.for_}.",
                "d",
                [
                    (
                        f"(min by (instance) (probe_ssl_earliest_cert_expiry{{{selector}}})"
                        f" - time()) / {DAY_SECONDS}",
                        "{{instance}} (probe)",
                    ),
                    (
                        "(min by (namespace, name) (certmanager_certificate_expiration_timestamp"
                        f'_seconds{{name="{CERTIFICATE}"}}) - time()) / {DAY_SECONDS}',
                        "{{namespace}}/{{name}} (cert-manager)",
                    ),
                ],
                width=8,
                thresholds=steps(
                    "red", (0, SEVERITY_COLORS[expiry.severity]), (expiry.days, "green")
                ),
            ),
        ],
    )


def log_variables() -> list[Variable]:
    """The Loki datasource (default: the one of :data:`log_store.DATASOURCE_UID`), the
    namespace, from the lines Loki holds of the app, and the request id a person types in."""
    return [
        dashboard_builder.DatasourceVariable(LOGS_DATASOURCE_VARIABLE)
        .label("Logs")
        .type("loki")
        .current(
            model.VariableOption(
                selected=True, text=log_store.DATASOURCE_UID, value=log_store.DATASOURCE_UID
            )
        ),
        dashboard_builder.QueryVariable(NAMESPACE_VARIABLE)
        .label("Namespace")
        .datasource(LOGS_DATASOURCE)
        .query(  # Grafana's Loki variable editor: label values of streams matching a selector
            {
                "type": 1,
                "label": NAMESPACE_VARIABLE,
                "stream": f'{{app="{APP}"}}',
                "refId": "LokiVariableQueryEditor-VariableQuery",
            }
        )
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC),
        dashboard_builder.TextBoxVariable(REQUEST_ID_VARIABLE)
        .label("Request ID")
        .description("The X-Request-ID of a request (every answer carries it in that header)"),
    ]


def log_panel(title: str, description: str, expr: str, *, height: int) -> logs_builder.Panel:
    """A logs panel on the Loki datasource variable, newest line first, JSON bodies readable."""
    return (
        logs_builder.Panel()
        .title(title)
        .description(description)
        .datasource(LOGS_DATASOURCE)
        .span(24)
        .height(height)
        .targets(
            [
                loki.Dataquery()
                .expr(expr)
                .ref_id("A")
                .query_type("range")
                .datasource(LOGS_DATASOURCE)
            ]
        )
        .show_time(True)
        .wrap_log_message(True)
        .prettify_log_message(True)
        .enable_log_details(True)
        .sort_order(common.LogsSortOrder.DESCENDING)
    )


def logs() -> Section:
    """ORR 3.4: every line of one request, found by the ``request_id`` field of its JSON body
    (never a stream label), and the service's errors; both from Loki."""
    namespace = f"${NAMESPACE_VARIABLE}"
    return (
        "Logs (Loki)",
        [
            log_panel(
                "Lines of one request",
                f"Every log line of the request whose id is in the Request ID box, across pods:"
                f" Loki's json parser reads the request_id field of each line of app {APP} (the"
                f" id is no stream label: one stream per request would overload the index)."
                f" Logs are kept {log_store.RETENTION_DAYS} days. {QUIET}",
                log_store.request_query(namespace, APP, log_store.REQUEST_ID_VARIABLE),
                height=12,
            ),
            log_panel(
                "Errors",
                f"The ERROR and CRITICAL lines of app {APP} (level is a stream label, so no line"
                f" is parsed to find them); a line's request_id leads to the panel above. {QUIET}",
                log_store.errors_query(namespace, APP),
                height=10,
            ),
        ],
    )


def verifier(t: Monitoring) -> model.Dashboard:
    """Traffic, the SLO, errors, latency, authentication, the policy cache, the probe, and the
    logs of one request."""
    return dashboard(
        "verifier.json",
        "CAP Verifier",
        "The CAP Verifier API: traffic, the availability SLO and its error budget, errors,"
        " latency, authentication, the policy cache, the public endpoint and the logs of one"
        " request. Every threshold line is a number of alerts/config.yaml, coloured by the"
        " severity of the alert that fires past it. Generated by dashboards/generate.py: do not"
        " edit in Grafana.",
        t.job,
        [overview(t), slo(t), requests(t), latency(t), auth(t), cache(t), probe(t), logs()],
        variables=log_variables(),
    )


DASHBOARDS: dict[str, Callable[[Monitoring], model.Dashboard]] = {"verifier.json": verifier}
"""File name in dashboards/ -> the function building it."""


def render(board: model.Dashboard) -> str:
    """The JSON text of a dashboard: sorted keys, two-space indent, trailing newline."""
    return json.dumps(board, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate(table: Monitoring) -> dict[str, str]:
    """File name -> content, for every dashboard."""
    return {name: render(build(table)) for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail when a file is not current")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DASHBOARDS_DIR,
        help="where the dashboards are (default: dashboards/)",
    )
    parser.add_argument("--config", type=Path, default=monitoring.CONFIG, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        outputs = generate(monitoring.load(args.config))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    return write_or_check(outputs, args.output_dir, "make generate", check=args.check)


if __name__ == "__main__":
    sys.exit(main())
