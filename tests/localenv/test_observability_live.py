"""Observability, live on the local environment of `make up` (issue 12): the real Prometheus
scrapes the real verifier and probes it through the blackbox exporter; traffic with auth
failures, 4xx and 5xx (the registry locked beyond its busy timeout, then released: no data
changes) makes every dashboard query and recording rule return data; the paging alerts fire
with a shortened ``for`` (rendered into Prometheus' copies of the rule files, tests only) and
their pages reach the pager sink through Alertmanager's PagerDuty and Opsgenie configurations.

Every wait is bounded: the local environment scrapes and evaluates every 5 s and Alertmanager
sends a group's changes every 30 s.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import ssl
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
from ruamel.yaml import YAML

from cap_ops import monitoring
from cap_ops.localenv import configs, environment, pager_sink, supervisor
from cap_ops.localenv.layout import Layout
from cap_ops.localenv.pki import PKIFiles, issue_server_pair
from cap_ops.poll import wait_until
from cap_ops.smoke import SMOKE_POLICY_V1
from support.metrics import scrape
from support.playbooks import ROOT, Load

pytestmark = pytest.mark.localenv

SHORT_FOR = "10s"
"""The ``for`` of the alerts under test (the rule files keep theirs)."""
FIRE_WITHIN = 150.0
PAGE_WITHIN = 90.0
RESOLVE_WITHIN = 240.0
DASHBOARD = ROOT / "dashboards" / "verifier.json"
RATE_INTERVAL = "1m"  # Grafana's $__rate_interval at a 5 s scrape interval, rounded up
CERT_MANAGER_SERIES = frozenset({"certmanager_certificate_expiration_timestamp_seconds"})
"""cert-manager's controller runs on the clusters only: its series have no data locally."""
PROMETHEUS_SERIES = frozenset({"up"})
EXPIRING_IN = dt.timedelta(days=20)
OPSGENIE_PRIORITY = {"P0": "P1", "P1": "P2"}
"""The pager receiver's Opsgenie priority per severity (alerts/alertmanager.yml)."""


