"""The generated dashboards: drift, shared settings, layout, queries, lint, the ORR 3.2 panels,
and every threshold against alerts/config.yaml. Each check is also shown to catch a bad input."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dashboard_checks import (
    COMMITTED,
    CONFIG,
    DASHBOARDS,
    RULES,
    Board,
    all_targets,
    excluded,
    exclusions,
    layout_problems,
    lint,
    load_board,
    load_yaml,
    metric_names,
    panel_by_title,
    panels,
    promql_problems,
    promtool_problems,
    ref_id_problems,
    targets,
    threshold_colors,
    threshold_values,
)
from dashboard_checks import alerts as alert_rules

from cap_ops import monitoring
from cap_ops.monitoring import CACHE_HIT_RATIO, REQUESTS_RATE, Monitoring, error_ratio
from cap_ops.orr.items import load_items
from dashboards import generate as dashboard_generator
from support.require import need

VERIFIER = DASHBOARDS / "verifier.json"
JOB = dashboard_generator.JOB
SEVERITY_COLORS = dashboard_generator.SEVERITY_COLORS
QUIET = dashboard_generator.QUIET
# Numbers a threshold may hold without the config: "never loaded" (-1 < 0), a probe that
# succeeds (1), every target down (100 %).
DEFINITIONAL = frozenset({0, 1, 100})
PERIOD = monitoring.load().slo.period  # in the titles of the SLO panels


def run_generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dashboards.generate", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture(scope="module")
def board() -> Board:
    return load_board(VERIFIER)


@pytest.fixture(scope="module")
def table() -> Monitoring:
    return monitoring.load()


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data = load_yaml(CONFIG)
    assert isinstance(data, dict)
    return data


def orr_title(orr_id: str) -> str:
    return load_items()[orr_id].title


def orr_percent(orr_id: str) -> float:
    """The percentage an ORR line names ("Error-rate panel with 1% threshold" -> 0.01)."""
    (number,) = re.findall(r"(\d+(?:\.\d+)?)\s*%", orr_title(orr_id))
    return float(number) / 100


# --- generated, committed, checked ----------------------------------------------------------


def test_there_is_a_committed_dashboard_per_generator_entry() -> None:
    assert [p.name for p in COMMITTED] == sorted(dashboard_generator.DASHBOARDS)


def test_generating_into_a_fresh_directory_reproduces_the_committed_files(tmp_path: Path) -> None:
    """The script as CI runs it, in a process of its own: same bytes as the committed files."""
    result = run_generator("--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    for committed in COMMITTED:
        generated = (tmp_path / committed.name).read_bytes()
        assert generated == committed.read_bytes(), (
            f"{committed.name} is not current: run make generate"
        )
        assert generated.endswith(b"}\n")
        assert json.dumps(json.loads(generated), indent=2, sort_keys=True).encode() + b"\n" == (
            generated
        ), "keys not sorted or not indented by two"


def copy_committed(directory: Path) -> None:
    for committed in COMMITTED:
        shutil.copy(committed, directory / committed.name)


def test_check_passes_on_current_files_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_committed(tmp_path)
    assert dashboard_generator.main(["--check", "--output-dir", str(tmp_path)]) == 0
    assert capsys.readouterr() == ("", "")


def test_check_fails_in_one_line_on_a_modified_file_and_leaves_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_committed(tmp_path)
    edited = tmp_path / "verifier.json"
    text = edited.read_text().replace('"Error Rate"', '"Error rate (edited in Grafana)"')
    edited.write_text(text)
    assert dashboard_generator.main(["--check", "--output-dir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "not current, run make generate: verifier.json\n"
    assert edited.read_text() == text, "--check must not write"


def test_check_fails_on_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dashboard_generator.main(["--check", "--output-dir", str(tmp_path)]) == 1
    assert "verifier.json" in capsys.readouterr().err


def test_a_config_without_a_threshold_stops_generation_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.read_text().replace("max_stale_seconds:", "max_stale:"))
    assert dashboard_generator.main(["--config", str(config), "--output-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"{config}: jwks.max_stale: unknown key\n"
    assert not (tmp_path / "verifier.json").exists()


# --- shared settings ------------------------------------------------------------------------


@pytest.mark.orr("3.2-02")
def test_shared_settings(board: Board, config: dict[str, Any]) -> None:
    assert board["uid"] == hashlib.md5(b"verifier.json", usedforsecurity=False).hexdigest()
    assert len(board["uid"]) <= 40  # Grafana's limit
    assert board["timezone"] == "utc"
    assert board["refresh"] == "30s"
    assert "cap-verifier" in board["tags"]
    assert board["editable"] is False
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    job = variables["job"]
    assert job["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    # The default job is the one the alerts select (selector: job="...").
    assert f'job="{job["current"]["value"][0]}"' == config["selector"]


# --- layout, ref ids, datasources, PromQL ---------------------------------------------------


def mutated(board: Board, change: Callable[[Board], None]) -> Board:
    copied = copy.deepcopy(board)
    change(copied)
    return copied


def first_panel(board: Board) -> dict[str, Any]:
    return panels(board)[0]


def test_layout_ids_unique_no_overlap_within_24_columns(board: Board) -> None:
    assert layout_problems(board) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda b: first_panel(b).update(id=panels(b)[1]["id"]), "used more than once"),
        (lambda b: first_panel(b)["gridPos"].update(x=20, w=8), "outside the 24 columns"),
        (lambda b: first_panel(b)["gridPos"].update(panels(b)[1]["gridPos"]), "overlaps"),
    ],
    ids=["duplicate-id", "overflow", "overlap"],
)
def test_layout_check_catches(board: Board, change: Callable[[Board], None], expected: str) -> None:
    assert any(expected in p for p in layout_problems(mutated(board, change)))


def test_every_query_has_a_unique_ref_id_per_panel(board: Board) -> None:
    assert ref_id_problems(board) == []
    assert all(t["refId"] for _, _, t in all_targets(board))


@pytest.mark.parametrize(
    "change",
    [
        lambda b: panel_by_title(b, "Request Duration")["targets"][1].update(refId="A"),
        lambda b: panel_by_title(b, "Request Duration")["targets"][1].pop("refId"),
    ],
    ids=["duplicate", "missing"],
)
def test_ref_id_check_catches(board: Board, change: Callable[[Board], None]) -> None:
    assert ref_id_problems(mutated(board, change))


def test_every_expression_parses(board: Board) -> None:
    assert promql_problems(board) == []
    assert len(list(targets(board))) >= 20


def test_promql_check_catches_a_syntax_error(board: Board) -> None:
    def break_expr(b: Board) -> None:
        panel_by_title(b, "Error Rate")["targets"][0]["expr"] += " +"

    assert promql_problems(mutated(board, break_expr))


def promtool() -> str:
    found = shutil.which("promtool")
    need(found is not None, "promtool (Debian package prometheus) is not installed")
    assert found is not None
    return found


def test_prometheus_parses_every_expression(board: Board, tmp_path: Path) -> None:
    assert promtool_problems(board, promtool(), tmp_path) == []


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (f"sum(up{{{JOB}}}) +", "parse error"),
        (f'sort_by_label(up{{{JOB}}}, "instance")', "sort_by_label"),  # PromQL 3, not in 2.42
    ],
    ids=["syntax", "newer-function"],
)
def test_promtool_check_catches(board: Board, tmp_path: Path, expr: str, expected: str) -> None:
    def replace(b: Board) -> None:
        panel_by_title(b, "Cache Entries")["targets"][0]["expr"] = expr

    problems = promtool_problems(mutated(board, replace), promtool(), tmp_path)
    assert any(expected in p for p in problems), problems


# --- dashboard-linter rules and dashboards/.lint --------------------------------------------


def test_lint_rules_pass_with_the_recorded_exclusions(board: Board) -> None:
    rules = exclusions()
    left = [f for f in lint(board) if not excluded(f, board, rules)]
    assert left == []


def test_every_exclusion_has_a_reason_and_is_still_needed() -> None:
    rules = exclusions()
    boards = [load_board(path) for path in COMMITTED]
    findings = [(b, f) for b in boards for f in lint(b)]
    for rule, entry in rules.items():
        assert rule in RULES, f".lint: unknown rule {rule}"
        assert str(entry.get("reason", "")).strip(), f".lint: {rule} has no reason"
        assert any(f.rule == rule for _, f in findings), f".lint: {rule} excludes nothing, drop it"
        for item in entry.get("entries") or []:
            one = {rule: {**entry, "entries": [item]}}
            assert any(f.rule == rule and excluded(f, b, one) for b, f in findings), (
                f".lint: {rule} entry {item} excludes nothing, drop it"
            )


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (
            lambda b: panel_by_title(b, "Request Results")["targets"][0].update(
                expr=panel_by_title(b, "Request Results")["targets"][0]["expr"].replace(
                    "$__rate_interval", "5m"
                )
            ),
            "target-rate-interval-rule",
        ),
        (
            lambda b: panel_by_title(b, "Cache Entries")["targets"][0].update(
                expr="sum(cap_verifier_cache_entries)"
            ),
            "target-job-rule",
        ),
        (
            lambda b: panel_by_title(b, "Cache Entries").update(
                datasource={"type": "prometheus", "uid": "prometheus"}
            ),
            "panel-datasource-rule",
        ),
        (
            lambda b: panel_by_title(b, "Cache Entries")["targets"][0].pop("datasource"),
            "panel-datasource-rule",
        ),
        (
            lambda b: panel_by_title(b, "Cache Entries").pop("description"),
            "panel-title-description-rule",
        ),
        (lambda b: b.update(editable=True), "uneditable-dashboard"),
    ],
    ids=[
        "fixed-rate-range",
        "no-job-matcher",
        "fixed-datasource",
        "target-datasource",
        "no-description",
        "editable",
    ],
)
def test_lint_catches(board: Board, change: Callable[[Board], None], rule: str) -> None:
    rules = exclusions()
    bad = mutated(board, change)
    assert rule in {f.rule for f in lint(bad) if not excluded(f, bad, rules)}


# --- ORR 3.2 panels: the checklist's numbers, the config's, the panel's agree ---------------


def exprs(panel: dict[str, Any]) -> list[str]:
    return [t["expr"] for t in panel["targets"]]


@pytest.mark.orr("3.2-04")
def test_request_results_split_by_result_ok_warn_fail(board: Board, table: Monitoring) -> None:
    panel = panel_by_title(board, "Request Results")
    assert panel["type"] == "timeseries"
    assert exprs(panel) == [
        f"sum by (result) (rate(cap_verifier_requests_total{{{table.api(JOB)}}}[$__rate_interval]))"
    ]
    assert panel["fieldConfig"]["defaults"]["unit"] == "reqps"
    colours = {
        o["matcher"]["options"]: o["properties"][0]["value"]["fixedColor"]
        for o in panel["fieldConfig"]["overrides"]
    }
    assert colours == {"ok": "green", "warn": "yellow", "fail": "red"}
    assert {r.lower() for r in re.findall(r"[A-Z]{2,}", orr_title("3.2-04"))} == set(colours)


@pytest.mark.orr("3.2-05")
def test_request_duration_shows_p95_and_p99_with_both_objectives(
    board: Board, table: Monitoring
) -> None:
    panel = panel_by_title(board, "Request Duration")
    assert panel["type"] == "timeseries"
    assert panel["fieldConfig"]["defaults"]["unit"] == "s"
    named = {int(q) / 100 for q in re.findall(r"p(\d+)", orr_title("3.2-05"))}
    assert named == {0.95, 0.99}, "the ORR line names p95 and p99"
    assert named <= set(table.latency_slis)
    assert exprs(panel) == [f"{table.latency_slis[o.quantile]}{{{JOB}}}" for o in table.slo.latency]
    assert threshold_values(panel) == [None, *(o.threshold_seconds for o in table.slo.latency)]
    assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "dashed"


@pytest.mark.orr("3.2-06")
def test_error_rate_draws_the_max_error_ratio(board: Board, table: Monitoring) -> None:
    panel = panel_by_title(board, "Error Rate")
    assert panel["type"] == "timeseries"
    assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert exprs(panel) == [f"{error_ratio('5m')}{{{JOB}}}"]  # HighErrorRate's recording rule
    assert threshold_values(panel) == [None, table.slo.max_error_ratio]
    assert table.slo.max_error_ratio == orr_percent("3.2-06")
    assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "dashed"


@pytest.mark.orr("3.2-07")
def test_cache_hit_rate_draws_the_min_cache_hit_ratio(board: Board, table: Monitoring) -> None:
    panel = panel_by_title(board, "Cache Hit Rate")
    assert panel["type"] == "timeseries"
    assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert exprs(panel)[0] == f"{CACHE_HIT_RATIO}{{{JOB}}}"  # LowCacheHitRate's recording rule
    assert threshold_values(panel) == [None, table.slo.min_cache_hit_ratio]
    assert table.slo.min_cache_hit_ratio == orr_percent("3.2-07")
    assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "dashed"


@pytest.mark.orr("3.2-08")
def test_total_requests_is_a_stat_with_a_sparkline(board: Board) -> None:
    panel = panel_by_title(board, "Total Requests")
    assert panel["type"] == "stat"
    assert panel["options"]["graphMode"] == "area", "the sparkline"
    (target,) = panel["targets"]
    assert target["range"] is True, "a sparkline needs a range query"
    assert target["expr"] == f"sum({REQUESTS_RATE}{{{JOB}}})"


# --- every other threshold from alerts/config.yaml ------------------------------------------


def severity_colors(*severities: monitoring.Severity) -> list[str]:
    return [SEVERITY_COLORS[s] for s in severities]


def test_slo_panels_follow_the_objective_and_the_burn_rate_alerts(
    board: Board, table: Monitoring
) -> None:
    period, target = table.slo.period, table.slo.availability_target
    availability = panel_by_title(board, f"Availability ({period})")
    assert threshold_values(availability) == [None, target]
    assert all(f"[{period}]" in e for e in exprs(availability))
    remaining = panel_by_title(board, f"Error Budget Remaining ({period})")
    assert threshold_values(remaining) == [None, 0]
    assert exprs(remaining)[0].endswith(f" / {table.error_budget:g}")
    burn = panel_by_title(board, "Error Budget Burn Rate")
    factors = sorted({w.factor for w in table.burn_rate_windows})
    assert threshold_values(burn) == [None, *factors]
    most_urgent = {
        f: min(w.severity for w in table.burn_rate_windows if w.factor == f) for f in factors
    }
    assert threshold_colors(burn)[1:] == severity_colors(*(most_urgent[f] for f in factors))
    assert exprs(burn) == [
        f"{error_ratio(w)}{{{JOB}}} / {table.error_budget:g}" for w in table.burn_ranges
    ]


def test_alert_thresholds_are_drawn_in_their_severity(board: Board, table: Monitoring) -> None:
    a = table.alerts
    down = a.target_down
    expected: dict[str, tuple[list[float | None], list[str]]] = {
        "5xx per Minute": (
            [None, a.fivexx_spike.per_minute],
            severity_colors(a.fivexx_spike.severity),
        ),
        "Auth Failures by Reason": (
            [None, a.high_auth_failure_rate.ratio],
            severity_colors(a.high_auth_failure_rate.severity),
        ),
        "Auth Failures per Second": (
            [None, a.high_auth_failure_rate.min_rate_per_second],
            severity_colors(a.high_auth_failure_rate.severity),
        ),
        "Targets Down": (
            [None, down.partial.down_percent, 100],
            severity_colors(down.partial.severity, down.total.severity),
        ),
        "Cache Lookups": (
            [None, a.low_cache_hit_rate.min_lookups_per_second],
            severity_colors(a.low_cache_hit_rate.severity),
        ),
        "JWKS Age": (
            [None, 0, table.jwks.cache_ttl_seconds, table.jwks.max_stale_seconds],
            ["green", *severity_colors(a.jwks_stale.severity, a.jwks_expired.severity)],
        ),
        "Endpoint Probe": ([None, 1], ["green"]),
        "Certificate Days Left": (
            [None, 0, a.certificate_expiry.days],
            [*severity_colors(a.certificate_expiry.severity), "green"],
        ),
    }
    for title, (values, colours) in expected.items():
        panel = panel_by_title(board, title)
        assert threshold_values(panel) == values, title
        assert threshold_colors(panel)[1:] == colours, title
    assert (
        threshold_colors(panel_by_title(board, "JWKS Age"))[0]
        == SEVERITY_COLORS[a.jwks_never_loaded.severity]
    )
    assert (
        threshold_colors(panel_by_title(board, "Endpoint Probe"))[0]
        == SEVERITY_COLORS[a.endpoint_down.severity]
    )


def config_numbers(value: Any) -> set[float]:
    """Every number of the config, however deep."""
    if isinstance(value, dict):
        return {n for v in value.values() for n in config_numbers(v)}
    if isinstance(value, list):
        return {n for v in value for n in config_numbers(v)}
    if isinstance(value, bool):
        return set()
    return {value} if isinstance(value, int | float) else set()


def invented(board: Board, config: dict[str, Any]) -> list[tuple[str, float | None]]:
    """(panel, value) of every threshold that is neither a number of the config nor one that
    needs none (:data:`DEFINITIONAL`)."""
    known = config_numbers(config) | DEFINITIONAL
    return [
        (panel["title"], value)
        for panel in panels(board)
        for value in threshold_values(panel)[1:]
        if value not in known
    ]


def test_no_threshold_is_written_twice(board: Board, config: dict[str, Any]) -> None:
    """No number on the dashboard is typed anywhere but in the config."""
    assert invented(board, config) == []


def test_an_invented_threshold_is_caught(board: Board, config: dict[str, Any]) -> None:
    def edit(b: Board) -> None:
        threshold_steps = panel_by_title(b, "Error Rate")["fieldConfig"]["defaults"]["thresholds"]
        threshold_steps["steps"][1]["value"] = 0.042

    assert invented(mutated(board, edit), config) == [("Error Rate", 0.042)]


# --- a changed config changes the panels ----------------------------------------------------


def set_key(config: dict[str, Any], dotted: str, value: Any) -> None:
    """``alerts.FivexxSpike.per_minute`` or ``burn_rate_windows.0.factor`` set to ``value``."""
    *parents, last = dotted.split(".")
    node: Any = config
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[int(last) if isinstance(node, list) else last] = value


def generated_from(config: dict[str, Any], tmp_path: Path) -> Board:
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    board: Board = json.loads(dashboard_generator.generate(monitoring.load(path))["verifier.json"])
    return board


CONFIG_CHANGES: list[tuple[str, Any, str, list[float | None]]] = [
    ("slo.max_error_ratio", 0.02, "Error Rate", [None, 0.02]),
    (
        "slo.latency",
        [
            {"quantile": 0.95, "threshold_seconds": 0.3},
            {"quantile": 0.99, "threshold_seconds": 0.7},
        ],
        "Request Duration",
        [None, 0.3, 0.7],
    ),
    ("slo.min_cache_hit_ratio", 0.7, "Cache Hit Rate", [None, 0.7]),
    ("slo.availability_target", 0.995, f"Availability ({PERIOD})", [None, 0.995]),
    ("burn_rate_windows.0.factor", 20, "Error Budget Burn Rate", [None, 1, 3, 6, 20]),
    ("alerts.FivexxSpike.per_minute", 25, "5xx per Minute", [None, 25]),
    ("alerts.HighAuthFailureRate.ratio", 0.2, "Auth Failures by Reason", [None, 0.2]),
    (
        "alerts.HighAuthFailureRate.min_rate_per_second",
        1,
        "Auth Failures per Second",
        [None, 1],
    ),
    ("alerts.LowCacheHitRate.min_lookups_per_second", 0.5, "Cache Lookups", [None, 0.5]),
    ("alerts.VerifierTargetDown.partial.down_percent", 25, "Targets Down", [None, 25, 100]),
    ("alerts.VerifierCertificateExpiresSoon.days", 14, "Certificate Days Left", [None, 0, 14]),
    ("jwks.cache_ttl_seconds", 300, "JWKS Age", [None, 0, 300, 3600]),
    ("jwks.max_stale_seconds", 7200, "JWKS Age", [None, 0, 600, 7200]),
]
"""(dotted key, new value, panel, its thresholds then)."""


@pytest.mark.parametrize(
    ("key", "value", "title", "expected"),
    [pytest.param(*change, id=change[0]) for change in CONFIG_CHANGES],
)
def test_a_changed_threshold_in_the_config_changes_the_panel(
    board: Board,
    config: dict[str, Any],
    tmp_path: Path,
    key: str,
    value: Any,
    title: str,
    expected: list[float | None],
) -> None:
    """Read from the config, not equal by coincidence: change the config, the panel follows."""
    assert threshold_values(panel_by_title(board, title)) != expected
    changed = copy.deepcopy(config)
    set_key(changed, key, value)
    assert threshold_values(panel_by_title(generated_from(changed, tmp_path), title)) == expected


def test_a_changed_budget_changes_the_burn_rate_queries(
    config: dict[str, Any], tmp_path: Path
) -> None:
    changed = copy.deepcopy(config)
    set_key(changed, "slo.availability_target", 0.995)
    board = generated_from(changed, tmp_path)
    assert all(
        e.endswith(" / 0.005") for e in exprs(panel_by_title(board, "Error Budget Burn Rate"))
    )
    assert exprs(panel_by_title(board, f"Error Budget Remaining ({PERIOD})"))[0].endswith(
        " / 0.005"
    )


def test_a_changed_severity_recolours_its_line(config: dict[str, Any], tmp_path: Path) -> None:
    changed = copy.deepcopy(config)
    set_key(changed, "alerts.HighErrorRate.severity", "P3")
    board = generated_from(changed, tmp_path)
    assert threshold_colors(panel_by_title(board, "Error Rate")) == ["green", SEVERITY_COLORS["P3"]]


# --- every alert named on the panel that shows its series -----------------------------------


def test_every_alert_has_a_panel_showing_its_series(board: Board) -> None:
    for rule in alert_rules():
        name, alert_metrics = rule["alert"], metric_names(rule["expr"])
        matching = [
            p["title"]
            for p in panels(board)
            if name in p.get("description", "")
            and alert_metrics
            & {m for q, _, t in targets(board) if q is p for m in metric_names(t["expr"])}
        ]
        assert matching, f"{name}: no panel names it and queries {sorted(alert_metrics)}"


def watchers(panel: dict[str, Any], names: set[str]) -> set[str]:
    return {name for name in names if re.search(rf"\b{name}\b", panel.get("description", ""))}


def test_every_panel_names_the_alert_that_watches_it(board: Board) -> None:
    """A panel with a threshold line names its alert; any other says that none watches it."""
    names = {rule["alert"] for rule in alert_rules()}
    for panel in panels(board):
        named = watchers(panel, names)
        if threshold_values(panel)[1:]:
            assert named, f"{panel['title']}: a threshold line and no alert named"
        assert named or QUIET in panel["description"], f"{panel['title']}: names no alert"


def test_the_alert_name_check_catches_a_description_without_one(board: Board) -> None:
    names = {rule["alert"] for rule in alert_rules()}
    panel = copy.deepcopy(panel_by_title(board, "Error Rate"))
    assert watchers(panel, names) == {"HighErrorRate"}
    panel["description"] = panel["description"].replace("HighErrorRate", "the alert")
    assert watchers(panel, names) == set()
