"""docs/slo.md (ORR 3.5, 6.3): its numbers are a block generated from alerts/config.yaml (the
objectives, the error budget in minutes and requests, the burn-rate table), so they cannot
differ from the alerts; its queries are the recording rules they name and read metrics that
exist."""

from __future__ import annotations

import re
from pathlib import Path

import promql_parser
import pytest
from runbook_checks import code_blocks, recording_rules, reference_problems

from alerts import generate
from cap_ops import monitoring

DOC = generate.SLO_DOC


def record_problems(text: str) -> list[str]:
    """Each ``# record: <name>`` PromQL block of ``text`` is that recording rule's expression."""
    rules = recording_rules()
    found = [f"recording rule {name}: not in the page" for name in rules if name not in text]
    for block in code_blocks(text, "promql"):
        head = re.match(r"# record: (\S+)\n", block)
        if head is None:
            continue
        name, expr = head.group(1), block[head.end() :]
        if name not in rules:
            found.append(f"# record: {name}: no such recording rule")
        elif str(promql_parser.parse(expr)) != str(promql_parser.parse(rules[name])):
            found.append(f"# record: {name}: not the rule's expression")
    return found


@pytest.mark.orr(
    "3.5-01", "3.5-02", "3.5-03", "3.5-04", "3.5-05", "3.5-07", "6.3-01", "6.3-03", "6.3-04"
)
def test_the_numbers_are_the_config_s() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert generate.slo_doc(monitoring.load())[DOC.name] == text, "run make generate"
    for row in (
        "| Availability | 99.9% of API requests without a 5xx | 30d, rolling |",
        "| Latency p95 | < 500ms | 5m |",
        "| Latency p99 | < 1s | 5m |",
        "| Error rate | < 1% | 5m |",
        "| Cache hit rate | > 80% | 5m |",
        "**43.2 minutes** of full outage per 30d",
        "**129,600 requests** may fail",
        "| 14.4x | 1h | 5m | 2m | P1 | 1.44% | 2% | 50h |",
    ):
        assert row in text


def test_a_changed_config_changes_the_numbers(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    text = monitoring.CONFIG.read_text(encoding="utf-8")
    config.write_text(text.replace("availability_target: 0.999", "availability_target: 0.995"))
    block = generate.slo_numbers(monitoring.load(config))
    assert "**216 minutes** of full outage" in block
    assert "| 14.4x | 1h | 5m | 2m | P1 | 7.2% | 2% | 50h |" in block
    assert generate.slo_doc(monitoring.load(config))[DOC.name] != DOC.read_text(encoding="utf-8")


@pytest.mark.orr("3.5-06", "6.3-02", "6.3-05")
def test_the_queries_are_the_recording_rules_and_exist() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert record_problems(text) == []
    assert reference_problems("slo.md", DOC, text) == []


def test_a_query_that_is_not_its_rule_is_caught() -> None:
    rule = "job:cap_verifier_requests:rate5m"
    text = DOC.read_text(encoding="utf-8")
    bad = re.sub(rf"(# record: {rule}\n.*?)\[5m\]", r"\1[10m]", text, count=1, flags=re.S).replace(
        "job:cap_verifier_cache_lookups:rate5m", "job:cap_verifier_cache_lookups:rate1m"
    )
    assert record_problems(bad) == [
        "recording rule job:cap_verifier_cache_lookups:rate5m: not in the page",
        "# record: job:cap_verifier_cache_lookups:rate1m: no such recording rule",
        f"# record: {rule}: not the rule's expression",
    ]
