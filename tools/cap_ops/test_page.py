"""`make test-page`: the ORR 4.2 test alert, through the real path of the local environment.

A rule that always fires (``VerifierTestPage``, severity P1, job cap-verifier) is written into
Prometheus' extra rules (``.local/prometheus/extra/``) and loaded (``POST /-/reload``);
Prometheus sends it to Alertmanager, whose routing of `alerts/alertmanager.yml` delivers it to
the P1 receiver's integrations, which the local environment points at the pager sink. Every
delivery of it that reaches the sink is printed, one line each. Then the rule is made to
resolve, removed and Prometheus reloaded, and the resolve awaited (Alertmanager sends it at the
group's next ``group_interval``). Exit 0 when the page and its resolve arrived in time, 1
otherwise with one line why. Nothing is left behind, on success or failure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from ruamel.yaml import YAML

from cap_ops import durations
from cap_ops.localenv import configs, environment, pager_sink, supervisor
from cap_ops.localenv.layout import Layout
from cap_ops.localenv.preflight import Problem
from cap_ops.poll import wait_until

ALERT = "VerifierTestPage"
SEVERITY = "P1"
RULE_FILE = "test-page.rules.yaml"
GROUP = "cap-verifier-test-page"
PAGE_TIMEOUT = 120.0
RESOLVE_MARGIN = 90.0
"""Beyond the longest ``group_interval``: Prometheus' evaluation, the reload, the delivery."""
APIS = {"pagerduty_configs": "pagerduty", "opsgenie_configs": "opsgenie", "slack_configs": "slack"}


class TestPageFailed(Exception):
    """Why the test page failed; ``str()`` is the one line."""


def _say(message: str) -> None:
    print(f"[test-page] {message}", flush=True)


def rule_file(layout: Layout, run_id: str, firing: bool = True) -> str:
    """The test alert; ``firing=False`` keeps it defined but inactive, so that it resolves.
    ``run_id`` makes each run's alert new to Alertmanager, which otherwise sends an alert it
    already paged for only after ``repeat_interval`` (4 h), even when a run ended unresolved."""
    table = configs.monitoring_table(layout)
    rule = {
        "alert": ALERT,
        "expr": "vector(1)" if firing else "vector(1) == 0",
        "labels": {"severity": SEVERITY, "job": table.job, "test_run": run_id},
        "annotations": {
            "summary": "Test page from make test-page (ORR 4.2): no action needed.",
            "description": "A synthetic P1 sent through Prometheus and Alertmanager to check "
            "that pages are delivered.",
            "runbook_url": f"{table.runbook_base_url.rstrip('/')}/runbooks/README.md",
        },
    }
    return configs.dump_yaml({"groups": [{"name": GROUP, "rules": [rule]}]})


def receiver_apis(layout: Layout) -> tuple[str, list[str]]:
    """The receiver Alertmanager routes the test alert to, and the APIs it calls."""
    config = layout.alertmanager_dir / "alertmanager.yml"
    labels = [
        f"alertname={ALERT}",
        f"severity={SEVERITY}",
        f"job={configs.monitoring_table(layout).job}",
    ]
    routed = subprocess.run(
        ["amtool", "config", "routes", "test", f"--config.file={config}", *labels],
        capture_output=True,
        text=True,
        check=False,
    )
    if routed.returncode != 0 or not routed.stdout.strip():
        raise TestPageFailed(f"amtool cannot route the test alert: {routed.stderr.strip()}")
    name = routed.stdout.strip().splitlines()[-1].strip()
    rendered = YAML(typ="safe", pure=True).load(config.read_text(encoding="utf-8"))
    for receiver in rendered.get("receivers", []):
        if receiver["name"] == name:
            return name, [APIS[kind] for kind in receiver if kind in APIS]
    raise TestPageFailed(f"receiver {name} is not in {config}")


def resolve_timeout(layout: Layout) -> float:
    """The longest group_interval of the routing tree, plus a margin."""
    config = layout.alertmanager_dir / "alertmanager.yml"
    route = YAML(typ="safe", pure=True).load(config.read_text(encoding="utf-8"))["route"]
    intervals = [route.get("group_interval", "5m")]
    intervals += [r["group_interval"] for r in route.get("routes", []) if "group_interval" in r]
    return max(durations.seconds(i) for i in intervals) + RESOLVE_MARGIN


