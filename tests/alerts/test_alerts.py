"""The Prometheus rules of alerts/: promtool accepts them and their unit tests pass; every alerting
rule (every severity tier) fires in a unit test, one evaluation after a check that finds it silent,
with its exact labels and annotations; the ORR 3.3 alerts carry the checklist's names, severities,
thresholds and durations; the shape of every alert; metric names against what the exporters
export; and the generated files against a fresh generation.

That the unit tests' series sit tight around each threshold of alerts/config.yaml is proven by
test_alert_thresholds.py (a moved threshold makes them fail); Alertmanager by test_alertmanager.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from alert_files import (
    ALERTS,
    RULE_FILES,
    RULES_SUFFIX,
    TEST_FILES,
    TEST_SUFFIX,
    UNIT_TESTS,
    Check,
    alert_names,
    all_alerts,
    checks,
    fires,
    groups,
    load_yaml,
    recording_names,
    rules,
    run,
    split_cases,
    stem,
    tier_id,
    tool,
    unit_test_file,
)

from alerts import generate as rule_generator
from cap_ops import monitoring
from cap_ops.durations import seconds
from cap_verifier.typed_yaml import ConfigError

RUNBOOKS = ALERTS.parent / "runbooks"

# Contract §6 (docs/contract.md) plus the gauge the service adds, and Prometheus' own `up`. A
# literal: tests/dashboards reads it (dashboard_checks.contract_metrics).
EXPORTED_METRICS = frozenset(
    {
        "cap_verifier_requests_total",
        "cap_verifier_request_duration_seconds_bucket",
        "cap_verifier_request_duration_seconds_sum",
        "cap_verifier_request_duration_seconds_count",
        "cap_verifier_verifications_total",
        "cap_verifier_auth_failures_total",
        "cap_verifier_cache_hits_total",
        "cap_verifier_cache_misses_total",
        "cap_verifier_cache_entries",
        "cap_verifier_cache_hit_ratio",
        "cap_verifier_jwks_refreshes_total",
        "cap_verifier_jwks_age_seconds",
        "cap_verifier_jwks_last_success_timestamp_seconds",
        "cap_verifier_build_info",
        "up",
    }
)
# The black-box exporter's probe series and cert-manager's certificate gauge.
EXPORTER_METRICS = frozenset(
    {
        "probe_success",
        "probe_ssl_earliest_cert_expiry",
        "certmanager_certificate_expiration_timestamp_seconds",
    }
)
KNOWN_METRICS = EXPORTED_METRICS | EXPORTER_METRICS

# ORR 3.3 (orr/items.yaml), in its own words: name -> (line, severity, threshold as the rule
# compares, `for`). FivexxSpike counts within one minute and NoTraffic looks back 5 minutes.
ORR_ALERTS: dict[str, tuple[str, str, str, str]] = {
    "HighErrorRate": ("3.3-01", "P1", "> 0.01", "5m"),  # error rate > 1 % for 5 min
    "HighP95Latency": ("3.3-02", "P2", "> 0.5", "5m"),  # p95 > 500 ms for 5 min
    "HighP99Latency": ("3.3-03", "P2", "> 1", "5m"),  # p99 > 1 s for 5 min
    "FivexxSpike": ("3.3-04", "P0", "[1m])) > 10", "1m"),  # > 10 5xx errors/min
    "LowCacheHitRate": ("3.3-05", "P3", "< 0.8", "10m"),  # hit rate < 80 % for 10 min
    "HighAuthFailureRate": ("3.3-06", "P1", "> 0.1", "5m"),  # auth failures > 10 % for 5 min
    "NoTraffic": ("3.3-07", "P2", "[5m]))", "0m"),  # zero requests for 5 min
}
ORR_IDS = tuple(line for line, *_ in ORR_ALERTS.values())

# Alerts whose measured value says nothing the summary does not: NoTraffic's rate is 0, the probe
# and `up` are 0, a never-loaded key set's age is -1. Every other description shows $value.
NO_MEASURED_VALUE = {
    ("NoTraffic", "P2"),
    ("VerifierEndpointDown", "P1"),
    ("VerifierTargetDown", "P1"),
    ("VerifierJWKSNeverLoaded", "P1"),
}


def orr_alert_param(name: str) -> Any:
    return pytest.param(name, marks=pytest.mark.orr(ORR_ALERTS[name][0]), id=name)


# PromQL, well enough to find the metric names: drop strings, label matchers, ranges and
# grouping clauses; what is left and is not followed by "(" nor a keyword is a metric name.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"\b[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}
)


def metric_names(expr: str) -> set[str]:
    text = _GROUPING.sub(" ", _RANGE.sub(" ", _MATCHERS.sub(" ", _STRING.sub(" ", expr))))
    names = set()
    for match in _IDENTIFIER.finditer(text):
        rest = text[match.end() :].lstrip()
        if not rest.startswith("(") and match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


# promtool


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_accepts_the_rule_file(path: Path) -> None:
    result = run(tool("promtool"), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def unit_tests_param(path: Path) -> Any:
    """A test file, marked with the ORR 3.3 lines of the alerts it tests."""
    tested = {check.alertname for check in checks(path)}
    lines = [line for name, (line, *_) in ORR_ALERTS.items() if name in tested]
    return pytest.param(path, marks=[pytest.mark.orr(*lines)] if lines else [], id=path.name)


@pytest.mark.parametrize("path", [unit_tests_param(p) for p in TEST_FILES])
def test_promtool_unit_tests_pass(path: Path) -> None:
    result = run(tool("promtool"), "test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# What the unit tests cover


def test_every_rule_file_has_a_test_file_and_every_test_file_a_rule_file() -> None:
    assert RULE_FILES
    assert {stem(p, RULES_SUFFIX) for p in RULE_FILES} == {stem(p, TEST_SUFFIX) for p in TEST_FILES}


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_a_test_file_loads_its_rule_file_and_orders_recording_rules_first(path: Path) -> None:
    test = load_yaml(path)
    loaded = [(UNIT_TESTS / name).resolve() for name in test["rule_files"]]
    assert ALERTS / f"{stem(path, TEST_SUFFIX)}{RULES_SUFFIX}" in loaded
    if len(loaded) > 1:  # promtool evaluates groups in random order unless told
        order = test["group_eval_order"]
        assert sorted(order) == sorted(g["name"] for p in loaded for g in groups(p))
        recording = [any("record" in r for r in g["rules"]) for p in loaded for g in groups(p)]
        by_name = dict(zip((g["name"] for p in loaded for g in groups(p)), recording, strict=True))
        kinds = [by_name[name] for name in order]
        assert kinds == sorted(kinds, reverse=True), "recording groups must come first"


def _boundary_tested(found: list[Check], rule: dict[str, Any], step: float) -> bool:
    """In one test case the rule fires at some time t and, at t - one evaluation, is silent.
    With the rule's `for`, that pins it: pending from exactly t - for (firing at t needs the
    condition at every evaluation of [t - for, t]; silent at t - step, it was false at
    t - step - for), so a `for` one evaluation longer or shorter fails the case."""
    by_case: dict[str, tuple[set[float], set[float]]] = {}
    for check in found:
        if check.alertname != rule["alert"]:
            continue
        fired, silent = by_case.setdefault(check.case, (set(), set()))
        (fired if fires(check, rule) else silent).add(check.eval_time)
    return any(t - step in silent for fired, silent in by_case.values() for t in fired)


def untested(rule_path: Path, test_path: Path) -> list[str]:
    """The alerting rules of ``rule_path`` that its unit tests ``test_path`` do not see fire
    one evaluation after they were silent."""
    step = seconds(load_yaml(test_path).get("evaluation_interval", "1m"))
    found = checks(test_path)
    problems = []
    for rule in (r for r in rules(rule_path) if "alert" in r):
        if not any(fires(check, rule) for check in found):
            problems.append(f"{tier_id(rule)}: never fires in {test_path.name}")
        elif not _boundary_tested(found, rule, step):
            problems.append(f"{tier_id(rule)}: never silent one evaluation before it fires")
    return problems


@pytest.mark.orr(*ORR_IDS)
def test_every_alert_fires_in_a_unit_test_one_evaluation_after_it_was_silent() -> None:
    """Coverage: every alerting rule of every rule file (each severity tier) fires in a firing
    expectation of its promtool tests, and the same test case finds it silent one evaluation
    before. A new alert, or a new tier, without such a test fails here."""
    assert RULE_FILES
    assert [p for path in RULE_FILES for p in untested(path, unit_test_file(path))] == []


def test_every_recording_rule_has_its_value_checked_in_a_unit_test() -> None:
    """Each recording rule is the `expr` of a promql_expr_test with an expected sample."""
    checked = {
        check["expr"].strip()
        for path in TEST_FILES
        for case in load_yaml(path)["tests"]
        for check in case.get("promql_expr_test", [])
        if check.get("exp_samples")
    }
    assert sorted(recording_names() - checked) == []


def test_an_alert_without_a_firing_test_is_caught(tmp_path: Path) -> None:
    """The coverage check on a rule file with one more alert, and one more tier of an alert,
    than its unit tests know; and on the tests without the check just before a firing one."""
    rule_path = ALERTS / "verifier_latency.rules.yaml"
    document = load_yaml(rule_path)
    new_rules = document["groups"][0]["rules"]
    p95 = new_rules[0]
    new_rules.append({**p95, "alert": "VerifierSomethingNew"})
    new_rules.append({**p95, "labels": {**p95["labels"], "severity": "P1"}})
    changed = tmp_path / rule_path.name
    changed.write_text(json.dumps(document), encoding="utf-8")
    assert untested(changed, unit_test_file(rule_path)) == [
        "VerifierSomethingNew-P2: never fires in verifier_latency-test.yaml",
        "HighP95Latency-P1: never fires in verifier_latency-test.yaml",
    ]
    text = unit_test_file(rule_path).read_text(encoding="utf-8")
    silent_before = (
        "      - eval_time: 5m\n        alertname: HighP95Latency\n        exp_alerts: []\n"
    )
    assert text.count(silent_before) == 1
    tests = tmp_path / "verifier_latency-test.yaml"
    tests.write_text(text.replace(silent_before, ""), encoding="utf-8")
    assert untested(rule_path, tests) == [
        "HighP95Latency-P2: never silent one evaluation before it fires"
    ]


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_unit_tests_name_real_alerts_and_pin_every_annotation(path: Path) -> None:
    names = alert_names()
    for case in load_yaml(path)["tests"]:
        assert case.get("name", "").endswith("."), "name each test case with a sentence"
        for check in case.get("alert_rule_test", []):
            assert check["alertname"] in names, check["alertname"]
            for alert in check.get("exp_alerts") or []:
                assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}
                assert alert["exp_labels"]["severity"] in monitoring.SEVERITIES


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_unit_tests_feed_only_exported_metrics(path: Path) -> None:
    for case in load_yaml(path)["tests"]:
        for series in case["input_series"]:
            name = series["series"].split("{", 1)[0]
            assert name in KNOWN_METRICS, name


def test_the_cases_are_split_where_promtool_sees_them() -> None:
    """test_alert_thresholds.py keeps each case's text as it is: the split must find them all."""
    for path in TEST_FILES:
        _, cases = split_cases(path.read_text(encoding="utf-8"))
        assert len(cases) == len(load_yaml(path)["tests"]), path.name


