"""Checks of the runbooks (``runbooks/``) and ``docs/slo.md``, each a function that returns one
line per problem, so that a test can run it on a committed page and on a deliberately bad one.

:func:`reference_problems`: everything a page's code (fenced blocks and inline code) names must
exist: make targets, playbooks and their ``-e`` variables (the operations pages' checker,
``support.runbook_commands``), repository and ``.local/`` paths, metrics, alerts, namespaces,
local ports, links; every PromQL block parses. :func:`severity_problems` and
:func:`escalation_problems`: an alert page against ``severities`` of ``alerts/config.yaml``.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import promql_parser
from ruamel.yaml import YAML

from cap_ops.localenv.configs import PROGRAM_ORDER
from cap_ops.localenv.layout import Layout, Ports
from cap_ops.monitoring import SEVERITIES, Monitoring, Severity
from support.runbook_commands import problems as command_problems

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "runbooks"
ALERTS = ROOT / "alerts"
PLAYBOOKS = ROOT / "playbooks"

SECTIONS = (
    "Severity",
    "Meaning",
    "Impact",
    "Investigation",
    "Common causes",
    "Resolution",
    "Escalation",
)
"""The sections of every alert page, in this order (ORR 4.1-03)."""

OTHER_METRICS = frozenset(
    {
        "up",  # Prometheus, per scrape target
        "ALERTS",
        "probe_success",  # the blackbox exporter (probe job of alerts/config.yaml)
        "probe_http_status_code",
        "probe_duration_seconds",
        "probe_ssl_earliest_cert_expiry",
        "certmanager_certificate_expiration_timestamp_seconds",  # cert-manager
        "certmanager_certificate_ready_status",
    }
)
"""Metrics of other programs that the rules and runbooks read (the service's are the contract's)."""

_FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```$", re.S | re.M)
_INLINE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_METRIC = re.compile(
    r"\b((?:cap_verifier|probe|certmanager)_[a-z0-9_]+|[a-z_]+:[a-z0-9_]+:[a-z0-9_]+)"
)
_ALERT = re.compile(r"\b(Verifier[A-Z][A-Za-z]+|(?:High|Low|No|Fivexx)[A-Z][A-Za-z0-9]+)\b")
_PATH = re.compile(r"(?<![\w/.<>:-])((?:\.local|[a-z][\w.-]*)/[\w.<>*/-]*)")
_NAMESPACE = re.compile(r"(?:\s-n|--namespace)[= ]([a-z0-9][a-z0-9-]*)")
_LOCAL_PORT = re.compile(r"\b(?:127\.0\.0\.1|localhost):(\d+)")
_FORWARDED = re.compile(r"port-forward\s+\S+\s+(\d+)")


# --- Markdown -------------------------------------------------------------------------------


def code_blocks(text: str, lang: str | None = None) -> list[str]:
    """The fenced code blocks of ``text`` (of one language when ``lang`` is given)."""
    return [body for tag, body in _FENCE.findall(text) if lang is None or tag == lang]


def code(text: str) -> str:
    """Every piece of code of ``text``: fenced blocks, then inline code, one per line."""
    return "\n".join([*code_blocks(text), *_INLINE.findall(_FENCE.sub("\n", text))])


def sections(text: str) -> dict[str, str]:
    """``## heading`` -> its body up to the next ``## `` heading (fenced blocks respected)."""
    found: dict[str, str] = {}
    current, fenced = None, False
    for line in text.splitlines(keepends=True):
        fenced ^= line.startswith("```")
        if not fenced and line.startswith("## "):
            current = line[3:].strip()
            found[current] = ""
        elif current is not None:
            found[current] += line
    return found


# --- The facts -------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


@cache
def rules() -> tuple[dict[str, Any], ...]:
    """Every rule of alerts/*.rules.yaml."""
    return tuple(
        rule
        for path in sorted(ALERTS.glob("*.rules.yaml"))
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    )


def alert_severities() -> dict[str, list[Severity]]:
    """Alert name -> the severity of each of its rules (tiers), in file order."""
    found: dict[str, list[Severity]] = {}
    for rule in rules():
        if "alert" in rule:
            found.setdefault(rule["alert"], []).append(rule["labels"]["severity"])
    return found


def recording_rules() -> dict[str, str]:
    return {rule["record"]: rule["expr"] for rule in rules() if "record" in rule}


@cache
def known_metrics() -> frozenset[str]:
    """The service's metrics as docs/contract.md names them (a histogram also as its series),
    the recording rules and :data:`OTHER_METRICS`."""
    names = set(re.findall(r"`(cap_verifier_[a-z0-9_]+)`", (ROOT / "docs/contract.md").read_text()))
    names |= {f"{n}{s}" for n in names for s in ("_bucket", "_sum", "_count")}
    return frozenset(names | OTHER_METRICS | set(recording_rules()))


@cache
def namespaces() -> frozenset[str]:
    """Every namespace the rendered cluster objects (deploy/) name."""
    pattern = re.compile(r"^\s*namespace:\s*([a-z0-9][a-z0-9-]*)\s*$", re.M)
    return frozenset(
        n for p in (ROOT / "deploy").rglob("*.yaml") for n in pattern.findall(p.read_text())
    )


