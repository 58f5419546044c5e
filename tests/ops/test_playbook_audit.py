"""Every playbook run leaves one audit line (ORR 7.2-04: who did what, where and when), from
real ansible-playbook runs through the callback that playbooks/ansible.cfg enables."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cap_ops import playbook_audit
from support.playbooks import PLAYBOOKS, playbook_command, playbook_env

PROBE = """
- name: Audit probe
  hosts: all
  gather_facts: false
  tasks:
    - name: Probe | succeed or fail as told
      ansible.builtin.assert:
        that: outcome == 'ok'
"""
SECRET = "TEST-FIXTURE-not-a-real-secret-9f2c"


def _run(tmp_path: Path, *args: str, check: bool = False) -> tuple[int, list[dict[str, Any]]]:
    probe = tmp_path / "audit-probe.yml"
    probe.write_text(PROBE)
    audit = tmp_path / "audit" / "playbooks.log"
    command = playbook_command(str(probe), *args, *(["--check"] if check else []))
    result = subprocess.run(
        command,
        cwd=PLAYBOOKS,
        env=playbook_env(
            **{playbook_audit.PATH_ENV: str(audit), playbook_audit.OPERATOR_ENV: "jdoe-oncall"}
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
    return result.returncode, lines


@pytest.mark.orr("7.2-04")
def test_a_run_is_recorded_with_operator_operation_environment_and_result(
    tmp_path: Path,
) -> None:
    code, lines = _run(tmp_path, "-e", "outcome=ok", "-e", f"client_secret={SECRET}")
    assert code == 0
    (line,) = lines
    assert line["message"] == playbook_audit.MESSAGE
    assert line["level"] == "INFO"
    assert (line["operation"], line["environment"], line["operator"]) == (
        "audit-probe",
        "local",
        "jdoe-oncall",
    )
    assert line["outcome"] == "ok"
    assert line["check_mode"] is False
    assert line["extra_vars"] == ["client_secret", "outcome"]
    assert SECRET not in json.dumps(line), "an extra variable's value reached the audit log"
    assert {"timestamp", "started", "duration_ms", "hosts"} <= set(line)


@pytest.mark.orr("7.2-04")
def test_a_failed_run_and_a_check_run_are_recorded_as_such(tmp_path: Path) -> None:
    code, lines = _run(tmp_path, "-e", "outcome=broken")
    assert code != 0
    code, lines = _run(tmp_path, "-e", "outcome=ok", check=True)
    assert code == 0
    assert [(line["outcome"], line["level"], line["check_mode"]) for line in lines] == [
        ("failed", "ERROR", False),
        ("ok", "INFO", True),
    ]


def test_the_environment_comes_from_the_inventory() -> None:
    assert playbook_audit.environment_of("inventories/prod/inventory.py") == "prod"
    assert playbook_audit.environment_of("/x/inventories/local/inventory.py") == "local"
    assert playbook_audit.default_path("local").parts[-3:] == (".local", "logs", "playbooks.log")
    assert playbook_audit.default_path("prod").name == playbook_audit.FILE_NAME
