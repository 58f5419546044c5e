"""The LogQL of the generated dashboards (every target on a Loki datasource, and the stream
selector of every Loki variable), checked with Grafana's own grammar (``@grafana/lezer-logql``,
``make logql``) through :mod:`cap_ops.logql`: it parses without an error node, its stream
selectors use only the labels of :data:`cap_ops.log_store.STREAM_LABELS`, and the request panel
finds a request's lines by the ``request_id`` field its ``json`` stage reads. Each check is also
shown to reject a bad query."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from dashboard_checks import COMMITTED, LOKI, Board, load_board, log_targets, panel_by_title
from infra.model.common import APP

from cap_ops import log_store, logql
from cap_ops.logql import filters_after_parser, label_problems, syntax_problems
from dashboards import generate as dashboard_generator
from support.require import need

VERIFIER = COMMITTED[0]
REQUEST_PANEL = "Lines of one request"
ERRORS_PANEL = "Errors"
NAMESPACE = f"${dashboard_generator.NAMESPACE_VARIABLE}"


@pytest.fixture(autouse=True, scope="module")
def grammar() -> None:
    """Skipped on a laptop without ``make logql``, failed in CI."""
    reason = logql.unavailable()
    need(reason is None, reason or "")


def variables(board: Board) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in board["templating"]["list"]}


def log_queries(board: Board) -> list[str]:
    """Every LogQL text of the board: the Loki targets' and the Loki variables' selectors."""
    streams = [
        v["query"]["stream"]
        for v in variables(board).values()
        if v["type"] == "query" and v["datasource"]["type"] == LOKI
    ]
    return [target["expr"] for _, _, target in log_targets(board)] + streams


def problems(board: Board) -> list[str]:
    return [
        problem
        for checked in logql.check(log_queries(board))
        for problem in (
            *syntax_problems(checked),
            *label_problems(checked, log_store.STREAM_LABELS),
        )
    ]


@pytest.fixture(scope="module")
def board() -> Board:
    return load_board(VERIFIER)


def test_the_log_queries_are_found(board: Board) -> None:
    """Both log panels and the namespace variable: the checks below do not pass on nothing."""
    assert len(log_queries(board)) == 3


@pytest.mark.orr("3.4-09")
def test_every_log_query_parses_and_selects_on_stream_labels_only(board: Board) -> None:
    assert "request_id" not in log_store.STREAM_LABELS
    assert problems(board) == []


@pytest.mark.orr("3.4-09")
def test_the_request_panel_finds_a_request_s_lines_by_its_request_id_field(board: Board) -> None:
    panel = panel_by_title(board, REQUEST_PANEL)
    (target,) = panel["targets"]
    assert target["expr"] == log_store.request_query(NAMESPACE, APP, log_store.REQUEST_ID_VARIABLE)
    (checked,) = logql.check([target["expr"]])
    assert syntax_problems(checked) == []
    (expression,) = checked.expressions
    selector = {(m.name, m.op, m.value) for m in expression.matchers}
    assert selector == {("namespace", "=", NAMESPACE), ("app", "=", APP)}
    assert filters_after_parser(expression, "request_id", "json")
    filters = [m for stage in expression.stages for m in stage.matchers]
    assert [(m.name, m.op, m.value) for m in filters] == [
        ("request_id", "=", log_store.REQUEST_ID_VARIABLE)
    ]
    # ... which is the text box a person types the id into, on the Loki datasource
    request_id = variables(board)[log_store.REQUEST_ID_VARIABLE.removeprefix("$")]
    assert request_id["type"] == "textbox"
    loki = variables(board)[dashboard_generator.LOGS_DATASOURCE_VARIABLE]
    assert (loki["type"], loki["query"]) == ("datasource", LOKI)
    assert loki["current"]["value"] == log_store.DATASOURCE_UID
    uid = f"${{{dashboard_generator.LOGS_DATASOURCE_VARIABLE}}}"
    assert panel["datasource"] == target["datasource"] == {"type": LOKI, "uid": uid}
    assert variables(board)["namespace"]["datasource"] == {"type": LOKI, "uid": uid}


def test_the_errors_panel_selects_the_error_levels_by_label(board: Board) -> None:
    (target,) = panel_by_title(board, ERRORS_PANEL)["targets"]
    assert target["expr"] == log_store.errors_query(NAMESPACE, APP)
    (checked,) = logql.check([target["expr"]])
    (expression,) = checked.expressions
    (level,) = [m for m in expression.matchers if m.name == "level"]
    assert level.op == "=~"
    assert level.value is not None
    assert set(level.value.split("|")) == {"ERROR", "CRITICAL"} <= set(log_store.LEVELS)


# The checks reject bad queries.


@pytest.mark.parametrize(
    "query",
    [
        '{namespace="cap-verifier", app="cap-verifier" | json',
        '{namespace="cap-verifier", app="cap-verifier"} | json | request_id = ',
        '{namespace="cap-verifier"} | jsn | request_id = "x"',
        '{namespace="cap-verifier"} | json | request_id = "x',
        "",
    ],
    ids=["unbalanced-brace", "filter-without-value", "unknown-stage", "unclosed-string", "empty"],
)
def test_a_broken_query_yields_errors(query: str) -> None:
    (checked,) = logql.check([query])
    assert checked.errors
    assert syntax_problems(checked)


def test_a_request_id_stream_label_is_refused() -> None:
    """Valid LogQL, refused by the label check: a label per request is a stream per request."""
    (checked,) = logql.check(['{namespace="cap-verifier", request_id="x"} | json'])
    assert syntax_problems(checked) == []
    assert label_problems(checked, log_store.STREAM_LABELS) == [
        f"{checked.query!r}: stream label 'request_id' is not one of"
        f" {sorted(log_store.STREAM_LABELS)}"
    ]


def test_a_filter_before_the_json_stage_is_no_field_filter() -> None:
    (checked,) = logql.check(['{app="cap-verifier"} | request_id = "x" | json'])
    (expression,) = checked.expressions
    assert not filters_after_parser(expression, "request_id", "json")


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('{namespace="$namespace", app="x"} | json | request_id = ', "syntax error"),
        ('{namespace="$namespace", request_id="$request_id"} | json', "'request_id'"),
    ],
    ids=["broken", "request-id-label"],
)
def test_the_board_check_catches_a_bad_panel(board: Board, expr: str, expected: str) -> None:
    bad = copy.deepcopy(board)
    panel_by_title(bad, REQUEST_PANEL)["targets"][0]["expr"] = expr
    found = problems(bad)
    assert len(found) == 1
    assert expected in found[0]
