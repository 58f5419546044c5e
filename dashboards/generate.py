"""Write the Grafana dashboards of ``dashboards/`` from Python (grafana-foundation-sdk).

    .venv/bin/python -m dashboards.generate           # (re)write dashboards/*.json
    .venv/bin/python -m dashboards.generate --check   # exit 1 when a committed file is not current

The output is a pure function of the monitoring table (:mod:`cap_ops.monitoring`, read from
``alerts/config.yaml``, which the alert rules read too): same table, same bytes. Every dashboard
passes through :func:`dashboard`, the one place that applies the shared settings (uid from the
file name, tags, refresh, time zone, the ``datasource`` and ``job`` variables, panel ids).

The panels read the recording rules of ``alerts/verifier.recording.rules.yaml`` wherever an alert
does, so that a panel shows what its alert sees, and draw the alert's threshold from the config.
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
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from cap_ops import monitoring
from cap_ops.durations import human_seconds
from cap_ops.generated import write_or_check
from cap_ops.monitoring import (
    AUTH_FAILURES_RATE,
    CACHE_HIT_RATIO,
    REQUESTS_RATE,
    Monitoring,
    error_ratio,
    latency_quantile,
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
"""The matcher of every selector: what the alerts select on (``selector`` in the config)."""

P99 = 0.99  # the second latency quantile shown next to the SLO's (ORR 3.2: p95/p99)
COLORS = {"ok": "green", "warn": "yellow", "fail": "red"}


# --- Building blocks ------------------------------------------------------------------------


def percent(ratio: float) -> str:
    return f"{ratio * 100:g}%"


def query(expr: str, legend: str, ref_id: str) -> prometheus.Dataquery:
    """One PromQL target on the dashboard's datasource variable, with its ref_id."""
    return (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref_id)
        .datasource(DATASOURCE)
        .range()
    )


