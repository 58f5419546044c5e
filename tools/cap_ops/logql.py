"""LogQL checked with Grafana's own grammar, not a regular expression.

:func:`check` hands queries to ``tools/logql/check.mjs``, which parses each with
``@grafana/lezer-logql`` (the grammar of Grafana's Loki query editor, pinned by
``tools/logql/package-lock.json`` and installed into ``.tools/logql`` by ``make logql``) and
answers, per query, the parser's error nodes and every stream selector's label matchers and
pipeline stages, read from the parse tree. :func:`syntax_problems` and :func:`label_problems`
turn that into one line per finding (empty: passes).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Collection, Sequence
from pathlib import Path

import msgspec
from msgspec import Struct

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "logql" / "check.mjs"
PREFIX = ROOT / ".tools" / "logql"
GRAMMAR = PREFIX / "node_modules" / "@grafana" / "lezer-logql"
INSTALL_COMMAND = "make logql"


class LogQLUnavailable(RuntimeError):
    """Node or the pinned grammar is missing: one line saying what to run."""


class Span(Struct, frozen=True):
    """Where the parser found an error: code-point offsets ``[start, end)`` into the query."""

    start: int = msgspec.field(name="from")
    end: int = msgspec.field(name="to")


class Matcher(Struct, frozen=True):
    """``name op "value"``; ``value`` is None when the query has no string there."""

    name: str
    op: str
    value: str | None


class Stage(Struct, frozen=True):
    """One pipeline stage: ``kind`` is the grammar's node name (``LabelParser``,
    ``LabelFilter``, ``LineFilters``...), ``parser`` the keyword of a parser stage (``json``,
    ``logfmt``...), ``matchers`` those of a label filter."""

    kind: str
    text: str
    parser: str | None
    matchers: tuple[Matcher, ...]


class Expression(Struct, frozen=True):
    """A log expression: the stream selector's matchers and its pipeline's stages."""

    matchers: tuple[Matcher, ...]
    stages: tuple[Stage, ...]


class QueryCheck(Struct, frozen=True):
    """What the grammar says of one query."""

    query: str
    errors: tuple[Span, ...]
    expressions: tuple[Expression, ...]


def unavailable() -> str | None:
    """Why :func:`check` cannot run (node or the pinned grammar missing), in one line; None when
    it can."""
    if shutil.which("node") is None:
        return f"node not found on PATH (Node 20): install it, then run {INSTALL_COMMAND}"
    if not GRAMMAR.is_dir():
        return f"{GRAMMAR} missing: run {INSTALL_COMMAND}"
    return None


def check(queries: Sequence[str]) -> list[QueryCheck]:
    """Parse every query with the pinned grammar, in one node process; same order as given."""
    reason = unavailable()
    if reason is not None:
        raise LogQLUnavailable(reason)
    done = subprocess.run(
        ["node", str(SCRIPT), str(PREFIX)],
        input=msgspec.json.encode(list(queries)),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise LogQLUnavailable(f"{SCRIPT} failed: {message[-1] if message else done.returncode}")
    return msgspec.json.decode(done.stdout, type=list[QueryCheck])


def syntax_problems(checked: QueryCheck) -> list[str]:
    """One line per error node, with the text from its position on."""
    return [
        f"{checked.query!r}: syntax error at {span.start}, "
        + (f"before {rest!r}" if (rest := checked.query[span.start :]) else "at the end")
        for span in checked.errors
    ]


def label_problems(checked: QueryCheck, allowed: Collection[str]) -> list[str]:
    """One line per stream selector matcher on a label outside ``allowed``."""
    return [
        f"{checked.query!r}: stream label {matcher.name!r} is not one of {sorted(allowed)}"
        for expression in checked.expressions
        for matcher in expression.matchers
        if matcher.name not in allowed
    ]


def filters_after_parser(expression: Expression, label: str, parser: str) -> bool:
    """Whether the pipeline filters on ``label`` after a ``parser`` stage (``json``): then the
    label is a field the parser reads from each line, not a stream label."""
    parsed = False
    for stage in expression.stages:
        parsed = parsed or stage.parser == parser
        if parsed and any(matcher.name == label for matcher in stage.matchers):
            return True
    return False