@cache
def local_paths() -> frozenset[str]:
    """The files and folders of the local environment (``.local/...``), from its layout."""
    layout = Layout.default()
    found = {f".local/logs/{program}.log" for program in (*PROGRAM_ORDER, "supervisord")}
    for name in dir(Layout):
        if isinstance(getattr(Layout, name), property):
            value = getattr(layout, name)
            if isinstance(value, Path) and value.is_relative_to(layout.local):
                found.add(str(value.relative_to(layout.root)))
    return frozenset(found)


def path_exists(token: str) -> bool | None:
    """Whether ``token`` names a file or folder of the repository (or of playbooks/, where the
    playbook commands run) or of ``.local/``; None when it is not such a path. ``<placeholder>``
    and ``*`` match anything."""
    token = token.rstrip("/")
    if token.startswith(".local/"):
        known = local_paths()
        folders = {k for k in known if "." not in k.rsplit("/", 1)[-1] and k != ".local/logs"}
        return token in known or any(token.startswith(f"{f}/") for f in folders)
    first = token.split("/", 1)[0]
    bases = [b for b in (ROOT, PLAYBOOKS) if (b / first).exists()]
    if not bases:
        return None
    pattern = re.sub(r"<[^>]*>", "*", token)
    return any(next(b.glob(pattern), None) is not None for b in bases)


# --- Checks ----------------------------------------------------------------------------------


def promql_problems(page: str, text: str) -> list[str]:
    """Every ``promql`` block parses, as one query or one query a line."""
    found = []
    for block in code_blocks(text, "promql"):
        lines = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
        for query in ["\n".join(lines)] if _parses("\n".join(lines)) else lines:
            if not _parses(query):
                found.append(f"{page}: PromQL does not parse: {query.strip()}")
    return found


def _parses(query: str) -> bool:
    try:
        promql_parser.parse(query)
    except ValueError:
        return False
    return True


def reference_problems(page: str, source: Path, text: str) -> list[str]:
    """Everything the code of ``text`` (the page at ``source``) names that does not exist."""
    snippets = code(text)
    found = command_problems(page, snippets) + promql_problems(page, text)
    found += [
        f"{page}: metric {m}: not exported"
        for m in sorted(set(_METRIC.findall(snippets)) - known_metrics())
    ]
    found += [
        f"{page}: alert {a}: no such alert"
        for a in sorted(set(_ALERT.findall(text)) - set(alert_severities()))
    ]
    without_urls = re.sub(r"\b[a-z]+://\S+", " ", snippets)
    found += [
        f"{page}: {p}: no such file or directory"
        for p in sorted(set(_PATH.findall(without_urls)))
        if path_exists(p) is False
    ]
    found += [
        f"{page}: namespace {n}: not in deploy/"
        for n in sorted(set(_NAMESPACE.findall(snippets)) - namespaces())
    ]
    ports = {str(p) for p in Ports().named().values()} | set(_FORWARDED.findall(snippets))
    found += [
        f"{page}: port {p}: not a port of the local environment"
        for p in sorted(set(_LOCAL_PORT.findall(snippets)) - ports)
    ]
    for target in _LINK.findall(text):
        if not re.match(r"[a-z]+:", target) and not (source.parent / target.split("#")[0]).exists():
            found.append(f"{page}: link {target}: no such file")
    return found


def severity_problems(alert: str, text: str, table: Monitoring) -> list[str]:
    """The Severity section names each severity of the alert's rules with its meaning and its L1
    response time, as ``severities`` of alerts/config.yaml has them."""
    body = sections(text).get("Severity", "")
    found = []
    for severity in dict.fromkeys(alert_severities()[alert]):
        level = table.severities.of(severity)
        for fact in (f"**{severity}**", level.meaning, f"`{level.respond}`"):
            if fact not in body:
                found.append(f"{alert}: Severity does not say {fact} ({severity})")
    return found


def escalation_problems(alert: str, text: str, table: Monitoring) -> list[str]:
    """The Escalation section: an L1, L2 and L3 line each linking contacts.md; for each severity
    of the alert, L1 names its response time and L2 its escalation time (alerts/config.yaml)."""
    body = sections(text).get("Escalation", "")
    lines = {
        lvl: next((ln for ln in body.splitlines() if f"**{lvl}**" in ln), "")
        for lvl in ("L1", "L2", "L3")
    }
    found = [
        f"{alert}: Escalation: no **{lvl}** line linking contacts.md"
        for lvl, ln in lines.items()
        if "contacts.md" not in ln
    ]
    for severity in dict.fromkeys(alert_severities()[alert]):
        level = table.severities.of(severity)
        for lvl, time in (("L1", level.respond), ("L2", level.escalate)):
            if f"{severity} `{time}`" not in lines[lvl]:
                found.append(f"{alert}: Escalation: {lvl} does not say {severity} `{time}`")
    return found


def scale_problems(page: str, text: str, table: Monitoring) -> list[str]:
    """The severity table of a page (the index, incident response): a row per severity with its
    meaning, L1 response and L2 time, as alerts/config.yaml has them."""
    found = []
    for severity in SEVERITIES:
        level = table.severities.of(severity)
        row = next((ln for ln in text.splitlines() if ln.startswith(f"| {severity} |")), "")
        for fact in (level.meaning, f"`{level.respond}`", f"`{level.escalate}`"):
            if fact not in row:
                found.append(f"{page}: the {severity} row does not say {fact}")
    return found
