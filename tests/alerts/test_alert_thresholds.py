"""The promtool unit tests pin alerts/config.yaml: every threshold, severity and `for` of it.

The unit tests (alerts/tests/) are written by hand with the values worked out in comments; what
keeps them honest against the table is mutation. Each case below takes the table, changes one
number (a threshold moved 10 % up or down, or by one for counts, days and minutes; a `for` one
evaluation longer or shorter; a severity to another level), generates the rule files from that
copy exactly as `make generate` does, and runs the unit tests of the alert concerned against
them: promtool must fail on that alert. So a series just under a threshold must stay within
10 % under it and the firing one within 10 % over it; a test far from its threshold, or one that
would pass whatever the table says, fails here.

Only the rules' expressions, `for` and labels may differ: the annotations of the unchanged table
are put back into the generated rules, or a description naming the threshold would fail the
tests by its text alone, whatever the series. The control case runs the same machinery on the
unchanged table: every unit test passes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import pytest
from alert_files import ALERTS, RULE_FILES, load_yaml, run, split_cases, tool, unit_test_file

from alerts import generate as rule_generator
from cap_ops import monitoring
from cap_ops.durations import human_seconds, seconds
from cap_ops.monitoring import Monitoring

NUDGE = 0.1
"""How far a threshold moves: the unit tests' series must straddle it this closely."""

ORR = {
    "HighErrorRate": "3.3-01",
    "HighP95Latency": "3.3-02",
    "HighP99Latency": "3.3-03",
    "FivexxSpike": "3.3-04",
    "LowCacheHitRate": "3.3-05",
    "HighAuthFailureRate": "3.3-06",
    "NoTraffic": "3.3-07",
}
# The SLO lines whose numbers an alert's threshold is (ORR 3.5).
SLO_LINES = {
    "slo.availability_target": ("3.5-01", "3.5-07"),
    "slo.latency.0.threshold_seconds": ("3.5-02",),
    "slo.latency.1.threshold_seconds": ("3.5-03",),
    "slo.max_error_ratio": ("3.5-04",),
    "slo.min_cache_hit_ratio": ("3.5-05",),
}


@dataclass(frozen=True)
class Mutation:
    id: str
    alert: str
    """The alert whose unit tests must fail."""
    rule_file: str
    path: str
    """Where in the table: attribute names and tuple indexes, dotted."""
    change: Callable[[Any], Any]
    tier: str | None = None
    """Only the cases whose name names this burn-rate tier (``1h/5m``): the others' series
    take seconds to evaluate and test other windows."""

    def apply(self, table: Monitoring) -> Monitoring:
        keys = self.path.split(".")
        changed: Monitoring = _replace(table, keys, self.change(_get(table, keys)))
        return changed

    def param(self) -> Any:
        lines = (*((ORR[self.alert],) if self.alert in ORR else ()), *SLO_LINES.get(self.path, ()))
        marks = [pytest.mark.orr(*lines)] if lines else []
        return pytest.param(self, id=self.id, marks=marks)


def _get(value: Any, keys: list[str]) -> Any:
    for key in keys:
        value = value[int(key)] if isinstance(value, tuple) else getattr(value, key)
    return value


def _replace(value: Any, keys: list[str], new: Any) -> Any:
    if not keys:
        return new
    key, rest = keys[0], keys[1:]
    if isinstance(value, tuple):
        i = int(key)
        return (*value[:i], _replace(value[i], rest, new), *value[i + 1 :])
    return msgspec.structs.replace(value, **{key: _replace(getattr(value, key), rest, new)})


AVAILABILITY = "verifier_availability.rules.yaml"
LATENCY = "verifier_latency.rules.yaml"
AUTH = "verifier_auth.rules.yaml"
SATURATION = "verifier_saturation.rules.yaml"
CERTIFICATES = "verifier_certificates.rules.yaml"


def _up(old: Any) -> Any:
    return old + 1 if isinstance(old, int) else old * (1 + NUDGE)


def _down(old: Any) -> Any:
    return old - 1 if isinstance(old, int) else old * (1 - NUDGE)


