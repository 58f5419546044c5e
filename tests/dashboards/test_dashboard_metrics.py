"""Every series a dashboard queries exists: a service metric of the contract list
(tests/alerts/test_alerts.py) and exposed by a real verifier (TLS, scraped after a request, like
the service integration tests), a recording rule of alerts/*.rules.yaml, Prometheus' ``up``, or
a series of the exporters the alerts read (the black-box probe, cert-manager), on their job."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from dashboard_checks import (
    BLACKBOX_SERIES,
    COMMITTED,
    EXPORTER_SERIES,
    LOKI,
    PROMETHEUS_SERIES,
    Board,
    board_metric_names,
    contract_metrics,
    job_matchers,
    load_board,
    panel_by_title,
    recording_rules,
    targets,
    unknown_metrics,
)

from cap_ops import monitoring
from cap_ops.devkit.service import ServiceProcess
from cap_ops.devkit.tokens import SigningKey, bearer, mint
from support.metrics import scrape


@pytest.fixture(scope="module")
def exposed(verifier: ServiceProcess, signing_key: SigningKey) -> set[str]:
    """Sample names of /metrics after one authenticated request (the request counters and the
    duration histogram only appear at the first)."""
    with verifier.client() as client:
        response = client.get("/policy/v2/lksg.none", headers=bearer(mint(signing_key)))
        assert response.status_code == 404
        samples = scrape(client)
    return {name for name, _ in samples}


# --- against the contract list and the rule files (no process) ------------------------------


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_every_metric_is_in_the_contract_or_recorded(path: Path) -> None:
    board = load_board(path)
    contract = set(contract_metrics())
    assert board_metric_names(board) & contract - PROMETHEUS_SERIES, "no service metric queried"
    assert unknown_metrics(board, contract, recording_rules()) == set()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("cap_verifier_requests_total", "cap_verifier_request_total"),
        ("job:cap_verifier_requests:rate5m", "job:cap_verifier_requests:rate10m"),
    ],
    ids=["service-metric", "recording-rule"],
)
def test_the_contract_check_catches_an_unknown_name(old: str, new: str) -> None:
    board: Board = copy.deepcopy(load_board(COMMITTED[0]))
    for _, _, target in targets(board):
        target["expr"] = target["expr"].replace(old, new)
    assert unknown_metrics(board, set(contract_metrics()), recording_rules()) == {new}


def test_the_exporters_series_are_selected_on_the_probe_job() -> None:
    """The black-box series on the probe's job, as the alerts select them; cert-manager's by
    the Certificate's name (its job is the controller's)."""
    table = monitoring.load()
    board = load_board(COMMITTED[0])
    found = [m for _, _, t in targets(board) for m in job_matchers(t["expr"], EXPORTER_SERIES)]
    assert {metric for metric, _ in found} == EXPORTER_SERIES, "a probe or certificate panel"
    for metric, job in found:
        assert job == (table.probe.job if metric in BLACKBOX_SERIES else None), metric


def test_the_probe_job_check_catches_the_service_job() -> None:
    board: Board = copy.deepcopy(load_board(COMMITTED[0]))
    target = panel_by_title(board, "Endpoint Probe")["targets"][0]
    target["expr"] = re.sub(r'job="[^"]*"', 'job="cap-verifier"', target["expr"])
    assert job_matchers(target["expr"], BLACKBOX_SERIES) == [("probe_success", "cap-verifier")]


# --- against a running verifier -------------------------------------------------------------


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_every_metric_is_exposed_or_recorded(path: Path, exposed: set[str]) -> None:
    board = load_board(path)
    assert board_metric_names(board) - PROMETHEUS_SERIES, "no service metric queried"
    assert unknown_metrics(board, exposed, recording_rules()) == set()


def test_the_contract_list_is_what_the_verifier_exposes(exposed: set[str]) -> None:
    assert contract_metrics() - PROMETHEUS_SERIES <= exposed


def test_the_metric_check_catches_a_misspelt_name(exposed: set[str]) -> None:
    board: Board = copy.deepcopy(load_board(COMMITTED[0]))
    target = panel_by_title(board, "Request Results")["targets"][0]
    target["expr"] = target["expr"].replace(
        "cap_verifier_requests_total", "cap_verifier_request_total"
    )
    assert unknown_metrics(board, exposed, recording_rules()) == {"cap_verifier_request_total"}


def test_the_metric_check_catches_an_undefined_recording_rule(exposed: set[str]) -> None:
    board: Board = copy.deepcopy(load_board(COMMITTED[0]))
    target = panel_by_title(board, "Error Rate")["targets"][0]
    target["expr"] = target["expr"].replace("ratio_rate5m", "ratio_rate10m")
    assert unknown_metrics(board, exposed, recording_rules()) == {
        "job:cap_verifier_request_errors:ratio_rate10m"
    }


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_every_variable_query_reads_an_exposed_metric(path: Path, exposed: set[str]) -> None:
    for variable in load_board(path)["templating"]["list"]:
        if variable["type"] != "query" or variable["datasource"]["type"] == LOKI:
            continue  # the Loki variable's stream selector: test_dashboard_logql.py
        match = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variable["query"])
        assert match, f"{variable['name']}: expected label_values(<metric>, <label>)"
        assert match.group(1) in exposed, variable["query"]