def targets(*queries: tuple[str, str]) -> list[cogbuilder.Builder[Any]]:
    """(expr, legend) pairs as targets with ref_ids A, B, C, ... in order."""
    return [query(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(queries)]


def steps(base: str, *thresholds: tuple[float, str]) -> dashboard_builder.ThresholdsConfig:
    """Absolute threshold steps: ``base`` colour below the first value."""
    return (
        dashboard_builder.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps(
            [
                model.Threshold(value=None, color=base),
                *(model.Threshold(value=v, color=c) for v, c in thresholds),
            ]
        )
    )


def color(name: str) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": name})


def graph(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[tuple[str, str]],
    *,
    width: int,
    height: int = 8,
    thresholds: dashboard_builder.ThresholdsConfig | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
        .targets(targets(*queries))
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
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
        .targets(targets(*queries))
        .graph_mode(common.BigValueGraphMode.AREA if sparkline else common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.VALUE)
        .text_mode(text_mode)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(thresholds or steps("green"))
    )
    if no_value:
        panel = panel.no_value(no_value)
    return panel


Section = tuple[str, Sequence[cogbuilder.Builder[model.Panel]]]
"""A row title and its panels, laid out left to right, wrapping at 24 columns."""


def uid(file_name: str) -> str:
    """A stable uid from the file name (the mixin's ``std.md5(filename)``), 32 characters."""
    return hashlib.md5(file_name.encode(), usedforsecurity=False).hexdigest()


def dashboard(
    file_name: str, title: str, description: str, default_job: str, sections: Sequence[Section]
) -> model.Dashboard:
    """The one place that applies the settings every dashboard shares."""
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
    for row_title, panels in sections:
        builder = builder.with_row(dashboard_builder.Row(row_title))
        for panel in panels:
            builder = builder.with_panel(panel)
    built = builder.build()
    for number, placed in enumerate(built.panels or [], start=1):
        placed.id_val = number
    return built


# --- The verifier dashboard -----------------------------------------------------------------


def verifier(t: Monitoring) -> model.Dashboard:
    """Traffic, errors, latency, authentication and the policy cache of the verifier."""
    api = t.api(JOB)
    alerts = t.alerts
    jwks_window = alerts.jwks_stale.failure_window
    down_percent = alerts.target_down.warning.down_percent
    budget = t.error_budget
    fast = t.fast_burn
    p_slo = f"p{t.slo.latency_quantile * 100:g}"
    p_99 = f"p{P99 * 100:g}"
    critical = [w.factor for w in t.burn_rate_windows if w.severity == "critical"]
    critical_factor = min(critical) if critical else fast.factor
    probes = ", ".join(t.sli_excluded_endpoints)

    def rate(metric: str, matchers: str) -> str:
        return f"rate({metric}{{{matchers}}}[$__rate_interval])"

    def quantile(q: float, by: str) -> str:
        bucket = rate("cap_verifier_request_duration_seconds_bucket", api)
        return f"histogram_quantile({q:g}, sum by ({by}) ({bucket}))"

    overview: Section = (
        "Overview",
        [
            single(
                "Total Requests",
                f"API requests per second ({probes} excluded), every result; the sparkline is"
                " the trend over the time range.",
                "reqps",
                [(f"sum({rate('cap_verifier_requests_total', api)})", "requests/s")],
                width=8,
            ),
            single(
                "Targets Down",
                "Share of the scrape targets of the job that do not answer Prometheus. Alert"
                f" VerifierTargetDown: warning above {down_percent:g}%, critical when no"
                " target is up (then this panel shows no target).",
                "percent",
                [
                    (
                        f"100 * (count(up{{{JOB}}} == 0) or vector(0)) / count(up{{{JOB}}})",
                        "down",
                    )
                ],
                width=8,
                thresholds=steps("green", (t.alerts.target_down.warning.down_percent, "red")),
                no_value="no target",
            ),
            single(
                "Versions Running",
                "Processes per service version (cap_verifier_build_info): more than one version"
                " during a rollout only.",
                "short",
                [(f"count by (version) (cap_verifier_build_info{{{JOB}}})", "{{version}}")],
                width=8,
                sparkline=False,
                text_mode=common.BigValueTextMode.VALUE_AND_NAME,
            ),
        ],
    )

    results = graph(
        "Request Results",
        f"API requests per second by result ({probes} excluded): ok = 2xx/3xx,"
        " warn = 4xx, fail = 5xx or unhandled (label result of cap_verifier_requests_total).",
        "reqps",
        [(f"sum by (result) ({rate('cap_verifier_requests_total', api)})", "{{result}}")],
        width=12,
        minimum=0,
    )
    for result, colour in COLORS.items():
        results = results.override_by_name(result, [color(colour)])

    requests: Section = (
        "Requests and errors",
        [
            results,
            graph(
                "Error Rate",
                f"Share of API requests answered with a 5xx over {fast.short} and {fast.long}"
                " (the recording rules VerifierErrorBudgetBurn reads). Orange: the error budget"
                f" of the {percent(t.slo.availability_target)} availability objective"
                f" ({percent(budget)}); red: {fast.factor:g}x that"
                f" ({percent(fast.factor * budget)}), above which on both lines the fastest"
                " burn alert pages.",
                "percentunit",
                [
                    (f"{error_ratio(fast.short)}{{{JOB}}}", f"{{{{job}}}} {fast.short}"),
                    (f"{error_ratio(fast.long)}{{{JOB}}}", f"{{{{job}}}} {fast.long}"),
                ],
                width=12,
                thresholds=steps(
                    "green", (budget, "orange"), (round(fast.factor * budget, 10), "red")
                ),
                minimum=0,
            ),
            graph(
                "Error Budget Burn Rate",
                "Error ratio over each window of the VerifierErrorBudgetBurn alerts divided by"
                f" the error budget ({percent(budget)}): 1 spends the budget in exactly the SLO"
                " period. The alerts fire when a long and a short window both exceed their"
                " factor: "
                + "; ".join(
                    f"{w.factor:g}x over {w.long} and {w.short} ({w.severity})"
                    for w in t.burn_rate_windows
                )
                + ".",
                "x",
                [
                    (f"{error_ratio(window)}{{{JOB}}} / {budget:g}", f"{{{{job}}}} {window}")
                    for window in t.burn_ranges
                ],
                width=12,
                thresholds=steps("green", (1, "orange"), (critical_factor, "red")),
                minimum=0,
            ),
            graph(
                "Verification Verdicts",
                "Verdicts of /verify per second (cap_verifier_verifications_total): ok, warn,"
                " fail are the policy outcome, not the HTTP status.",
                "ops",
                [
                    (
                        f"sum by (verdict) ({rate('cap_verifier_verifications_total', JOB)})",
                        "{{verdict}}",
                    )
                ],
                width=12,
                minimum=0,
            ),
            graph(
                "Requests by Route and Code",
                "Requests per second by route template and status code, probes and scrapes"
                " included: where the errors of the panels above come from.",
                "reqps",
                [
                    (
                        f"sum by (endpoint, code) ({rate('cap_verifier_requests_total', JOB)})",
                        "{{endpoint}} {{code}}",
                    )
                ],
                width=24,
                minimum=0,
            ),
        ],
    )

    latency: Section = (
        "Latency",
        [
            graph(
                "Request Duration",
                f"{p_slo} and {p_99} of API request durations ({probes} excluded). Dashed line:"
                f" the {p_slo} objective ({human_seconds(t.slo.latency_threshold_seconds)});"
                f" alert VerifierHighLatency reads the {p_slo} over 5m (the recording rule).",
                "s",
                [
                    (quantile(t.slo.latency_quantile, "job, le"), f"{{{{job}}}} {p_slo}"),
                    (quantile(P99, "job, le"), f"{{{{job}}}} {p_99}"),
                    (
                        f"{latency_quantile(t.slo.latency_quantile)}{{{JOB}}}",
                        f"{{{{job}}}} {p_slo} (5m, alerted)",
                    ),
                ],
                width=8,
                thresholds=steps("green", (t.slo.latency_threshold_seconds, "red")),
                minimum=0,
            ),
            graph(
                f"Request Duration {p_slo} by Route",
                f"{p_slo} of request durations per route template ({probes} excluded).",
                "s",
                [(quantile(t.slo.latency_quantile, "endpoint, le"), "{{endpoint}}")],
                width=8,
                thresholds=steps("green", (t.slo.latency_threshold_seconds, "red")),
                minimum=0,
            ),
            graph(
                f"Request Duration {p_99} by Route",
                f"{p_99} of request durations per route template ({probes} excluded).",
                "s",
                [(quantile(P99, "endpoint, le"), "{{endpoint}}")],
                width=8,
                minimum=0,
            ),
        ],
    )

    auth: Section = (
        "Authentication",
        [
            graph(
                "Auth Failures by Reason",
                "Refused requests per second by reason (cap_verifier_auth_failures_total):"
                " missing_token, invalid_token, expired, issuer, audience, unknown_kid,"
                " insufficient_scope, client_cert.",
                "reqps",
                [
                    (
                        f"sum by (reason) ({rate('cap_verifier_auth_failures_total', JOB)})",
                        "{{reason}}",
                    )
                ],
                width=12,
                minimum=0,
            ),
            graph(
                "Auth Failure Ratio by Reason",
                "Refused requests of one reason / all API requests, over 5m (the recording"
                " rules). Alert VerifierAuthFailuresHigh fires above"
                f" {percent(alerts.auth_failures.ratio)} (red line) when the refusals are frequent"
                " enough.",
                "percentunit",
                [
                    (
                        f"{AUTH_FAILURES_RATE}{{{JOB}}} / on (job) group_left"
                        f" {REQUESTS_RATE}{{{JOB}}}",
                        "{{job}} {{reason}}",
                    )
                ],
                width=12,
                thresholds=steps("green", (t.alerts.auth_failures.ratio, "red")),
                minimum=0,
            ),
            graph(
                "JWKS Age",
                "Seconds since each process fetched the signing keys it verifies tokens with"
                " (-1: never loaded, alert VerifierJWKSNeverLoaded). Orange: the cache TTL"
                f" ({human_seconds(t.jwks.cache_ttl_seconds)}, VerifierJWKSStale); red: the"
                f" stale limit ({human_seconds(t.jwks.max_stale_seconds)}, VerifierJWKSExpired),"
                " past which tokens are refused. Both alerts also need failed refetches (the"
                " panel on the right).",
                "s",
                [(f"max by (instance) (cap_verifier_jwks_age_seconds{{{JOB}}})", "{{instance}}")],
                width=12,
                thresholds=steps(
                    "red",
                    (0, "green"),
                    (t.jwks.cache_ttl_seconds, "orange"),
                    (t.jwks.max_stale_seconds, "red"),
                ),
            ),
            graph(
                "JWKS Refreshes",
                f"Fetches of the signing keys over the last {jwks_window} by outcome"
                " (cap_verifier_jwks_refreshes_total); errors here make an old key set alert"
                " (VerifierJWKSStale, VerifierJWKSExpired).",
                "short",
                [
                    (
                        "sum by (outcome) (increase(cap_verifier_jwks_refreshes_total"
                        f"{{{JOB}}}[{t.alerts.jwks_stale.failure_window}]))",
                        "{{outcome}}",
                    )
                ],
                width=12,
                minimum=0,
            ),
        ],
    )

    cache: Section = (
        "Policy cache",
        [
            graph(
                "Cache Hit Rate",
                "IR cache hits / lookups over 5m (the recording rule) and since each process"
                " started (cap_verifier_cache_hit_ratio). Alert VerifierCacheHitRatioLow: the"
                f" 5m ratio below {percent(alerts.cache_hit_ratio.ratio)} (red below the line);"
                " expected for a while after a restart.",
                "percentunit",
                [
                    (f"{CACHE_HIT_RATIO}{{{JOB}}}", "{{job}} 5m"),
                    (
                        f"cap_verifier_cache_hit_ratio{{{JOB}}}",
                        "{{instance}} since start",
                    ),
                ],
                width=12,
                thresholds=steps("red", (t.alerts.cache_hit_ratio.ratio, "green")),
                minimum=0,
                maximum=1,
            ),
            graph(
                "Cache Lookups",
                "IR cache hits and misses per second; every miss reads the registry.",
                "ops",
                [
                    (f"sum({rate('cap_verifier_cache_hits_total', JOB)})", "hits"),
                    (f"sum({rate('cap_verifier_cache_misses_total', JOB)})", "misses"),
                ],
                width=6,
                minimum=0,
            ),
            graph(
                "Cache Entries",
                "Compiled policies (IR) held in the caches of the live processes.",
                "short",
                [(f"sum by (instance) (cap_verifier_cache_entries{{{JOB}}})", "{{instance}}")],
                width=6,
                minimum=0,
            ),
        ],
    )

    return dashboard(
        "verifier.json",
        "CAP Verifier",
        "The CAP Verifier API: traffic, errors against the availability SLO, latency,"
        " authentication and the policy cache. Generated by dashboards/generate.py from"
        " alerts/config.yaml: do not edit in Grafana.",
        t.job,
        [overview, requests, latency, auth, cache],
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