# --- Prometheus, the dashboard and the rules ----------------------------------------------


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=30)
        body = response.json()
        assert body["status"] == "success", f"{expr}: {body.get('error')}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def alerts(self, name: str) -> list[dict[str, Any]]:
        alerts = httpx.get(f"{self.url}/api/v1/alerts", timeout=30).json()["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == name]

    def firing(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.alerts(name) if a["state"] == "firing"]


def wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    wait_until(predicate, timeout, what, interval=1.0, ignore=(httpx.HTTPError, KeyError))


def dashboard_queries(table: monitoring.Monitoring) -> list[tuple[str, str]]:
    """(panel title, query) of every PromQL target of the dashboard, its variables filled in
    (the Loki panels' LogQL is checked by tests/dashboards; no Loki runs locally)."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = [p for row in board["panels"] for p in [row, *row.get("panels", [])]]
    variables = {"$__rate_interval": RATE_INTERVAL, "$job": table.job, "${job}": table.job}
    found = []
    for panel in panels:
        for target in panel.get("targets", []):
            source = target.get("datasource") or panel.get("datasource") or {}
            if source.get("type") == "loki":
                continue
            expr = target["expr"]
            for name in sorted(variables, key=len, reverse=True):
                expr = expr.replace(name, variables[name])
            found.append((panel["title"], expr))
    return found


def rule_documents() -> list[dict[str, Any]]:
    """Every rule of the generated rule files."""
    return [
        rule
        for path in sorted((ROOT / "alerts").glob("*.rules.yaml"))
        for group in YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]


def metric_names(expr: str) -> set[str]:
    found: list[Any] = []
    promql_parser.walk(promql_parser.parse(expr), found.append)
    names = set()
    for node in found:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            names.update(m.value for m in node.matchers.matchers if m.name == "__name__")
    return names


# --- traffic and faults ---------------------------------------------------------------------


class Api:
    """The verifier as a client sees it, with a token of the dev IdP's all-scopes client."""

    def __init__(self, env: dict[str, Any]) -> None:
        self.env = env
        self.context = ssl.create_default_context(cafile=env["ca_cert"])
        self.client = httpx.Client(base_url=env["verifier_url"], verify=self.context, timeout=30)

    def token(self) -> str:
        client = self.env["clients"]["all"]
        response = httpx.post(
            self.env["token_url"],
            data={"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"]),
            verify=self.context,
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def compile_new_policy(self, token: str) -> int:
        """A policy never stored before: the registry must write (and fails while locked)."""
        policy = {**SMOKE_POLICY_V1, "name": f"observability test {uuid.uuid4()}"}
        headers = {"Authorization": f"Bearer {token}"}
        return self.client.post(
            "/policy/compile", json={"policy": policy}, headers=headers
        ).status_code


@contextmanager
def registry_locked(layout: Layout) -> Iterator[None]:
    """The registry unavailable to writers: a write lock held beyond the verifier's busy
    timeout, so that every compile answers 503. Rolled back: the data stays as it was."""
    database = sqlite3.connect(layout.data / "registry.db", timeout=10, isolation_level=None)
    try:
        database.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        database.execute("ROLLBACK")
        database.close()


class FailingCompiles:
    """``workers`` threads compiling new policies while the registry is locked: 5xx."""

    def __init__(self, api: Api, workers: int) -> None:
        self.api = api
        self.token = api.token()
        self.codes: Counter[int] = Counter()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(workers)]

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.codes[self.api.compile_new_policy(self.token)] += 1
            except httpx.HTTPError:
                self.codes[0] += 1

    def __enter__(self) -> FailingCompiles:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def drive_client_errors(api: Api, token: str, rounds: int = 10) -> Counter[int]:
    """Refused requests (no token, a forged one) and 4xx (an unknown policy, a bad body)."""
    codes: Counter[int] = Counter()
    forged = token[:-8] + ("A" * 8 if not token.endswith("A" * 8) else "B" * 8)
    for _ in range(rounds):
        codes[api.client.get("/policy/v2/lksg.v1").status_code] += 1
        bad = {"Authorization": f"Bearer {forged}"}
        codes[api.client.get("/policy/v2/lksg.v1", headers=bad).status_code] += 1
        good = {"Authorization": f"Bearer {token}"}
        codes[api.client.get("/policy/v2/observability.missing", headers=good).status_code] += 1
        codes[api.client.post("/verify", json={"nothing": 1}, headers=good).status_code] += 1
    return codes


@contextmanager
def shortened_for(layout: Layout, *alerts: str) -> Iterator[None]:
    environment.override_for(layout, dict.fromkeys(alerts, SHORT_FOR))
    try:
        yield
    finally:
        environment.override_for(layout)


# --- the pager sink ---------------------------------------------------------------------------


class Pages:
    """What reaches the pager sink from now on."""

    def __init__(self, layout: Layout) -> None:
        self.log = layout.pages_log
        self.offset = self.log.stat().st_size if self.log.exists() else 0

    def of(self, alert: str, api: str, phase: str) -> list[pager_sink.Record]:
        records = pager_sink.read_records(self.log, self.offset)
        ours = [r for r in records if r["api"] == api and f"] {alert}:" in pager_sink.headline(r)]
        keys = {pager_sink.incident_key(r) for r in ours}
        if phase == pager_sink.RESOLVE:  # a resolve carries the trigger's key, not the text
            ours = [r for r in records if r["api"] == api and pager_sink.incident_key(r) in keys]
        return [r for r in ours if pager_sink.phase(r) == phase and 200 <= r["status"] < 300]

    def await_(self, alert: str, api: str, phase: str, timeout: float) -> pager_sink.Record:
        wait(lambda: bool(self.of(alert, api, phase)), timeout, f"{api} {phase} of {alert}")
        return self.of(alert, api, phase)[0]


def key_fingerprint(layout: Layout, receiver: str, kind: str, setting: str) -> str:
    """The fingerprint of the key file Alertmanager's ``receiver`` sends with ``kind``."""
    source = configs.alertmanager_source(layout)
    [config] = next(r for r in source["receivers"] if r["name"] == receiver)[kind]
    name = Path(config[setting]).name
    return pager_sink.fingerprint(configs.alertmanager_secrets(layout)[name])