# The ORR 3.3 alerts


@pytest.mark.parametrize("name", [orr_alert_param(n) for n in ORR_ALERTS])
def test_the_orr_alert_has_the_checklist_name_severity_threshold_and_duration(name: str) -> None:
    _, severity, threshold, for_ = ORR_ALERTS[name]
    (rule,) = [r for r in all_alerts() if r["alert"] == name]
    assert rule["labels"]["severity"] == severity
    assert seconds(rule["for"]) == seconds(for_)
    assert threshold in " ".join(rule["expr"].split())


def test_no_traffic_needs_no_request_at_all_and_a_target_up() -> None:
    """ORR 3.3-07 "zero requests for 5 min": every API request counts, not only failures (a
    healthy service whose failure series are zero stays silent), and only while a target is up
    (a down target is VerifierTargetDown's). The unit tests prove both; this pins the form."""
    (rule,) = [r for r in all_alerts() if r["alert"] == "NoTraffic"]
    expr = " ".join(rule["expr"].split())
    assert 'result="fail"' not in expr
    assert expr.endswith('and on (job) sum by (job) (up{job="cap-verifier"}) > 0')


# The alerts themselves


@pytest.mark.parametrize("rule", all_alerts(), ids=tier_id)
def test_alert_has_severity_for_summary_description_and_runbook(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert name in rule_generator.ORR_ALERTS or re.fullmatch(r"Verifier[A-Z][A-Za-z0-9]+", name)
    seconds(rule["for"])  # present, and a duration
    severity = rule["labels"]["severity"]
    assert severity in monitoring.SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    summary = annotations["summary"]
    assert "{{" not in summary
    assert summary.endswith(".")
    assert not re.search(r"[.!?]\s", summary), "the summary is one sentence"
    description = annotations["description"]
    assert "{{ $labels." in description, "the description names what it is about"
    if (name, severity) not in NO_MEASURED_VALUE:
        assert "$value" in description, "the description shows the measured value"
    base = monitoring.load().runbook_base_url.rstrip("/")
    assert annotations["runbook_url"] == f"{base}/runbooks/alerts/{name}.md".removeprefix("./")
    assert (RUNBOOKS / "alerts" / f"{name}.md").is_file()


def test_alerts_and_groups_are_named_once() -> None:
    group_names = [g["name"] for path in RULE_FILES for g in groups(path)]
    assert len(group_names) == len(set(group_names))
    tiers = [tier_id(r) for r in all_alerts()]
    assert len(tiers) == len(set(tiers))


@pytest.mark.parametrize(
    "rule",
    [r for path in RULE_FILES for r in rules(path) if "record" in r],
    ids=lambda r: r["record"],
)
def test_recording_rule_is_named_level_metric_operations(rule: dict[str, Any]) -> None:
    level, metric, operations = rule["record"].split(":")
    assert metric.startswith("cap_verifier_")
    assert operations
    grouping = re.findall(r"\bby \(([^)]*)\)", rule["expr"])
    assert grouping
    for labels in grouping:  # `le` is consumed by histogram_quantile
        assert {label.strip() for label in labels.split(",")} - {"le"} == set(level.split("_"))


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_expressions_use_only_exported_metrics_and_recording_rules(path: Path) -> None:
    known = KNOWN_METRICS | recording_names()
    for rule in rules(path):
        names = metric_names(rule["expr"])
        assert names, rule["expr"]
        assert names <= known, names - known


def test_metric_names_are_found_in_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (job, le) (rate(a_bucket{x="{y}",z!~"/b|/c"}[5m])))\n'
        "  / on (job) group_left\nb:c:rate5m > (14.4 * 0.005)\nand\n"
        'absent(up{job="j"}) or vector(1) unless sum without (x) (increase(d_total[1h])) > 0'
    )
    assert metric_names(expr) == {"a_bucket", "b:c:rate5m", "up", "d_total"}


