"""Checks of generated Grafana dashboards, each returning its findings (empty: passes).

The lint rules are those of grafana/dashboard-linter (the mixin's linter), reimplemented on
promql_parser; their exclusions live in ``dashboards/.lint``, in dashboard-linter's format.
Prometheus' own parser (``promtool check rules``, the 2.42 of the local environment) has the last
word on the syntax.
"""

from __future__ import annotations

import ast
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import promql_parser
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
LINT_FILE = DASHBOARDS / ".lint"
ALERTS = ROOT / "alerts"
CONFIG = ALERTS / "config.yaml"
COMMITTED = sorted(DASHBOARDS.glob("*.json"))
CONTRACT_LIST = ROOT / "tests" / "alerts" / "test_alerts.py"
"""Where the service's metrics are listed (``EXPORTED_METRICS``, contract §6): read, not imported,
since it is that suite's module."""

DATASOURCE_UID = "${datasource}"
LOKI = "loki"
"""The datasource type of the log panels, whose LogQL ``test_dashboard_logql.py`` checks."""
GRID_WIDTH = 24
# Grafana's global variables, replaced by plausible values before parsing (the linter's way);
# $__rate_interval by a value no one writes, so that the rate-interval rule can recognise it.
RATE_INTERVAL = "987654ms"
RATE_INTERVAL_RANGE = timedelta(milliseconds=987654)
GLOBAL_VARIABLES = {
    "$__rate_interval": RATE_INTERVAL,
    "${__rate_interval}": RATE_INTERVAL,
    "$__interval": "1m",
    "${__interval}": "1m",
    "$__range": "6h",
    "${__range}": "6h",
}
# Series in the queries that no verifier exposes: Prometheus writes them for every target.
PROMETHEUS_SERIES = frozenset({"up"})
# Series of the exporters the alerts read too: the blackbox exporter's probe (prober "http" with
# TLS; job ``probe.job`` of the config) and cert-manager's controller.
BLACKBOX_SERIES = frozenset(
    {"probe_success", "probe_duration_seconds", "probe_ssl_earliest_cert_expiry"}
)
CERT_MANAGER_SERIES = frozenset({"certmanager_certificate_expiration_timestamp_seconds"})
EXPORTER_SERIES = BLACKBOX_SERIES | CERT_MANAGER_SERIES

Board = dict[str, Any]


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def load_board(path: Path) -> Board:
    board = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(board, dict)
    return board


def panels(board: Board) -> list[dict[str, Any]]:
    """Every panel but the rows, collapsed rows' panels included."""
    found: list[dict[str, Any]] = []
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def datasource_type(panel: dict[str, Any], target: dict[str, Any]) -> str | None:
    """The type of the datasource a target queries: its own, else its panel's."""
    ref = target.get("datasource") or panel.get("datasource") or {}
    kind = ref.get("type")
    return kind if isinstance(kind, str) else None


def all_targets(board: Board) -> Iterator[tuple[dict[str, Any], int, dict[str, Any]]]:
    """(panel, index, target) of every query, whatever its language."""
    for panel in panels(board):
        for index, target in enumerate(panel.get("targets", [])):
            yield panel, index, target


def targets(board: Board) -> Iterator[tuple[dict[str, Any], int, dict[str, Any]]]:
    """(panel, index, target) of every PromQL query: all but the Loki ones."""
    for panel, index, target in all_targets(board):
        if datasource_type(panel, target) != LOKI:
            yield panel, index, target


def log_targets(board: Board) -> Iterator[tuple[dict[str, Any], int, dict[str, Any]]]:
    """(panel, index, target) of every LogQL query: those on a Loki datasource."""
    for panel, index, target in all_targets(board):
        if datasource_type(panel, target) == LOKI:
            yield panel, index, target


def panel_by_title(board: Board, title: str) -> dict[str, Any]:
    matches = [p for p in panels(board) if p.get("title") == title]
    assert len(matches) == 1, f"{len(matches)} panels titled {title!r}"
    return matches[0]


