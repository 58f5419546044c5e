"""The local pager sink answers like the services it stands for, and never records a key."""

from __future__ import annotations

import json

import pytest

from cap_ops.localenv import pager_sink

KEY = "test-fixture-integration-key"  # a made-up key: the sink must keep only its fingerprint


def _post(
    path: str, body: object, headers: dict[str, str] | None = None
) -> tuple[pager_sink.Record, int]:
    record, reply = pager_sink.handle("POST", path, headers or {}, json.dumps(body).encode())
    assert KEY not in json.dumps(record)
    return record, reply.status


def _opsgenie(priority: str) -> dict[str, object]:
    return {"message": "[P0] FivexxSpike: a burst", "alias": "a1", "priority": priority}


def test_a_pagerduty_trigger_is_accepted_and_recorded_without_its_key() -> None:
    event = {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "d1",
        "payload": {"summary": "[P1] HighErrorRate: x", "severity": "error", "source": "am"},
        "links": [{"href": "runbooks/alerts/HighErrorRate.md", "text": "runbook"}],
    }
    record, status = _post(pager_sink.PAGERDUTY_PATH, event)
    assert status == 202
    assert record["key_sha256"] == pager_sink.fingerprint(KEY)
    assert (record["severity"], record["dedup_key"]) == ("error", "d1")
    assert pager_sink.phase(record) == pager_sink.TRIGGER


@pytest.mark.parametrize("priority", ["P1", "P2", "P5"])
def test_opsgenie_takes_its_own_priorities(priority: str) -> None:
    record, status = _post("/v2/alerts", _opsgenie(priority), {"authorization": f"GenieKey {KEY}"})
    assert status == 202, record
    assert record["priority"] == priority


@pytest.mark.parametrize("priority", ["P0", "critical", "P6"])
def test_opsgenie_refuses_a_priority_it_does_not_know(priority: str) -> None:
    record, status = _post("/v2/alerts", _opsgenie(priority), {"authorization": f"GenieKey {KEY}"})
    assert status == 422, record


def test_opsgenie_without_a_key_is_401() -> None:
    _, status = _post("/v2/alerts", _opsgenie("P1"))
    assert status == 401