def _budget_up(target: float) -> float:
    return round(1 - (1 - target) * (1 + NUDGE), 10)


def _budget_down(target: float) -> float:
    return round(1 - (1 - target) * (1 - NUDGE), 10)


def _minute_longer(old: str) -> str:
    return human_seconds(seconds(old) + 60)


def _minute_shorter(old: str) -> str:
    return human_seconds(seconds(old) - 60)


def _other_severity(old: str) -> str:
    return "P1" if old != "P1" else "P2"


# (alert, rule file, path in the table) of every threshold.
THRESHOLDS = [
    ("HighErrorRate", AVAILABILITY, "slo.max_error_ratio"),
    ("FivexxSpike", AVAILABILITY, "alerts.fivexx_spike.per_minute"),
    ("VerifierTargetDown", AVAILABILITY, "alerts.target_down.partial.down_percent"),
    ("HighP95Latency", LATENCY, "slo.latency.0.threshold_seconds"),
    ("HighP99Latency", LATENCY, "slo.latency.1.threshold_seconds"),
    ("LowCacheHitRate", SATURATION, "slo.min_cache_hit_ratio"),
    ("LowCacheHitRate", SATURATION, "alerts.low_cache_hit_rate.min_lookups_per_second"),
    ("HighAuthFailureRate", AUTH, "alerts.high_auth_failure_rate.ratio"),
    ("HighAuthFailureRate", AUTH, "alerts.high_auth_failure_rate.min_rate_per_second"),
    ("VerifierJWKSStale", AUTH, "jwks.cache_ttl_seconds"),
    ("VerifierJWKSExpired", AUTH, "jwks.max_stale_seconds"),
    ("VerifierCertificateExpiresSoon", CERTIFICATES, "alerts.certificate_expiry.days"),
]
# (alert, rule file, path of its entry) of every configured alert (the fastest burn tier only:
# the slower ones' tests take seconds each, and they are the same code).
ENTRIES = [
    ("HighErrorRate", AVAILABILITY, "alerts.high_error_rate"),
    ("FivexxSpike", AVAILABILITY, "alerts.fivexx_spike"),
    ("NoTraffic", AVAILABILITY, "alerts.no_traffic"),
    ("VerifierTargetDown", AVAILABILITY, "alerts.target_down.partial"),
    ("VerifierTargetDown", AVAILABILITY, "alerts.target_down.total"),
    ("VerifierEndpointDown", AVAILABILITY, "alerts.endpoint_down"),
    ("VerifierErrorBudgetBurn", AVAILABILITY, "burn_rate_windows.0"),
    ("HighP95Latency", LATENCY, "alerts.high_p95_latency"),
    ("HighP99Latency", LATENCY, "alerts.high_p99_latency"),
    ("LowCacheHitRate", SATURATION, "alerts.low_cache_hit_rate"),
    ("HighAuthFailureRate", AUTH, "alerts.high_auth_failure_rate"),
    ("VerifierJWKSStale", AUTH, "alerts.jwks_stale"),
    ("VerifierJWKSExpired", AUTH, "alerts.jwks_expired"),
    ("VerifierJWKSNeverLoaded", AUTH, "alerts.jwks_never_loaded"),
    ("VerifierCertificateExpiresSoon", CERTIFICATES, "alerts.certificate_expiry"),
]


def _tier(index: int) -> str:
    window = monitoring.load().burn_rate_windows[index]
    return f"{window.long}/{window.short}"


