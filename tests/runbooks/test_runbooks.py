"""The runbooks (runbooks/): a page for every alert with the ORR 4.1 sections, its severity and
escalation times as alerts/config.yaml has them, and every command, path, metric and alert any
page names exists. Each check also runs on a bad page, which it must reject."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from runbook_checks import (
    RUNBOOKS,
    SECTIONS,
    alert_severities,
    escalation_problems,
    load_yaml,
    reference_problems,
    scale_problems,
    sections,
    severity_problems,
)

from cap_ops import monitoring

ALERT_PAGES = RUNBOOKS / "alerts"
OPERATIONS = RUNBOOKS / "operations"
ALL_PAGES = sorted(RUNBOOKS.rglob("*.md"))
ALERT_NAMES = sorted(alert_severities())


def page_text(name: str) -> str:
    return (ALERT_PAGES / f"{name}.md").read_text(encoding="utf-8")


@pytest.mark.orr("4.1-02", "6.2-03")
def test_every_alert_has_a_page_and_every_page_an_alert() -> None:
    assert sorted(p.stem for p in ALERT_PAGES.glob("*.md")) == ALERT_NAMES
    assert len(ALERT_NAMES) >= 8


@pytest.mark.orr("4.1-03")
@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_alert_page_has_the_sections_and_commands_for_both_environments(alert: str) -> None:
    text = page_text(alert)
    assert list(sections(text)) == list(SECTIONS)
    investigation = sections(text)["Investigation"]
    assert "kubectl " in investigation, "no cluster command"
    assert re.search(r"make [a-z]|\.local/|127\.0\.0\.1", investigation), "no local command"
    assert all(sections(text)[s].strip() for s in SECTIONS)


@pytest.mark.orr("4.1-03", "4.2-01")
@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_severity_is_the_config_s(alert: str) -> None:
    assert severity_problems(alert, page_text(alert), monitoring.load()) == []


@pytest.mark.orr("4.2-01", "4.2-02", "4.2-03", "6.2-05")
@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_escalation_times_are_the_config_s(alert: str) -> None:
    assert escalation_problems(alert, page_text(alert), monitoring.load()) == []


@pytest.mark.orr("4.2-01", "4.2-02", "6.2-05")
@pytest.mark.parametrize("page", ["README.md", "operations/incident-response.md"])
def test_the_severity_scale_is_the_config_s(page: str) -> None:
    text = (RUNBOOKS / page).read_text(encoding="utf-8")
    assert scale_problems(page, text, monitoring.load()) == []


def test_the_response_times_are_the_orr_s() -> None:
    """ORR 4.2: L1 30 min for P0, 2 hours for P1; L2 2 hours for P0, 8 hours for P1."""
    table = monitoring.load().severities
    assert (table.P0.respond, table.P0.escalate) == ("30m", "2h")
    assert (table.P1.respond, table.P1.escalate) == ("2h", "8h")


@pytest.mark.orr("4.1-03")
@pytest.mark.parametrize("page", ALL_PAGES, ids=lambda p: str(p.relative_to(RUNBOOKS)))
def test_every_name_a_page_gives_exists(page: Path) -> None:
    assert reference_problems(page.name, page, page.read_text(encoding="utf-8")) == []


@pytest.mark.orr("4.1-01", "6.2-01")
@pytest.mark.parametrize("page", ALL_PAGES, ids=lambda p: str(p.relative_to(RUNBOOKS)))
def test_every_page_links_the_contacts_and_is_indexed(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    if page.name != "contacts.md":
        assert "contacts.md" in text, "people are named in contacts.md only: link it"
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    assert page.name == "README.md" or f"({page.relative_to(RUNBOOKS)})" in index


@pytest.mark.orr("4.5-04")
def test_maintenance_window_page_is_alertmanager_s_window() -> None:
    interval = load_yaml(RUNBOOKS.parent / "alerts" / "alertmanager.yml")["time_intervals"][0]
    assert interval["name"] == "maintenance-window"
    assert interval["time_intervals"] == [
        {
            "weekdays": ["tuesday"],
            "days_of_month": ["1:7"],
            "times": [{"start_time": "02:00", "end_time": "04:00"}],
        }
    ]
    text = (OPERATIONS / "maintenance-window.md").read_text(encoding="utf-8")
    for fact in ("first Tuesday", "02:00-04:00 UTC", "make backup", "rollback.yml", "P0"):
        assert fact in text


@pytest.mark.orr("6.2-02", "6.2-05")
def test_incident_response_page_has_its_parts() -> None:
    text = (OPERATIONS / "incident-response.md").read_text(encoding="utf-8")
    for heading in ("Severities", "Roles", "Escalation", "Communication", "Postmortem"):
        assert heading in sections(text), heading


@pytest.mark.orr("6.2-04")
def test_restart_scale_and_update_are_written_down() -> None:
    """Each has its section with a command; the playbooks it names exist (checked above)."""
    text = (OPERATIONS / "restart-scale-update.md").read_text(encoding="utf-8")
    parts = sections(text)
    for heading, command in (
        ("Restart", "flush-cache.yml"),
        ("Scale", "scale.yml"),
        ("Update to a new release", "make render"),
    ):
        assert command in parts.get(heading, ""), heading


# The checks reject bad pages.

BAD_PAGE = """\
```sh
make no-such-target
ansible-playbook restore-everything.yml
cat .local/no-such-file.log .local/logs/cap-verifier.log
kubectl -n no-such-namespace get pods
curl -sk https://127.0.0.1:8444/healthz
```

```promql
rate(cap_verifier_no_such_total[5m])
sum(rate(up[5m])
```

See `VerifierNoSuchAlert` and [the page](no-such-page.md).
"""


def test_a_page_naming_what_does_not_exist_is_caught() -> None:
    assert reference_problems("bad.md", RUNBOOKS / "bad.md", BAD_PAGE) == [
        "bad.md: make no-such-target: no such target",
        "bad.md: restore-everything.yml: no such playbook",
        "bad.md: PromQL does not parse: sum(rate(up[5m])",
        "bad.md: metric cap_verifier_no_such_total: not exported",
        "bad.md: alert VerifierNoSuchAlert: no such alert",
        "bad.md: .local/no-such-file.log: no such file or directory",
        "bad.md: namespace no-such-namespace: not in deploy/",
        "bad.md: port 8444: not a port of the local environment",
        "bad.md: link no-such-page.md: no such file",
    ]


def test_wrong_severity_and_escalation_times_are_caught() -> None:
    text = page_text("FivexxSpike").replace("`30m`", "`1h`").replace("`2h`", "`4h`")
    table = monitoring.load()
    assert severity_problems("FivexxSpike", text, table) == [
        "FivexxSpike: Severity does not say `30m` (P0)"
    ]
    assert escalation_problems("FivexxSpike", text, table) == [
        "FivexxSpike: Escalation: L1 does not say P0 `30m`",
        "FivexxSpike: Escalation: L2 does not say P0 `2h`",
    ]


def test_a_wrong_severity_scale_is_caught() -> None:
    text = (OPERATIONS / "incident-response.md").read_text(encoding="utf-8")
    bad = text.replace(
        "| P1 | service degraded for clients: page now | `2h` | `8h` |", "| P1 | x | `4h` |"
    )
    assert scale_problems("ir.md", bad, monitoring.load()) == [
        "ir.md: the P1 row does not say service degraded for clients: page now",
        "ir.md: the P1 row does not say `2h`",
        "ir.md: the P1 row does not say `8h`",
    ]