def threshold_steps(panel: dict[str, Any]) -> list[dict[str, Any]]:
    """The panel's threshold steps, the base first; none when it has no thresholds."""
    thresholds = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds") or {}
    steps: list[dict[str, Any]] = thresholds.get("steps", [])
    return steps


def threshold_values(panel: dict[str, Any]) -> list[float | None]:
    return [step.get("value") for step in threshold_steps(panel)]


def threshold_colors(panel: dict[str, Any]) -> list[str]:
    return [step["color"] for step in threshold_steps(panel)]


# --- PromQL ---------------------------------------------------------------------------------


def substitute(expr: str) -> str:
    """Grafana's global variables replaced; dashboard variables such as $job stay (in strings)."""
    for name in sorted(GLOBAL_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GLOBAL_VARIABLES[name])
    return expr


def parse(expr: str) -> promql_parser.Expr:
    return promql_parser.parse(substitute(expr))


def nodes(expr: str) -> list[Any]:
    found: list[Any] = []
    promql_parser.walk(parse(expr), found.append)
    return found


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    return [n for n in nodes(expr) if isinstance(n, promql_parser.VectorSelector)]


def metric_names(expr: str) -> set[str]:
    names = set()
    for selector in selectors(expr):
        if selector.name:
            names.add(selector.name)
        names.update(m.value for m in selector.matchers.matchers if m.name == "__name__")
    return names


def board_metric_names(board: Board) -> set[str]:
    return {name for _, _, target in targets(board) for name in metric_names(target["expr"])}


# --- Structural checks ----------------------------------------------------------------------


def layout_problems(board: Board) -> list[str]:
    """Unique ids; every panel inside the 24 columns; no two panels overlapping."""
    problems = []
    placed = [*board.get("panels", []), *panels(board)]
    placed = list({id(p): p for p in placed}.values())
    ids = [p.get("id") for p in placed]
    for duplicate in sorted({i for i in ids if ids.count(i) > 1}, key=str):
        problems.append(f"panel id {duplicate} used more than once")
    boxes = []
    for panel in placed:
        pos = panel.get("gridPos") or {}
        x, y, w, h = (pos.get(k) for k in ("x", "y", "w", "h"))
        if not (
            isinstance(x, int) and isinstance(y, int) and isinstance(w, int) and isinstance(h, int)
        ):
            problems.append(f"{panel.get('title')!r}: gridPos incomplete: {pos}")
            continue
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > GRID_WIDTH:
            problems.append(f"{panel.get('title')!r}: gridPos {pos} outside the 24 columns")
        boxes.append((panel.get("title"), x, y, w, h))
    for i, (a, ax, ay, aw, ah) in enumerate(boxes):
        for b, bx, by, bw, bh in boxes[i + 1 :]:
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                problems.append(f"{a!r} overlaps {b!r}")
    return problems


def ref_id_problems(board: Board) -> list[str]:
    problems = []
    for panel in panels(board):
        ref_ids = [t.get("refId") for t in panel.get("targets", [])]
        if not ref_ids:
            problems.append(f"{panel.get('title')!r}: no query")
        if any(not r for r in ref_ids):
            problems.append(f"{panel.get('title')!r}: a query without refId")
        if len(set(ref_ids)) != len(ref_ids):
            problems.append(f"{panel.get('title')!r}: refIds not unique: {ref_ids}")
    return problems


def promql_problems(board: Board) -> list[str]:
    problems = []
    for panel, index, target in targets(board):
        try:
            parse(target.get("expr", ""))
        except ValueError as exc:
            problems.append(f"{panel.get('title')!r} target {index}: {exc}")
    return problems


def promtool_problems(board: Board, promtool: str, directory: Path) -> list[str]:
    """``promtool check rules`` on every query as a recording rule: Prometheus' own parser (no
    PromQL 3 function passes 2.42). Empty: every query parses."""
    rules = [
        {"record": f"dashboard:query_{number}:check", "expr": substitute(target.get("expr", ""))}
        for number, (_, _, target) in enumerate(targets(board))
    ]
    path = directory / "dashboard-queries.rules.yaml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode == 0:
        return []
    return [line for line in result.stderr.splitlines() if "parse" in line] or [result.stderr]


