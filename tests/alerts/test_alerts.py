"""The monitoring rules of alerts/: promtool and amtool checks, the promtool unit tests, the
shape of every alert, runbook links both ways, metric names against the service's contract,
and the generated rule files against a fresh generation."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from alerts import generate as rule_generator
from cap_ops import monitoring
from cap_ops.durations import seconds
from cap_verifier.typed_yaml import ConfigError
from support.require import need

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "alerts"
UNIT_TESTS = ALERTS / "tests"
RUNBOOKS = ROOT / "runbooks"
ALERTMANAGER = ALERTS / "alertmanager.yml"
RULE_FILES = sorted(ALERTS.glob("*.rules.yaml"))
TEST_FILES = sorted(UNIT_TESTS.glob("*-test.yaml"))
RULES_SUFFIX, TEST_SUFFIX = ".rules.yaml", "-test.yaml"

# Contract §6 (docs/contract.md) plus the gauge the service adds, and Prometheus' own.
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
SEVERITIES = ("critical", "warning", "info")
RECEIVERS = {"critical": "page", "warning": "ticket", "info": "null"}
RUNBOOK_SECTIONS = ("Meaning", "Impact", "Diagnosis", "Mitigation", "Escalation")
SECRET_KEYS = re.compile(r"(secret|password|token|_key$|^key$|credentials)", re.IGNORECASE)


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def stem(path: Path, suffix: str) -> str:
    return path.name.removesuffix(suffix)


@cache
def config() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(ALERTS / "config.yaml")
    return data


def groups(path: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = load_yaml(path)["groups"]
    return data


def rules(path: Path) -> Iterator[dict[str, Any]]:
    for group in groups(path):
        yield from group["rules"]


def all_alerts() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for rule in rules(path) if "alert" in rule]


def alert_names() -> set[str]:
    return {rule["alert"] for rule in all_alerts()}


def recording_names() -> set[str]:
    return {rule["record"] for path in RULE_FILES for rule in rules(path) if "record" in rule}


def tool(name: str) -> str:
    path = shutil.which(name)
    need(path is not None, f"{name} is not installed (Debian prometheus / prometheus-alertmanager)")
    assert path is not None
    return path


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


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


# promtool and amtool


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_accepts_the_rule_file(path: Path) -> None:
    result = run(tool("promtool"), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(path: Path) -> None:
    result = run(tool("promtool"), "test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_accepts_the_alertmanager_config() -> None:
    result = run(tool("amtool"), "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("severity", "receiver"), [*RECEIVERS.items(), ("", "ticket"), ("unknown", "ticket")]
)
@pytest.mark.orr("3.3-08")
def test_each_severity_routes_to_its_receiver(severity: str, receiver: str) -> None:
    labels = ["alertname=VerifierTargetDown", "job=cap-verifier"]
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


# Alertmanager config, structure


def test_alerts_are_grouped_by_alertname_and_job() -> None:
    route = load_yaml(ALERTMANAGER)["route"]
    assert route["group_by"] == ["alertname", "job"]
    for key in ("group_wait", "group_interval", "repeat_interval"):
        assert key in route


def test_critical_inhibits_warning_of_the_same_alert_and_job() -> None:
    rules = load_yaml(ALERTMANAGER)["inhibit_rules"]
    assert {
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="warning"'],
        "equal": ["alertname", "job"],
    } in rules


def test_receivers_are_simple_and_hold_no_secret() -> None:
    receivers = {r["name"]: r for r in load_yaml(ALERTMANAGER)["receivers"]}
    assert set(receivers) == set(RECEIVERS.values())
    assert set(receivers["null"]) == {"name"}
    for name in ("page", "ticket"):
        integrations = {k: v for k, v in receivers[name].items() if k != "name"}
        assert list(integrations) == ["webhook_configs"], name
        (webhook,) = integrations["webhook_configs"]
        assert re.fullmatch(r"http://[a-z0-9.-]+(:\d+)?/[A-Za-z0-9/_-]*", webhook["url"]), webhook
        assert not [key for key in webhook if SECRET_KEYS.search(key)], webhook


# Rule files and their tests


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


def test_every_alert_is_tested_on_both_sides_of_its_for_boundary() -> None:
    """For each alert rule (each severity tier): one test case expects it at some time and,
    one evaluation interval earlier, does not."""
    untested = []
    for rule_path in RULE_FILES:
        test = load_yaml(UNIT_TESTS / f"{stem(rule_path, RULES_SUFFIX)}{TEST_SUFFIX}")
        step = seconds(test.get("evaluation_interval", "1m"))
        for rule in (r for r in rules(rule_path) if "alert" in r):
            if not any(_boundary_tested(case, rule, step) for case in test["tests"]):
                untested.append(f"{rule['alert']} {rule['labels']}")
    assert not untested


def _boundary_tested(case: dict[str, Any], rule: dict[str, Any], step: float) -> bool:
    fired_at: set[float] = set()
    silent_at: set[float] = set()
    for check in case.get("alert_rule_test", []):
        if check["alertname"] != rule["alert"]:
            continue
        matching = [
            a
            for a in check.get("exp_alerts") or []
            if rule["labels"].items() <= a["exp_labels"].items()
        ]
        (fired_at if matching else silent_at).add(seconds(check["eval_time"]))
    return any(t - step in silent_at for t in fired_at)


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_unit_tests_name_real_alerts_and_pin_every_annotation(path: Path) -> None:
    test = load_yaml(path)
    names = alert_names()
    for case in test["tests"]:
        assert case.get("name", "").endswith("."), "name each test case with a sentence"
        for check in case.get("alert_rule_test", []):
            assert check["alertname"] in names, check["alertname"]
            for alert in check.get("exp_alerts") or []:
                assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}
                assert alert["exp_labels"]["severity"] in SEVERITIES


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_unit_tests_feed_only_exported_metrics(path: Path) -> None:
    for case in load_yaml(path)["tests"]:
        for series in case["input_series"]:
            name = series["series"].split("{", 1)[0]
            assert name in EXPORTED_METRICS, name


# The alerts and recording rules themselves


@pytest.mark.parametrize(
    "rule", all_alerts(), ids=lambda r: f"{r['alert']}-{r['labels'].get('severity')}"
)
def test_alert_has_severity_for_summary_description_and_runbook(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"Verifier[A-Z][A-Za-z0-9]+", name)
    seconds(rule["for"])  # present, and a duration
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    summary = annotations["summary"]
    assert "{{" not in summary
    assert summary.endswith(".")
    assert not re.search(r"[.!?]\s", summary), "the summary is one sentence"
    assert "{{ $labels.job }}" in annotations["description"]
    base = config()["runbook_base_url"].rstrip("/")
    assert annotations["runbook_url"] == f"{base}/runbooks/alerts/{name}.md".removeprefix("./")
    assert (RUNBOOKS / "alerts" / f"{name}.md").is_file()


def test_alerts_and_groups_are_named_once() -> None:
    group_names = [g["name"] for path in RULE_FILES for g in groups(path)]
    assert len(group_names) == len(set(group_names))
    tiers = [(r["alert"], tuple(sorted(r["labels"].items()))) for r in all_alerts()]
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
    known = EXPORTED_METRICS | recording_names()
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


# Runbooks


@pytest.mark.orr("4.1-02")
def test_every_runbook_names_an_alert_and_has_the_sections() -> None:
    pages = sorted((RUNBOOKS / "alerts").glob("*.md"))
    assert {p.stem for p in pages} == alert_names()
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert text.startswith(f"# {page.stem}\n"), page.name
        headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
        assert headings == list(RUNBOOK_SECTIONS), page.name


@pytest.mark.orr("4.1-01")
def test_runbook_index_links_every_alert_page() -> None:
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\(alerts/([A-Za-z0-9]+)\.md\)", index))
    assert linked == alert_names()


# Generation


def test_committed_rule_files_equal_a_fresh_generation() -> None:
    generated = rule_generator.generate(monitoring.load())
    assert set(generated) == {p.name for p in RULE_FILES}, "a rule file is not generated"
    stale = [n for n, text in generated.items() if (ALERTS / n).read_text("utf-8") != text]
    assert not stale, f"run `make generate`: {stale}"


def test_the_rules_follow_the_config(tmp_path: Path) -> None:
    text = (ALERTS / "config.yaml").read_text(encoding="utf-8")
    changed = tmp_path / "config.yaml"
    text = re.sub(
        r"(?m)^runbook_base_url: .*$", "runbook_base_url: https://elsewhere.example/x/", text
    )
    changed.write_text(
        text.replace("latency_threshold_seconds: 0.5", "latency_threshold_seconds: 0.25").replace(
            "availability_target: 0.995", "availability_target: 0.999"
        ),
        encoding="utf-8",
    )
    generated = rule_generator.generate(monitoring.load(changed))
    latency = generated["verifier_latency.rules.yaml"]
    assert 'p95_5m{job="cap-verifier"} > 0.25\n' in latency
    assert "above the 250ms objective" in latency
    assert (
        "runbook_url: https://elsewhere.example/x/runbooks/alerts/VerifierHighLatency.md" in latency
    )
    assert "> (14.4 * 0.001)" in generated["verifier_availability.rules.yaml"]


def test_a_misspelt_setting_is_refused(tmp_path: Path) -> None:
    text = (ALERTS / "config.yaml").read_text(encoding="utf-8")
    changed = tmp_path / "config.yaml"
    changed.write_text(
        text.replace("  VerifierHighLatency:\n", "  VerifierHighLatency:\n    fro: 5m\n")
    )
    with pytest.raises(ConfigError, match="fro"):
        rule_generator.generate(monitoring.load(changed))


def test_a_selector_beyond_the_job_label_is_refused(tmp_path: Path) -> None:
    text = (ALERTS / "config.yaml").read_text(encoding="utf-8")
    changed = tmp_path / "config.yaml"
    changed.write_text(
        text.replace("selector: 'job=\"cap-verifier\"'", 'selector: \'job="x",namespace="y"\'')
    )
    with pytest.raises(ConfigError, match="selector"):
        rule_generator.generate(monitoring.load(changed))


# Runbooks: their threshold tables come from the rules


def test_committed_runbooks_show_the_generated_thresholds() -> None:
    pages = rule_generator.runbooks(monitoring.load(), load_yaml(ALERTMANAGER))
    assert set(pages) == {"README.md", *(f"alerts/{name}.md" for name in alert_names())}
    stale = [n for n, text in pages.items() if (RUNBOOKS / n).read_text("utf-8") != text]
    assert not stale, f"run `make generate`: {stale}"


def test_runbook_thresholds_follow_the_config(tmp_path: Path) -> None:
    text = (ALERTS / "config.yaml").read_text(encoding="utf-8")
    changed = tmp_path / "config.yaml"
    changed.write_text(text.replace("ratio: 0.8", "ratio: 0.7"), encoding="utf-8")
    pages = rule_generator.runbooks(monitoring.load(changed), load_yaml(ALERTMANAGER))
    page = pages["alerts/VerifierCacheHitRatioLow.md"]
    assert '{job="cap-verifier"} < 0.7` |' in page
    assert "| info (null) | 10m |" in page


def test_a_runbook_without_its_generated_block_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# VerifierHighLatency\n\nthresholds typed by hand\n")
    with pytest.raises(ConfigError, match=r"page\.md: no generated block"):
        rule_generator.replace_block(page.read_text(), "x\n", str(page))
