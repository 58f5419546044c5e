"""Every series a dashboard queries exists: exposed by a real verifier (TLS, scraped after a
request, like the service integration tests) or recorded by a rule of alerts/*.rules.yaml."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from dashboard_checks import (
    COMMITTED,
    PROMETHEUS_SERIES,
    Board,
    board_metric_names,
    load_board,
    panel_by_title,
    recording_rules,
    unknown_metrics,
)

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


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_every_metric_is_exposed_or_recorded(path: Path, exposed: set[str]) -> None:
    board = load_board(path)
    assert board_metric_names(board) - PROMETHEUS_SERIES, "no service metric queried"
    assert unknown_metrics(board, exposed, recording_rules()) == set()


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
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variable["query"])
        assert match, f"{variable['name']}: expected label_values(<metric>, <label>)"
        assert match.group(1) in exposed, variable["query"]