class Deliveries:
    """The sink's records of the test alert, read from the log as they arrive."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.offset = log.stat().st_size if log.exists() else 0
        self.seen = 0
        self.ours: list[pager_sink.Record] = []
        self.keys: set[str] = set()

    def poll(self) -> None:
        records = pager_sink.read_records(self.log, self.offset)
        for record in records[self.seen :]:
            key = pager_sink.incident_key(record)
            if ALERT in pager_sink.headline(record) or (key is not None and key in self.keys):
                if pager_sink.phase(record) == pager_sink.TRIGGER and key:
                    self.keys.add(key)
                self.ours.append(record)
                print(f"  {pager_sink.describe(record)}", flush=True)
        self.seen = len(records)

    def missing(self, apis: list[str], phase: str) -> list[str]:
        """The APIs that have not yet answered 2xx to a delivery of ``phase``."""
        self.poll()
        done = {
            r["api"]
            for r in self.ours
            if pager_sink.phase(r) == phase and 200 <= int(r.get("status", 0)) < 300
        }
        refused = [r for r in self.ours if not 200 <= int(r.get("status", 0)) < 300]
        if refused:
            first = refused[0]
            raise TestPageFailed(f"{first['api']} refused a delivery: HTTP {first['status']}")
        return [api for api in apis if api not in done]


def _await(what: str, missing: Callable[[], list[str]], timeout: float) -> float:
    started = time.monotonic()
    try:
        wait_until(lambda: not missing(), timeout, what, interval=1.0)
    except TimeoutError:
        raise TestPageFailed(
            f"no {' and no '.join(missing())} {what} within {timeout:.0f} s "
            "(see .local/logs/alertmanager.log; P1 pages are muted in the maintenance window)"
        ) from None
    return time.monotonic() - started


def _alertmanager_has_it(layout: Layout) -> bool:
    alerts = httpx.get(
        f"{layout.url('alertmanager')}/api/v2/alerts", params={"filter": f'alertname="{ALERT}"'}
    ).json()
    return bool(alerts)


def withdraw(layout: Layout, path: Path, run_id: str) -> None:
    """Resolve the alert (Prometheus tells Alertmanager), then remove the rule: no residue."""
    if path.exists():
        try:
            path.write_text(rule_file(layout, run_id, firing=False), encoding="utf-8")
            environment.reload_prometheus(layout)
            wait_until(
                lambda: not _alertmanager_has_it(layout),
                60,
                f"Alertmanager to see {ALERT} resolved",
                interval=1.0,
                ignore=(httpx.HTTPError, ValueError),
            )
        except (Problem, TimeoutError, httpx.HTTPError) as exc:
            _say(f"warning: {exc}")
        finally:
            path.unlink(missing_ok=True)
            try:
                environment.reload_prometheus(layout)
            except (Problem, httpx.HTTPError) as exc:
                _say(f"warning: Prometheus still holds {ALERT} until reloaded: {exc}")


def run(layout: Layout, page_timeout: float = PAGE_TIMEOUT) -> None:
    if supervisor.running_pid(layout) is None:
        raise TestPageFailed("the local environment is not running: run `make up` first")
    receiver, apis = receiver_apis(layout)
    if not apis:
        raise TestPageFailed(f"receiver {receiver} has no PagerDuty, Opsgenie or Slack config")
    deliveries = Deliveries(layout.pages_log)
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = layout.prometheus_extra_rules / RULE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.write_text(rule_file(layout, run_id), encoding="utf-8")
        path.chmod(0o644)
        environment.reload_prometheus(layout)
        _say(
            f"{ALERT} ({SEVERITY}) loaded; Alertmanager routes it to {receiver}: {', '.join(apis)}"
        )
        paged = _await("page", lambda: deliveries.missing(apis, pager_sink.TRIGGER), page_timeout)
        _say(f"paged in {paged:.0f} s; resolving it (sent at the next group interval)")
    finally:
        withdraw(layout, path, run_id)
    timeout = resolve_timeout(layout)
    resolved = _await("resolve", lambda: deliveries.missing(apis, pager_sink.RESOLVE), timeout)
    _say(f"OK: paged through {', '.join(apis)} in {paged:.0f} s, resolved {resolved:.0f} s later")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make test-page", description=__doc__)
    parser.add_argument("--page-timeout", type=float, default=PAGE_TIMEOUT, help="seconds")
    args = parser.parse_args(argv)
    try:
        run(Layout.default(), args.page_timeout)
    except (TestPageFailed, Problem, httpx.HTTPError, OSError) as exc:
        print(f"[test-page] FAIL: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("[test-page] interrupted; the test rule was removed", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