def assert_paged(
    layout: Layout, pages: Pages, alert: dict[str, Any]
) -> tuple[pager_sink.Record, pager_sink.Record]:
    """The alert's PagerDuty event and Opsgenie alert, with the right key, severity, runbook."""
    name, severity = alert["labels"]["alertname"], alert["labels"]["severity"]
    runbook = alert["annotations"]["runbook_url"]
    assert runbook.endswith(f"runbooks/alerts/{name}.md"), runbook
    event = pages.await_(name, "pagerduty", pager_sink.TRIGGER, PAGE_WITHIN)
    assert event["key_sha256"] == key_fingerprint(
        layout, "pager", "pagerduty_configs", "routing_key_file"
    )
    assert event["severity"] == ("critical" if severity == "P0" else "error"), event
    assert event["summary"].startswith(f"[{severity}] {name}: "), event
    assert {"href": runbook, "text": "runbook"} in event["links"], event
    assert event["dedup_key"], event
    ticket = pages.await_(name, "opsgenie", pager_sink.TRIGGER, PAGE_WITHIN)
    assert ticket["key_sha256"] == key_fingerprint(
        layout, "pager", "opsgenie_configs", "api_key_file"
    )
    assert ticket["priority"] == OPSGENIE_PRIORITY[severity], ticket
    assert ticket["note"] == f"runbook: {runbook}", ticket
    return event, ticket


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table(layout: Layout) -> monitoring.Monitoring:
    return configs.monitoring_table(layout)


@pytest.fixture(scope="module")
def prometheus(local_env: dict[str, Any]) -> Prometheus:
    return Prometheus(local_env["prometheus_url"])


@pytest.fixture(scope="module")
def api(local_env: dict[str, Any]) -> Iterator[Api]:
    client = Api(local_env)
    yield client
    client.client.close()


@pytest.fixture(scope="module")
def traffic(
    layout: Layout,
    local_env: dict[str, Any],
    api: Api,
    prometheus: Prometheus,
    table: monitoring.Monitoring,
) -> Counter[int]:
    """Successful reads and verifications, refusals, 4xx and a few 5xx (too few to page),
    until Prometheus has recorded all of them."""
    codes = drive_client_errors(api, api.token())
    load = Load(layout.env_json, max_requests=300, max_seconds=30, pause=0.01)
    load.run()
    assert not load.failures, load.failures[:5]
    assert load.requests == 300
    codes[200] += load.requests
    with registry_locked(layout), FailingCompiles(api, workers=3) as failing:
        wait_until(lambda: failing.codes[503] >= 3, 30, "three 503s", interval=0.2)
    codes += failing.codes
    assert {200, 401, 404, 503} <= set(codes), codes
    errors = monitoring.error_ratio("5m")
    wait(
        lambda: (prometheus.value(f"{errors}{{{table.selector}}}") or 0) > 0,
        60,
        "the 5xx in Prometheus",
    )
    return codes


# --- ORR 3.1 / 3.2: metrics, recording rules, dashboard -----------------------------------


@pytest.mark.orr("3.1-02", "3.1-04", "3.1-05", "3.1-06", "3.1-07")
def test_every_metric_a_rule_or_panel_uses_is_exposed(
    layout: Layout,
    local_env: dict[str, Any],
    api: Api,
    traffic: Counter[int],
    table: monitoring.Monitoring,
) -> None:
    """The service's /metrics (as Prometheus scrapes it) and the blackbox exporter's probe
    expose every series the rules and the dashboard select, but the recorded ones, ``up`` and
    cert-manager's (clusters only)."""
    rules = rule_documents()
    used = {name for rule in rules for name in metric_names(rule["expr"])}
    used |= {name for _, expr in dashboard_queries(table) for name in metric_names(expr)}
    recorded = {rule["record"] for rule in rules if "record" in rule}
    exposed = {name for name, _ in scrape(api.client)}
    probe = httpx.get(
        f"{local_env['blackbox_url']}/probe",
        params={"module": table.probe.module, "target": configs.probe_target(layout)},
        timeout=30,
    )
    exposed |= {m.group(1) for m in re.finditer(r"^([a-z_:]+)[{ ]", probe.text, re.M)}
    assert "probe_success 1" in probe.text
    missing = used - recorded - exposed - PROMETHEUS_SERIES - CERT_MANAGER_SERIES
    assert not missing, f"used by a rule or panel, not exposed: {sorted(missing)}"
    assert {"cap_verifier_requests_total", "cap_verifier_cache_hit_ratio"} <= used & exposed