def unknown_metrics(board: Board, exposed: set[str], recorded: set[str]) -> set[str]:
    """Names neither exposed by the service, nor recorded by a rule, nor written by Prometheus
    or the exporters the alerts read."""
    return board_metric_names(board) - exposed - recorded - PROMETHEUS_SERIES - EXPORTER_SERIES


def contract_metrics(path: Path = CONTRACT_LIST) -> frozenset[str]:
    """``EXPORTED_METRICS`` of the alert tests: the service's metrics as the contract lists
    them (a literal ``frozenset({...})``)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        names: list[ast.expr]
        value: ast.expr | None
        if isinstance(node, ast.Assign):
            names, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            names, value = [node.target], node.value
        else:
            continue
        if any(isinstance(name, ast.Name) and name.id == "EXPORTED_METRICS" for name in names):
            assert isinstance(value, ast.Call), f"{path.name}: EXPORTED_METRICS is not a call"
            assert value.args, f"{path.name}: EXPORTED_METRICS is empty"
            return frozenset(ast.literal_eval(value.args[0]))
    raise AssertionError(f"{path.name}: no EXPORTED_METRICS")


def job_matchers(expr: str, metrics: frozenset[str]) -> list[tuple[str, str | None]]:
    """(metric, value of its ``job="..."`` matcher or None) for every selector of ``metrics``."""
    found = []
    for selector in selectors(expr):
        if selector.name in metrics:
            jobs = [
                m.value
                for m in selector.matchers.matchers
                if m.name == "job" and m.op == promql_parser.MatchOp.Equal
            ]
            found.append((selector.name, jobs[0] if jobs else None))
    return found


def recording_rules() -> set[str]:
    names: set[str] = set()
    for path in sorted(ALERTS.glob("*.rules.yaml")):
        for group in load_yaml(path)["groups"]:
            names.update(rule["record"] for rule in group["rules"] if "record" in rule)
    return names


def alerts() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(ALERTS.glob("*.rules.yaml")):
        for group in load_yaml(path)["groups"]:
            found.extend(rule for rule in group["rules"] if "alert" in rule)
    return found


# --- dashboard-linter rules -----------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    rule: str
    panel: str | None
    target_idx: int | None
    message: str


def _variable(board: Board, name: str) -> dict[str, Any] | None:
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("name") == name:
            return dict(variable)
    return None


def _template_rule(name: str) -> Callable[[Board], list[str]]:
    def check(board: Board) -> list[str]:
        variable = _variable(board, name)
        if variable is None:
            return [f"is missing the {name} template"]
        problems = []
        if (variable.get("datasource") or {}).get("uid") != DATASOURCE_UID:
            problems.append(f"{name} template should use datasource '$datasource'")
        if variable.get("type") != "query":
            problems.append(f"{name} template should be a Prometheus query")
        if variable.get("label") != name.title():
            problems.append(f"{name} template should be labeled {name.title()!r}")
        if not variable.get("multi"):
            problems.append(f"{name} template should be a multi select")
        if variable.get("allValue") != ".+":
            problems.append(f"{name} template allValue should be '.+'")
        return problems

    return check


def _template_datasource(board: Board) -> list[str]:
    variable = _variable(board, "datasource")
    if variable is None or variable.get("type") != "datasource":
        return ["is missing the datasource template"]
    if variable.get("query") != "prometheus":
        return ["datasource template should be of type prometheus"]
    return []


def _template_reload(board: Board) -> list[str]:
    return [
        f"{v.get('name')} template should refresh on time range change"
        for v in board.get("templating", {}).get("list", [])
        if v.get("type") == "query" and v.get("refresh") != 2
    ]


def _uneditable(board: Board) -> list[str]:
    return [] if board.get("editable") is False else ["dashboard is editable"]


DASHBOARD_RULES: dict[str, Callable[[Board], list[str]]] = {
    "template-datasource-rule": _template_datasource,
    "template-job-rule": _template_rule("job"),
    "template-instance-rule": _template_rule("instance"),
    "template-on-time-change-reload-rule": _template_reload,
    "uneditable-dashboard": _uneditable,
}


def _panel_datasource(panel: dict[str, Any]) -> list[str]:
    refs = [panel.get("datasource") or {}]
    refs += [t.get("datasource") or {} for t in panel.get("targets", [])]
    if any(ref.get("uid") != DATASOURCE_UID for ref in refs):
        return ["does not use the templated datasource"]
    return []


def _panel_title_description(panel: dict[str, Any]) -> list[str]:
    return [] if panel.get("title") and panel.get("description") else ["missing title/description"]


def _panel_units(panel: dict[str, Any]) -> list[str]:
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    return [] if unit else ["no unit"]


PANEL_RULES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "panel-datasource-rule": _panel_datasource,
    "panel-title-description-rule": _panel_title_description,
    "panel-units-rule": _panel_units,
}


def _target_promql(expr: str) -> list[str]:
    try:
        parse(expr)
    except ValueError as exc:
        return [f"invalid PromQL: {exc}"]
    return []


def _target_rate_interval(expr: str) -> list[str]:
    problems = []
    for node in nodes(expr):
        if isinstance(node, promql_parser.Call) and node.func.name in ("rate", "irate"):
            ranges = [a.range for a in node.args if isinstance(a, promql_parser.MatrixSelector)]
            if any(r != RATE_INTERVAL_RANGE for r in ranges):
                problems.append(f"{node.func.name}() should use $__rate_interval")
    return problems


def _target_matcher(label: str) -> Callable[[str], list[str]]:
    def check(expr: str) -> list[str]:
        for selector in selectors(expr):
            if not any(
                m.name == label and m.op == promql_parser.MatchOp.Re and m.value == f"${label}"
                for m in selector.matchers.matchers
            ):
                return [f'{selector.name}: no {label}=~"${label}" matcher']
        return []

    return check


TARGET_RULES: dict[str, Callable[[str], list[str]]] = {
    "target-promql-rule": _target_promql,
    "target-rate-interval-rule": _target_rate_interval,
    "target-job-rule": _target_matcher("job"),
    "target-instance-rule": _target_matcher("instance"),
}

RULES = frozenset({*DASHBOARD_RULES, *PANEL_RULES, *TARGET_RULES})


def lint(board: Board) -> list[Finding]:
    """Every finding of every rule, before exclusions."""
    findings = [
        Finding(rule, None, None, message)
        for rule, check in DASHBOARD_RULES.items()
        for message in check(board)
    ]
    for panel in panels(board):
        for rule, panel_check in PANEL_RULES.items():
            findings += [Finding(rule, panel.get("title"), None, m) for m in panel_check(panel)]
    for panel, index, target in targets(board):
        expr = target.get("expr", "")
        for rule, target_check in TARGET_RULES.items():
            if rule != "target-promql-rule" and _target_promql(expr):
                continue  # invalid PromQL is the one rule's finding
            findings += [Finding(rule, panel.get("title"), index, m) for m in target_check(expr)]
    return findings


def exclusions(path: Path = LINT_FILE) -> dict[str, dict[str, Any]]:
    """``exclusions`` of a dashboard-linter ``.lint`` file: rule -> {reason, entries?}."""
    data = load_yaml(path) or {}
    assert set(data) <= {"exclusions", "warnings"}, f"{path.name}: unknown keys {set(data)}"
    assert not data.get("warnings"), f"{path.name}: warnings are not used, exclude or fix"
    return {rule: dict(entry or {}) for rule, entry in (data.get("exclusions") or {}).items()}


def excluded(finding: Finding, board: Board, rules: dict[str, dict[str, Any]]) -> bool:
    entry = rules.get(finding.rule)
    if entry is None:
        return False
    entries = entry.get("entries")
    if not entries:
        return True
    for item in entries:
        if "dashboard" in item and item["dashboard"] != board.get("title"):
            continue
        if "panel" in item and item["panel"] != finding.panel:
            continue
        if "targetIdx" in item and item["targetIdx"] != finding.target_idx:
            continue
        return True
    return False
