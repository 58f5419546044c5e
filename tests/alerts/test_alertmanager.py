"""Alertmanager (alerts/alertmanager.yml): amtool accepts it and routes each severity to its
receiver; the pager receiver pages through PagerDuty and Opsgenie with keys read from files; the
maintenance window is the ORR's. Then a real Alertmanager (Debian's prometheus-alertmanager,
on a free loopback port, its integrations pointed at a local recorder) proves that the window
mutes P1, P2 and P3 and still pages P0, that outside it every severity reaches its receivers,
and that a page inhibits the warnings it explains.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alert_files import ALERTMANAGER, all_alerts, load_yaml, run, tool
from alertmanager_process import (
    BINARY,
    MAINTENANCE,
    Alertmanager,
    Notification,
    Recorder,
    firing_since,
    local_config,
    running,
)

from cap_ops import monitoring
from cap_ops.poll import wait_until

# Severity -> receiver (alerts/config.yaml `severities`): P0 and P1 page, P2 opens a ticket and
# tells the chat, P3 tells the chat. An alert without a known severity still reaches the team.
ROUTES = {"P0": "pager", "P1": "pager", "P2": "ticket", "P3": "chat", "": "ticket", "P9": "ticket"}
INTEGRATIONS = {
    "pager": {"pagerduty_configs", "opsgenie_configs"},
    "ticket": {"opsgenie_configs", "slack_configs"},
    "chat": {"slack_configs"},
}
SECRETS_DIR = "/etc/alertmanager/secrets/cap-verifier-alerting/"
INLINE_SECRETS = {"routing_key", "service_key", "api_key", "api_url", "url"}
# One ORR 3.3 alert of each severity.
BY_SEVERITY = {
    "P0": "FivexxSpike",
    "P1": "HighErrorRate",
    "P2": "HighP95Latency",
    "P3": "LowCacheHitRate",
}
# Maintenance windows for the test copies: one that covers any moment, one that never does.
ALWAYS = [
    {"weekdays": ["sunday:saturday"], "times": [{"start_time": "00:00", "end_time": "24:00"}]}
]
NEVER = [{"years": ["2000"]}]
SETTLE_WITHIN = 15.0
MUTED = "Notifications not sent, route is within mute time"


def source() -> dict[str, Any]:
    config: dict[str, Any] = load_yaml(ALERTMANAGER)
    return config


def alert(name: str, severity: str | None = None, job: str | None = None) -> dict[str, Any]:
    """A firing alert of the rule ``name`` (its tier ``severity``) with the labels the rule
    gives it: its own, and the `job` of the series it reads (the probe's for probe alerts)."""
    table = monitoring.load()
    rule = next(
        r
        for r in all_alerts()
        if r["alert"] == name and severity in (None, r["labels"]["severity"])
    )
    default_job = table.probe.job if "probe_" in rule["expr"] else table.job
    labels = {"alertname": name, **rule["labels"], "job": job or default_job}
    annotations = {
        "summary": rule["annotations"]["summary"],
        "description": f"{name} in a test of alerts/alertmanager.yml.",
        "runbook_url": rule["annotations"]["runbook_url"],
    }
    return firing_since(10, labels, annotations)


def key(alert: dict[str, Any]) -> str:
    labels = alert["labels"]
    return f"{labels['alertname']}/{labels['severity']}/{labels.get('job', '')}"


def severity_of(notification: Notification) -> str:
    found = re.search(r"\[(P[0-3])\]", notification.body)
    assert found, notification
    return found.group(1)


def delivered(recorder: Recorder) -> set[tuple[str, str, str]]:
    return {(n.integration, n.receiver, severity_of(n)) for n in recorder.received()}


def need_binary() -> None:
    tool(BINARY)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


# amtool and the config's shape


@pytest.mark.orr("3.3-08")
def test_amtool_accepts_the_alertmanager_config() -> None:
    result = run(tool("amtool"), "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.orr("3.3-08")
@pytest.mark.parametrize(("severity", "receiver"), ROUTES.items(), ids=lambda v: v or "none")
def test_each_severity_routes_to_its_receiver(severity: str, receiver: str) -> None:
    labels = [f"alertname={BY_SEVERITY.get(severity, 'VerifierTargetDown')}", "job=cap-verifier"]
    if severity:
        labels.append(f"severity={severity}")
    result = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER}",
        f"--verify.receivers={receiver}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_every_severity_of_the_table_has_a_route() -> None:
    assert set(monitoring.SEVERITIES) <= set(ROUTES)
    severities = {r["labels"]["severity"] for r in all_alerts()}
    assert severities <= set(monitoring.SEVERITIES)


@pytest.mark.orr("3.3-08")
def test_receivers_page_by_pagerduty_and_opsgenie_with_keys_from_files() -> None:
    receivers = {r["name"]: r for r in source()["receivers"]}
    assert set(receivers) == set(INTEGRATIONS)
    for name, kinds in INTEGRATIONS.items():
        assert set(receivers[name]) - {"name"} == kinds, name
        for kind in kinds:
            for settings in receivers[name][kind]:
                assert settings["send_resolved"] is True, (name, kind)
                files = {k: v for k, v in settings.items() if k.endswith("_file")}
                assert files, (name, kind)
                assert all(v.startswith(SECRETS_DIR) for v in files.values()), files
                assert not INLINE_SECRETS & set(settings), (name, kind)
                text = json.dumps(settings)
                assert "runbook_url" in text, f"{name} {kind}: no link to the runbook"


def test_alerts_are_grouped_by_alertname_and_job() -> None:
    route = source()["route"]
    assert route["group_by"] == ["alertname", "job"]
    for name in ("group_wait", "group_interval", "repeat_interval"):
        assert name in route


@pytest.mark.orr("3.3-10", "4.5-01")
def test_the_maintenance_window_is_the_first_tuesday_0200_0400_utc() -> None:
    """ORR 4.5-01: monthly, the first Tuesday, 02:00-04:00 UTC (no `location`: UTC). It mutes
    every route below P0."""
    config = source()
    (window,) = [t for t in config["time_intervals"] if t["name"] == MAINTENANCE]
    assert window["time_intervals"] == [
        {
            "weekdays": ["tuesday"],
            "days_of_month": ["1:7"],
            "times": [{"start_time": "02:00", "end_time": "04:00"}],
        }
    ]
    muted = {
        route["matchers"][0]: route.get("mute_time_intervals", [])
        for route in config["route"]["routes"]
    }
    assert muted == {
        'severity="P0"': [],
        'severity="P1"': [MAINTENANCE],
        'severity="P2"': [MAINTENANCE],
        'severity="P3"': [MAINTENANCE],
    }


def test_the_test_copies_change_only_urls_keys_and_the_window(tmp_path: Path) -> None:
    copy = local_config(source(), "http://127.0.0.1:1", tmp_path, ALWAYS)
    original = source()
    assert copy["route"] == original["route"]
    assert copy["inhibit_rules"] == original["inhibit_rules"]
    assert [r["name"] for r in copy["receivers"]] == [r["name"] for r in original["receivers"]]
    for mine, theirs in zip(copy["receivers"], original["receivers"], strict=True):
        assert set(mine) == set(theirs)
        for kind in set(mine) - {"name"}:
            for a, b in zip(mine[kind], theirs[kind], strict=True):
                same = {k for k in b if not k.endswith("_file")}
                assert {k: a[k] for k in same} == {k: b[k] for k in same}
    result = run(tool("amtool"), "check-config", str(_write(tmp_path / "copy.yml", copy)))
    assert result.returncode == 0, result.stdout + result.stderr


def _write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


# A real Alertmanager


def _post_one_of_each_severity(alertmanager: Alertmanager) -> None:
    alertmanager.post([alert(name) for name in BY_SEVERITY.values()])


@pytest.mark.orr("3.3-10", "4.5-01")
def test_the_maintenance_window_mutes_p1_p2_p3_and_still_pages_p0(
    tmp_path: Path, recorder: Recorder
) -> None:
    need_binary()
    config = local_config(source(), recorder.url, tmp_path / "secrets", ALWAYS)
    with running(tmp_path, config) as alertmanager:
        _post_one_of_each_severity(alertmanager)

        def settled() -> bool:
            log = alertmanager.log_text()
            return (
                log.count("msg=flushing") >= len(BY_SEVERITY)
                and log.count(MUTED) >= 3
                and {("pagerduty", "pager", "P0"), ("opsgenie", "pager", "P0")}
                <= delivered(recorder)
            )

        wait_until(settled, SETTLE_WITHIN, "the P0 page and three muted groups")
        time.sleep(0.5)  # time for a notification that should not come
        log = alertmanager.log_text()
    assert log.count(MUTED) == 3, log
    assert delivered(recorder) == {("pagerduty", "pager", "P0"), ("opsgenie", "pager", "P0")}


EVERY_RECEIVER = {
    ("pagerduty", "pager", "P0"),
    ("opsgenie", "pager", "P0"),
    ("pagerduty", "pager", "P1"),
    ("opsgenie", "pager", "P1"),
    ("opsgenie", "ticket", "P2"),
    ("slack", "ticket", "P2"),
    ("slack", "chat", "P3"),
}


@dataclass(frozen=True)
class Delivery:
    notifications: list[Notification]
    groups: dict[str, str]
    """alertname -> the receiver of its group (/api/v2/alerts/groups)."""
    log: str


@pytest.fixture(scope="module")
def outside_the_window(tmp_path_factory: pytest.TempPathFactory) -> Delivery:
    """One alert of each severity through Alertmanager when the window is not on."""
    need_binary()
    workdir = tmp_path_factory.mktemp("alertmanager")
    recorder = Recorder()
    try:
        config = local_config(source(), recorder.url, workdir / "secrets", NEVER)
        with running(workdir, config) as alertmanager:
            _post_one_of_each_severity(alertmanager)
            wait_until(
                lambda: delivered(recorder) >= EVERY_RECEIVER, SETTLE_WITHIN, "every receiver"
            )
            time.sleep(0.5)  # time for a notification that should not come
            groups = alertmanager.groups()
            log = alertmanager.log_text()
        return Delivery(
            recorder.received(),
            {g["labels"]["alertname"]: g["receiver"]["name"] for g in groups},
            log,
        )
    finally:
        recorder.close()


def _bodies(delivery: Delivery, integration: str) -> list[dict[str, Any]]:
    return [json.loads(n.body) for n in delivery.notifications if n.integration == integration]


@pytest.mark.orr("3.3-08", "3.3-10")
def test_outside_the_window_every_severity_reaches_its_receivers(
    outside_the_window: Delivery,
) -> None:
    assert MUTED not in outside_the_window.log
    assert {
        (n.integration, n.receiver, severity_of(n)) for n in outside_the_window.notifications
    } == EVERY_RECEIVER
    assert outside_the_window.groups == {
        name: ROUTES[severity] for severity, name in BY_SEVERITY.items()
    }


@pytest.mark.orr("3.3-08")
def test_the_pages_carry_the_key_severity_and_runbook(outside_the_window: Delivery) -> None:
    for event in _bodies(outside_the_window, "pagerduty"):
        assert event["routing_key"] == "test-routing_key_file"
        assert event["event_action"] == "trigger"
        severity = re.match(r"\[(P[01])\] ", event["payload"]["summary"])
        assert severity, event
        assert event["payload"]["severity"] == ("critical" if severity[1] == "P0" else "error")
        assert event["links"][0]["href"].startswith("runbooks/alerts/")
    for alert in _bodies(outside_the_window, "opsgenie"):
        assert alert["note"].startswith("runbook: runbooks/alerts/"), alert
        assert alert["source"] == "cap-verifier"


def test_opsgenie_is_sent_a_priority_it_accepts(outside_the_window: Delivery) -> None:
    """Opsgenie knows P1-P5 only: a P0 page goes out as its P1, and no priority is outside."""
    priorities = {a["priority"] for a in _bodies(outside_the_window, "opsgenie")}
    assert priorities <= {"P1", "P2", "P3", "P4", "P5"}
    assert "P1" in priorities


def _inhibited(alertmanager: Alertmanager) -> dict[str, set[str]]:
    """Alert key -> the keys of the alerts inhibiting it."""
    alerts = alertmanager.alerts()
    by_fingerprint = {a["fingerprint"]: key(a) for a in alerts}
    return {key(a): {by_fingerprint.get(f, f) for f in a["status"]["inhibitedBy"]} for a in alerts}


def _settle(alertmanager: Alertmanager, expected: dict[str, set[str]]) -> dict[str, set[str]]:
    """Alertmanager's inhibitor learns of new alerts asynchronously: poll until the states are
    the expected ones, or the time is up; the last states either way."""
    last: dict[str, set[str]] = {}

    def matches() -> bool:
        nonlocal last
        last = _inhibited(alertmanager)
        return last == expected

    with contextlib.suppress(TimeoutError):
        wait_until(matches, SETTLE_WITHIN, "the inhibitions")
    return last


@pytest.mark.orr("3.3-08")
def test_a_page_inhibits_the_warnings_it_explains(tmp_path: Path, recorder: Recorder) -> None:
    need_binary()
    down = alert("VerifierTargetDown", "P1")
    fast_burn = alert("VerifierErrorBudgetBurn", "P1")
    sources = [down, fast_burn, alert("FivexxSpike"), alert("HighErrorRate")]
    explained = [
        alert("VerifierTargetDown", "P2"),  # the lesser tier of the same alert
        alert("VerifierErrorBudgetBurn", "P2"),  # a slow burn under a fast one
        alert("NoTraffic"),  # the service down explains these
        alert("HighP95Latency"),
        alert("HighP99Latency"),
        alert("LowCacheHitRate"),
    ]
    unexplained = [
        alert("VerifierJWKSStale"),  # not about the service being down
        alert("VerifierTargetDown", "P2", job="other-service"),  # another job
    ]
    config = local_config(source(), recorder.url, tmp_path / "secrets", NEVER)
    with running(tmp_path, config) as alertmanager:
        alertmanager.post(sources + explained + unexplained)
        expected = {key(a): set[str]() for a in sources + unexplained}
        by_source = {
            "VerifierTargetDown/P2": key(down),
            "VerifierErrorBudgetBurn/P2": key(fast_burn),
        }
        for target in explained:
            short = "/".join(key(target).split("/")[:2])
            expected[key(target)] = {by_source.get(short, key(down))}
        states = _settle(alertmanager, expected)
        suppressed = {key(a) for a in alertmanager.alerts() if a["status"]["state"] == "suppressed"}
    assert states == expected
    assert suppressed == {key(a) for a in explained}


@pytest.mark.orr("3.3-08")
def test_the_endpoint_down_inhibits_no_traffic(tmp_path: Path, recorder: Recorder) -> None:
    """The probe's alert carries the probe's job (cap-verifier-probe), NoTraffic the service's:
    the inhibit rule must not ask for the same job."""
    need_binary()
    unreachable = alert("VerifierEndpointDown")
    explained = [alert("NoTraffic"), alert("HighP95Latency")]
    config = local_config(source(), recorder.url, tmp_path / "secrets", NEVER)
    with running(tmp_path, config) as alertmanager:
        alertmanager.post([unreachable, *explained])
        expected = {key(unreachable): set[str](), **{key(a): {key(unreachable)} for a in explained}}
        states = _settle(alertmanager, expected)
    assert states == expected