@pytest.mark.orr("3.1-02")
def test_prometheus_scrapes_the_verifier_and_the_probe(
    prometheus: Prometheus, table: monitoring.Monitoring
) -> None:
    assert prometheus.value(f"up{{{table.selector}}}") == 1
    assert prometheus.value(f"probe_success{{{table.probe_selector}}}") == 1


def test_every_recording_rule_returns_data(
    traffic: Counter[int], prometheus: Prometheus, table: monitoring.Monitoring
) -> None:
    records = sorted({rule["record"] for rule in rule_documents() if "record" in rule})
    assert records
    empty = [r for r in records if not prometheus.query(f"{r}{{{table.selector}}}")]
    assert not empty, f"recording rules without data: {empty}"


@pytest.mark.orr("3.2-03", "3.2-04", "3.2-05", "3.2-06", "3.2-07", "3.2-08")
def test_every_dashboard_query_returns_data(
    traffic: Counter[int], prometheus: Prometheus, table: monitoring.Monitoring
) -> None:
    """Each target of dashboards/verifier.json, as Grafana sends it with $job set to the
    service's job; cert-manager's certificate series exist on the clusters only."""
    queries = dashboard_queries(table)
    titles = {title for title, _ in queries}
    assert {
        "Request Results",
        "Request Duration",
        "Error Rate",
        "Cache Hit Rate",
        "Total Requests",
    } <= titles
    empty = [
        f"{title}: {expr}"
        for title, expr in queries
        if not metric_names(expr) & CERT_MANAGER_SERIES and not prometheus.query(expr)
    ]
    assert not empty, "panels without data:\n" + "\n".join(empty)
    results = {r["metric"]["result"] for r in prometheus.query(dict(queries)["Request Results"])}
    assert {"ok", "warn", "fail"} <= results


# --- ORR 3.3: the pages ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.orr("3.3-01", "3.3-04", "3.3-08", "3.3-09")
def test_5xx_page_through_pagerduty_and_opsgenie_and_resolve(
    layout: Layout,
    local_env: dict[str, Any],
    api: Api,
    prometheus: Prometheus,
) -> None:
    """The registry locked: compiles fail with 503 while reads go on; HighErrorRate (P1) and
    FivexxSpike (P0) fire and page; the lock released and the failures diluted by successful
    traffic, both resolve and so do their pages."""
    names = ("HighErrorRate", "FivexxSpike")
    pages = Pages(layout)
    with shortened_for(layout, *names):
        with (
            Load(layout.env_json, max_requests=10**6, max_seconds=FIRE_WITHIN, pause=0.05),
            registry_locked(layout),
            FailingCompiles(api, workers=4) as failing,
        ):
            wait(
                lambda: all(prometheus.firing(n) for n in names),
                FIRE_WITHIN,
                "HighErrorRate and FivexxSpike firing",
            )
        assert failing.codes[503] > 10, failing.codes
        assert set(failing.codes) == {503}, failing.codes  # nothing stored
        paged = {n: assert_paged(layout, pages, prometheus.firing(n)[0]) for n in names}
        # the fault is over: successful traffic brings the 5m error ratio under 1 %
        loads = [Load(layout.env_json, max_requests=10**6, max_seconds=RESOLVE_WITHIN, pause=0)]
        loads.append(Load(layout.env_json, max_requests=10**6, max_seconds=RESOLVE_WITHIN, pause=0))
        with loads[0], loads[1]:
            wait(
                lambda: not any(prometheus.alerts(n) for n in names),
                RESOLVE_WITHIN,
                "HighErrorRate and FivexxSpike resolved",
            )
    for name, (event, ticket) in paged.items():
        resolved = pages.await_(name, "pagerduty", pager_sink.RESOLVE, PAGE_WITHIN)
        assert resolved["dedup_key"] == event["dedup_key"]
        closed = pages.await_(name, "opsgenie", pager_sink.RESOLVE, PAGE_WITHIN)
        assert closed["alias"] == ticket["alias"]