# Generation


def test_committed_rule_files_equal_a_fresh_generation() -> None:
    generated = rule_generator.generate(monitoring.load())
    assert set(generated) == {p.name for p in RULE_FILES}, "a rule file is not generated"
    stale = [n for n, text in generated.items() if (ALERTS / n).read_text("utf-8") != text]
    assert not stale, f"run `make generate`: {stale}"


def _changed_config(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    text = (ALERTS / "config.yaml").read_text(encoding="utf-8")
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    changed = tmp_path / "config.yaml"
    changed.write_text(text, encoding="utf-8")
    return changed


def test_the_rules_follow_the_config(tmp_path: Path) -> None:
    changed = _changed_config(
        tmp_path,
        ("runbook_base_url: .", "runbook_base_url: https://elsewhere.example/x/"),
        ("{quantile: 0.95, threshold_seconds: 0.5}", "{quantile: 0.95, threshold_seconds: 0.25}"),
        ("availability_target: 0.999", "availability_target: 0.995"),
        ("  HighErrorRate:\n    severity: P1", "  HighErrorRate:\n    severity: P0"),
    )
    generated = rule_generator.generate(monitoring.load(changed))
    latency = generated["verifier_latency.rules.yaml"]
    assert 'p95_5m{job="cap-verifier"} > 0.25\n' in latency
    assert "above the 250ms objective" in latency
    assert "runbook_url: https://elsewhere.example/x/runbooks/alerts/HighP95Latency.md" in latency
    availability = generated["verifier_availability.rules.yaml"]
    assert "> (14.4 * 0.005)" in availability
    high_errors = availability.split("- alert: HighErrorRate\n", 1)[1].split("- alert:", 1)[0]
    assert "severity: P0\n" in high_errors


def test_a_misspelt_setting_is_refused(tmp_path: Path) -> None:
    changed = _changed_config(tmp_path, ("  HighP95Latency:\n", "  HighP95Latency:\n    fro: 5m\n"))
    with pytest.raises(ConfigError, match="fro"):
        rule_generator.generate(monitoring.load(changed))


def test_a_severity_off_the_p_scale_is_refused(tmp_path: Path) -> None:
    changed = _changed_config(
        tmp_path, ("  NoTraffic:\n    severity: P2", "  NoTraffic:\n    severity: warning")
    )
    with pytest.raises(ConfigError, match="severity"):
        rule_generator.generate(monitoring.load(changed))


def test_a_selector_beyond_the_job_label_is_refused(tmp_path: Path) -> None:
    changed = _changed_config(
        tmp_path, ("selector: 'job=\"cap-verifier\"'", 'selector: \'job="x",namespace="y"\'')
    )
    with pytest.raises(ConfigError, match="selector"):
        rule_generator.generate(monitoring.load(changed))


# Runbooks: their threshold tables come from the rules (the pages themselves: tests/runbooks/)


def test_committed_runbooks_show_the_generated_thresholds() -> None:
    pages = rule_generator.runbooks(monitoring.load(), load_yaml(ALERTS / "alertmanager.yml"))
    assert set(pages) == {"README.md", *(f"alerts/{name}.md" for name in alert_names())}
    stale = [n for n, text in pages.items() if (RUNBOOKS / n).read_text("utf-8") != text]
    assert not stale, f"run `make generate`: {stale}"


def test_runbook_thresholds_follow_the_config(tmp_path: Path) -> None:
    changed = _changed_config(tmp_path, ("min_cache_hit_ratio: 0.8", "min_cache_hit_ratio: 0.7"))
    pages = rule_generator.runbooks(
        monitoring.load(changed), load_yaml(ALERTS / "alertmanager.yml")
    )
    page = pages["alerts/LowCacheHitRate.md"]
    assert 'ratio_rate5m{job="cap-verifier"} < 0.7 and' in page
    assert "| P3 (chat) | 10m |" in page


def test_a_runbook_without_its_generated_block_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# HighP95Latency\n\nthresholds typed by hand\n")
    with pytest.raises(ConfigError, match=r"page\.md: no generated block"):
        rule_generator.replace_block(page.read_text(), "x\n", str(page))
