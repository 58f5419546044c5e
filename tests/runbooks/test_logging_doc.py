"""docs/logging.md describes the log line the code writes and the retention the code enforces
(ORR 7.1-02: the data-retention rules are written down, and they are the ones in force)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from infra.config import load

from cap_ops import log_store
from cap_ops.localenv.configs import LOG_ROTATION
from cap_verifier import logs, settings

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "logging.md"


def field_table(text: str) -> set[str]:
    """The fields named in the first column of the doc's field table."""
    section = text.split("## The log line", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])}


def test_the_field_table_is_the_formatters_allow_list() -> None:
    written = {*logs.CORE_FIELDS, *logs.EXTRA_FIELDS, logs.ERROR_FIELD}
    assert field_table(DOC.read_text(encoding="utf-8")) == written


def test_a_field_missing_from_the_table_is_noticed() -> None:
    text = DOC.read_text(encoding="utf-8").replace("| `client_san` |", "| client SAN |")
    assert "client_san" not in field_table(text)


@pytest.mark.orr("7.1-02")
def test_the_retention_policy_states_the_retention_in_force() -> None:
    text = DOC.read_text(encoding="utf-8")
    policy = text.split("## Where each record lives", 1)[1].split("\n## ", 1)[0]
    prod = load("prod", ROOT).database
    assert prod is not None
    stated = {
        "logs": f"**{log_store.RETENTION_DAYS} days** ({log_store.RETENTION_HOURS} h",
        "audit table": f"default {settings.AUDIT_RETENTION_DAYS} days",
        "backups": f"{prod.backup.retention_days} days (`database.backup.retention_days`)",
        "local logs": f"rotated at {LOG_ROTATION.max_bytes // 2**20} MiB",
        "local files": f"{LOG_ROTATION.backups + 1} files per program",
    }
    assert [name for name, fact in stated.items() if fact not in policy] == []
    assert log_store.RETENTION_DAYS == 90, "ORR 3.4-08: logs kept 90 days"