@pytest.mark.slow
@pytest.mark.orr("3.3-08", "3.3-09")
def test_verifier_stopped_fails_the_probe_and_pages(
    layout: Layout, local_env: dict[str, Any], prometheus: Prometheus, table: monitoring.Monitoring
) -> None:
    pages = Pages(layout)
    name = "VerifierEndpointDown"
    with shortened_for(layout, name):
        supervisor.proxy(layout).supervisor.stopProcess("cap-verifier", True)
        try:
            wait(
                lambda: prometheus.value(f"probe_success{{{table.probe_selector}}}") == 0,
                60,
                "the probe failing",
            )
            wait(lambda: bool(prometheus.firing(name)), FIRE_WITHIN, f"{name} firing")
            alert = prometheus.firing(name)[0]
            assert alert["labels"]["job"] == table.probe.job
            assert_paged(layout, pages, alert)
        finally:
            supervisor.start(layout, "cap-verifier")
        wait(
            lambda: prometheus.value(f"probe_success{{{table.probe_selector}}}") == 1,
            60,
            "the probe passing again",
        )
        wait(lambda: not prometheus.alerts(name), FIRE_WITHIN, f"{name} resolved")


@pytest.mark.slow
@pytest.mark.orr("3.3-08")
def test_a_certificate_expiring_in_20_days_fires_the_expiry_alert(
    layout: Layout, prometheus: Prometheus, table: monitoring.Monitoring
) -> None:
    """The local CA issues a serving certificate valid for 20 days; the verifier serves it,
    the probe reads its expiry and VerifierCertificateExpiresSoon (P2) fires and opens a
    ticket; the original certificate is served again afterwards."""
    pki = PKIFiles.under(layout.pki)
    original = pki.server_cert.read_bytes(), pki.server_key.read_bytes()
    name = "VerifierCertificateExpiresSoon"
    days_left = f"(min(probe_ssl_earliest_cert_expiry{{{table.probe_selector}}}) - time()) / 86400"
    pages = Pages(layout)
    with shortened_for(layout, name):
        try:
            issue_server_pair(pki, EXPIRING_IN, pki.server_cert, pki.server_key)
            supervisor.restart(layout, "cap-verifier")
            wait(lambda: (prometheus.value(days_left) or 99) < 21, 60, "the short-lived cert")
            wait(lambda: bool(prometheus.firing(name)), FIRE_WITHIN, f"{name} firing")
            alert = prometheus.firing(name)[0]
            assert alert["labels"]["severity"] == table.alerts.certificate_expiry.severity
            ticket = pages.await_(name, "opsgenie", pager_sink.TRIGGER, PAGE_WITHIN)
            assert ticket["note"] == f"runbook: {alert['annotations']['runbook_url']}"
        finally:
            pki.server_cert.write_bytes(original[0])
            pki.server_key.write_bytes(original[1])
            supervisor.restart(layout, "cap-verifier")
        wait(lambda: (prometheus.value(days_left) or 0) > 30, 60, "the original cert")
        wait(lambda: not prometheus.firing(name), FIRE_WITHIN, f"{name} resolved")


# --- make test-page -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.orr("3.3-09")
def test_make_test_page_reports_the_page_and_its_resolve(local_env: dict[str, Any]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cap_ops.test_page"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^\s+pagerduty trigger 202 .*key=sha256:[0-9a-f]{12}", result.stdout, re.M)
    assert re.search(r"^\s+opsgenie\s+trigger 202 .*priority=\"P2\"", result.stdout, re.M)
    assert "OK: paged through" in result.stdout
