"""Every ```logql block of runbooks/ and docs/, checked with Grafana's own grammar
(``@grafana/lezer-logql``, ``make logql``) through :mod:`cap_ops.logql`: it parses without an
error node, as one query or one query a line, and its stream selectors use only the labels of
:data:`cap_ops.log_store.STREAM_LABELS`. The request-finding runbook gives the query of
:mod:`cap_ops.log_store` for every environment's namespace, which finds a request's lines by the
``request_id`` field its ``json`` stage reads. Each check is also shown to reject a bad page."""

from __future__ import annotations

from pathlib import Path

import pytest
from infra.config import load_all
from infra.model.common import APP
from runbook_checks import ROOT, RUNBOOKS, code_blocks

from alerts import generate
from cap_ops import log_store, logql
from cap_ops.logql import QueryCheck, filters_after_parser, label_problems, syntax_problems
from support.require import need

PAGES = sorted([*RUNBOOKS.rglob("*.md"), *(ROOT / "docs").rglob("*.md")])
FIND_A_REQUEST = RUNBOOKS / generate.FIND_A_REQUEST


@pytest.fixture(autouse=True, scope="module")
def grammar() -> None:
    """Skipped on a laptop without ``make logql``, failed in CI."""
    reason = logql.unavailable()
    need(reason is None, reason or "")


def findings(checked: QueryCheck) -> list[str]:
    return [*syntax_problems(checked), *label_problems(checked, log_store.STREAM_LABELS)]


def logql_problems(page: str, text: str) -> list[str]:
    """Every ``logql`` block is one query, or one query a line (``#`` lines are comments)."""
    found = []
    for block in code_blocks(text, "logql"):
        (whole,) = logql.check([block])
        if whole.errors:
            lines = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
            found += [f"{page}: {p}" for checked in logql.check(lines) for p in findings(checked)]
        else:
            found += [f"{page}: {p}" for p in findings(whole)]
    return found


def name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_the_logql_blocks_are_found() -> None:
    """The request query and the errors query at least: the check below does not pass on
    nothing."""
    assert len(code_blocks(FIND_A_REQUEST.read_text(encoding="utf-8"), "logql")) >= 2


@pytest.mark.orr("3.4-09")
@pytest.mark.parametrize("page", PAGES, ids=name)
def test_every_logql_block_parses_and_selects_on_stream_labels_only(page: Path) -> None:
    assert logql_problems(name(page), page.read_text(encoding="utf-8")) == []


@pytest.mark.orr("3.4-09")
def test_the_runbook_finds_a_request_s_lines_by_its_request_id_field() -> None:
    text = FIND_A_REQUEST.read_text(encoding="utf-8")
    blocks = [block.strip() for block in code_blocks(text, "logql")]
    namespaces = sorted({cfg.namespace for cfg in load_all().values()})
    queries = [log_store.request_query(n, APP, generate.REQUEST_ID_PLACEHOLDER) for n in namespaces]
    assert [q for q in queries if q not in blocks] == []
    for checked in logql.check(queries):
        assert findings(checked) == []
        (expression,) = checked.expressions
        assert "request_id" not in {m.name for m in expression.matchers}
        assert filters_after_parser(expression, "request_id", "json")
    errors = [log_store.errors_query(n, APP) for n in namespaces]
    assert [q for q in errors if q not in blocks] == []
    assert "make logs REQUEST_ID=<id>" in text  # the local environment's equivalent


# The checks reject bad pages.


def test_a_page_with_broken_logql_is_caught() -> None:
    page = (
        '```logql\n{namespace="cap-verifier", app="cap-verifier" | json\n```\n\n'
        '```logql\n{app="cap-verifier"} | json | request_id = \n```\n\n'
        '```logql\n{app="cap-verifier", request_id="x"} | json\n```\n'
    )
    found = logql_problems("bad.md", page)
    assert [(p.split(": ", 1)[0], "syntax error" in p) for p in found] == [
        ("bad.md", True),
        ("bad.md", True),
        ("bad.md", False),
    ]
    assert "stream label 'request_id'" in found[2]


def test_a_block_of_one_query_a_line_is_read_line_by_line() -> None:
    good, bad = '{app="cap-verifier"} | json', '{app="cap-verifier"} | json | level ='
    assert logql_problems("ok.md", f"```logql\n# two queries\n{good}\n{good}\n```\n") == []
    (problem,) = logql_problems("bad.md", f"```logql\n{good}\n{bad}\n```\n")
    assert problem.startswith(f"bad.md: {bad!r}: syntax error")