def mutations() -> list[Mutation]:
    found = []
    for i in range(len(monitoring.load().burn_rate_windows)):
        path = f"burn_rate_windows.{i}.factor"
        for direction, change in (("up", _up), ("down", _down)):
            found.append(
                Mutation(
                    f"{path}-{direction}",
                    "VerifierErrorBudgetBurn",
                    AVAILABILITY,
                    path,
                    change,
                    _tier(i),
                )
            )
    for alert, rule_file, path in THRESHOLDS:
        found.append(Mutation(f"{path}-up", alert, rule_file, path, _up))
        found.append(Mutation(f"{path}-down", alert, rule_file, path, _down))
    for direction, budget in (("up", _budget_up), ("down", _budget_down)):
        found.append(
            Mutation(
                f"error-budget-{direction}",
                "VerifierErrorBudgetBurn",
                AVAILABILITY,
                "slo.availability_target",
                budget,
            )
        )
    # NoTraffic's window: one minute longer or shorter moves the time it fires.
    for direction, change in (("longer", _minute_longer), ("shorter", _minute_shorter)):
        path = "alerts.no_traffic.window"
        found.append(Mutation(f"{path}-{direction}", "NoTraffic", AVAILABILITY, path, change))
    for alert, rule_file, path in ENTRIES:
        tier = _tier(0) if path.startswith("burn_rate_windows.") else None
        changes = [
            ("severity", "severity", _other_severity),
            ("for-longer", "for_", _minute_longer),
        ]
        if seconds(_get(monitoring.load(), [*path.split("."), "for_"])) >= 60:
            changes.append(("for-shorter", "for_", _minute_shorter))
        for name, key, change in changes:
            found.append(
                Mutation(f"{path}.{name}", alert, rule_file, f"{path}.{key}", change, tier)
            )
    return found


@cache
def original_rules() -> dict[str, Any]:
    return {
        name: load_yaml(text) for name, text in rule_generator.generate(monitoring.load()).items()
    }


def mutated_rules(table: Monitoring) -> dict[str, Any]:
    """The rule files of ``table``, with the annotations of the unchanged table."""
    mutated = {name: load_yaml(text) for name, text in rule_generator.generate(table).items()}
    for name, document in mutated.items():
        original = original_rules()[name]["groups"]
        for group, before in zip(document["groups"], original, strict=True):
            for rule, old in zip(group["rules"], before["rules"], strict=True):
                if "alert" in rule:
                    rule["annotations"] = old["annotations"]
    return mutated


def run_unit_tests(
    rules: dict[str, Any],
    rule_file: str,
    where: Path,
    alert: str | None = None,
    tier: str | None = None,
) -> str:
    """promtool's verdict on the unit tests of ``rule_file`` against ``rules`` (only the cases
    that check ``alert`` and whose name has ``tier``, when given); its output, with the exit
    status first."""
    (where / "tests").mkdir()
    for name, document in rules.items():  # JSON is YAML, and keeps every number as it is
        (where / name).write_text(json.dumps(document, indent=1), encoding="utf-8")
    text = unit_test_file(ALERTS / rule_file).read_text(encoding="utf-8")
    head, cases = split_cases(text)
    if alert is not None:
        cases = [case for case in cases if f"alertname: {alert}\n" in case]
    if tier is not None:
        cases = [case for case in cases if tier in case.split("\n", 1)[0]]
    assert cases, f"no unit test checks {alert} {tier or ''}"
    test = where / "tests" / f"{rule_file.removesuffix('.rules.yaml')}-test.yaml"
    test.write_text(head + "".join(cases), encoding="utf-8")
    result = run(tool("promtool"), "test", "rules", str(test))
    return f"exit {result.returncode}\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("rule_file", [p.name for p in RULE_FILES if "record" not in p.name])
def test_control_the_unchanged_table_passes_every_unit_test(rule_file: str, tmp_path: Path) -> None:
    output = run_unit_tests(mutated_rules(monitoring.load()), rule_file, tmp_path)
    assert output.startswith("exit 0\n"), output


@pytest.mark.parametrize("mutation", [m.param() for m in mutations()])
def test_a_changed_table_fails_the_unit_tests_of_its_alert(
    mutation: Mutation, tmp_path: Path
) -> None:
    table = mutation.apply(monitoring.load())
    rules = mutated_rules(table)
    assert rules[mutation.rule_file] != original_rules()[mutation.rule_file], "nothing changed"
    output = run_unit_tests(rules, mutation.rule_file, tmp_path, mutation.alert, mutation.tier)
    assert not output.startswith("exit 0\n"), f"the unit tests pass whatever {mutation.path} is"
    assert f"alertname: {mutation.alert}," in output, output
