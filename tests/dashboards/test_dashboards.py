"""The generated dashboards: drift, shared settings, layout, queries, lint, ORR 3.2 panels, and
thresholds against alerts/config.yaml. Each structural check is also shown to catch a bad input."""

from __future__ import annotations

import copy
import hashlib
import json
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
    board_metric_names,
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
    recording_rules,
    ref_id_problems,
    targets,
    threshold_values,
)
from dashboard_checks import alerts as alert_rules

from cap_ops import monitoring
from dashboards import generate as dashboard_generator

VERIFIER = DASHBOARDS / "verifier.json"
ORR_KEY_PANELS = ("Request Results", "Request Duration", "Error Rate", "Cache Hit Rate")
ORR_STAT_PANEL = "Total Requests"


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
def config() -> dict[str, Any]:
    data = load_yaml(CONFIG)
    assert isinstance(data, dict)
    return data


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
    assert all(t["refId"] for _, _, t in targets(board))


@pytest.mark.parametrize(
    "change",
    [
        lambda b: panel_by_title(b, "Error Rate")["targets"][1].update(refId="A"),
        lambda b: panel_by_title(b, "Error Rate")["targets"][1].pop("refId"),
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


# --- dashboard-linter rules and dashboards/.lint --------------------------------------------


def test_lint_rules_pass_with_the_recorded_exclusions(board: Board) -> None:
    rules = exclusions()
    left = [f for f in lint(board) if not excluded(f, board, rules)]
    assert left == []


def test_every_exclusion_has_a_reason_and_is_still_needed() -> None:
    rules = exclusions()
    findings = [f for path in COMMITTED for f in lint(load_board(path))]
    for rule, entry in rules.items():
        assert rule in RULES, f".lint: unknown rule {rule}"
        assert str(entry.get("reason", "")).strip(), f".lint: {rule} has no reason"
        assert any(f.rule == rule for f in findings), f".lint: {rule} excludes nothing, drop it"


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


# --- ORR 3.2 key panels, thresholds from alerts/config.yaml ---------------------------------


@pytest.mark.orr("3.2-04", "3.2-05", "3.2-06", "3.2-07", "3.2-08")
def test_key_panels_exist(board: Board) -> None:
    for title in ORR_KEY_PANELS:
        assert panel_by_title(board, title)["type"] == "timeseries", title
    total = panel_by_title(board, ORR_STAT_PANEL)
    assert total["type"] == "stat"
    assert total["options"]["graphMode"] == "area", "Total Requests needs its sparkline"


@pytest.mark.orr("3.2-04")
def test_request_results_split_by_result_ok_warn_fail(board: Board) -> None:
    (target,) = panel_by_title(board, "Request Results")["targets"]
    assert "sum by (result)" in target["expr"]
    assert metric_names(target["expr"]) == {"cap_verifier_requests_total"}
    overrides = panel_by_title(board, "Request Results")["fieldConfig"]["overrides"]
    assert {o["matcher"]["options"] for o in overrides} == {"ok", "warn", "fail"}


@pytest.mark.orr("3.2-05")
def test_request_duration_shows_p95_and_p99_and_the_latency_objective(
    board: Board, config: dict[str, Any]
) -> None:
    panel = panel_by_title(board, "Request Duration")
    exprs = [t["expr"] for t in panel["targets"]]
    quantile = config["slo"]["latency_quantile"]
    assert any(e.startswith(f"histogram_quantile({quantile:g},") for e in exprs)
    assert any(e.startswith("histogram_quantile(0.99,") for e in exprs)
    assert threshold_values(panel) == [None, config["slo"]["latency_threshold_seconds"]]
    assert panel["fieldConfig"]["defaults"]["unit"] == "s"


def test_error_rate_thresholds_are_the_error_budget_and_the_fast_burn(
    board: Board, config: dict[str, Any]
) -> None:
    panel = panel_by_title(board, "Error Rate")
    budget = round(1 - config["slo"]["availability_target"], 10)
    fastest = max(config["burn_rate_windows"], key=lambda w: w["factor"])
    assert threshold_values(panel) == [None, budget, round(fastest["factor"] * budget, 10)]
    assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"
    # The plotted ratios are the fast-burn alert's two windows.
    assert {metric for t in panel["targets"] for metric in metric_names(t["expr"])} == {
        f"job:cap_verifier_request_errors:ratio_rate{fastest['short']}",
        f"job:cap_verifier_request_errors:ratio_rate{fastest['long']}",
    }


@pytest.mark.orr("3.2-07")
def test_cache_hit_rate_threshold_is_the_alert_ratio(board: Board, config: dict[str, Any]) -> None:
    panel = panel_by_title(board, "Cache Hit Rate")
    assert threshold_values(panel) == [None, config["alerts"]["VerifierCacheHitRatioLow"]["ratio"]]
    assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"


def test_other_thresholds_follow_the_config(board: Board, config: dict[str, Any]) -> None:
    jwks = config["jwks"]
    assert threshold_values(panel_by_title(board, "JWKS Age")) == [
        None,
        0,
        jwks["cache_ttl_seconds"],
        jwks["max_stale_seconds"],
    ]
    assert threshold_values(panel_by_title(board, "Auth Failure Ratio by Reason")) == [
        None,
        config["alerts"]["VerifierAuthFailuresHigh"]["ratio"],
    ]
    assert threshold_values(panel_by_title(board, "Targets Down")) == [
        None,
        config["alerts"]["VerifierTargetDown"]["warning"]["down_percent"],
    ]


def test_thresholds_move_with_the_config(tmp_path: Path, config: dict[str, Any]) -> None:
    """Read from the config, not equal by coincidence: change the config, the panels follow."""
    changed = copy.deepcopy(config)
    changed["slo"]["availability_target"] = 0.999
    changed["slo"]["latency_threshold_seconds"] = 0.25
    changed["alerts"]["VerifierCacheHitRatioLow"]["ratio"] = 0.7
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(changed))  # JSON is YAML
    board = json.loads(dashboard_generator.generate(monitoring.load(path))["verifier.json"])
    assert threshold_values(panel_by_title(board, "Error Rate")) == [None, 0.001, 0.0144]
    assert threshold_values(panel_by_title(board, "Request Duration")) == [None, 0.25]
    assert threshold_values(panel_by_title(board, "Cache Hit Rate")) == [None, 0.7]


# --- every alert has a panel; every recording rule read exists ------------------------------


def test_every_alert_has_a_panel_showing_its_series(board: Board) -> None:
    for rule in alert_rules():
        name, alert_metrics = rule["alert"], metric_names(rule["expr"])
        matching = [
            p["title"]
            for p in panels(board)
            if name in p.get("description", "")
            and alert_metrics & {m for t in p.get("targets", []) for m in metric_names(t["expr"])}
        ]
        assert matching, f"{name}: no panel names it and queries {sorted(alert_metrics)}"


def test_every_recording_rule_read_is_defined(board: Board) -> None:
    read = {m for m in board_metric_names(board) if ":" in m}
    assert read, "the dashboard reads no recording rule"
    assert read <= recording_rules(), sorted(read - recording_rules())
