"""The monitoring files of ``alerts/`` as data: the rule files, their promtool unit tests
(``alerts/tests/``) and the Alertmanager config; and the two tools that check them, promtool and
amtool (Debian packages prometheus and prometheus-alertmanager)."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from cap_ops.durations import seconds
from support.require import need

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "alerts"
UNIT_TESTS = ALERTS / "tests"
ALERTMANAGER = ALERTS / "alertmanager.yml"
RULES_SUFFIX, TEST_SUFFIX = ".rules.yaml", "-test.yaml"
RULE_FILES = sorted(ALERTS.glob(f"*{RULES_SUFFIX}"))
TEST_FILES = sorted(UNIT_TESTS.glob(f"*{TEST_SUFFIX}"))


def load_yaml(source: Path | str) -> Any:
    text = source.read_text(encoding="utf-8") if isinstance(source, Path) else source
    return YAML(typ="safe", pure=True).load(text)


def stem(path: Path, suffix: str) -> str:
    return path.name.removesuffix(suffix)


def unit_test_file(rule_file: Path) -> Path:
    return UNIT_TESTS / f"{stem(rule_file, RULES_SUFFIX)}{TEST_SUFFIX}"


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


def tier_id(rule: dict[str, Any]) -> str:
    """``HighErrorRate-P1``, ``VerifierErrorBudgetBurn-P1-1h-5m``: one alerting rule."""
    return "-".join([rule["alert"], *rule["labels"].values()])


def tool(name: str) -> str:
    path = shutil.which(name)
    need(path is not None, f"{name} is not installed (Debian prometheus / prometheus-alertmanager)")
    assert path is not None
    return path


def run(*command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


@dataclass(frozen=True)
class Check:
    """One ``alert_rule_test`` entry: at ``eval_time`` the alert ``alertname`` has exactly
    ``expected`` (label sets and annotations; empty: silent)."""

    case: str
    alertname: str
    eval_time: float
    expected: tuple[dict[str, Any], ...]


def checks(test_file: Path) -> list[Check]:
    found = []
    for case in load_yaml(test_file)["tests"]:
        for check in case.get("alert_rule_test", []):
            found.append(
                Check(
                    case.get("name", ""),
                    check["alertname"],
                    seconds(check["eval_time"]),
                    tuple(check.get("exp_alerts") or ()),
                )
            )
    return found


def fires(check: Check, rule: dict[str, Any]) -> bool:
    """``check`` expects this alerting rule (its name and every label it sets) to fire."""
    return check.alertname == rule["alert"] and any(
        rule["labels"].items() <= alert["exp_labels"].items() for alert in check.expected
    )


# A test file's cases, as text: each starts with "  - name: " under `tests:`. The text is kept as
# it is, because a YAML round trip would read `0x20` (promtool: 0, 21 times) as the number 32.
_CASE = re.compile(r"(?m)^  - name: ")


def split_cases(text: str) -> tuple[str, list[str]]:
    """The text before the first case, and each case's text."""
    starts = [m.start() for m in _CASE.finditer(text)]
    if not starts:
        return text, []
    bounds = [*starts, len(text)]
    return text[: starts[0]], [text[a:b] for a, b in itertools.pairwise(bounds)]
