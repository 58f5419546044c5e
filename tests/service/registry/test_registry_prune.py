"""Retention of the verification audit table: the registry's batched prune, the
``cap-verifier audit prune`` command (the CronJob of a PostgreSQL registry) and the service's own
schedule for a SQLite registry. Real SQLite files and PostgreSQL databases."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from registry_samples import audit

from cap_ops.devkit.service import BIN, ServiceProcess
from cap_ops.poll import wait_until
from cap_verifier.registry import AuditRecord, Registry
from cap_verifier.registry.records import utc_now
from cap_verifier.retention import AuditPruner, cutoff
from cap_verifier.settings import AUDIT_RETENTION_DAYS, RegistrySettings

OLD = [f"req-old-{i}" for i in range(5)]
RECENT = ["req-recent-0", "req-recent-1"]


def _aged(request_id: str, days: float) -> AuditRecord:
    return dataclasses.replace(
        audit(request_id.removeprefix("req-")), created_at=utc_now() - timedelta(days=days)
    )


def _seed(registry: Registry) -> None:
    """Five records past the default retention, one a day short of it and one of today."""
    registry.record_verifications(
        [_aged(request_id, AUDIT_RETENTION_DAYS + 1 + i) for i, request_id in enumerate(OLD)]
        + [_aged(RECENT[0], AUDIT_RETENTION_DAYS - 1), _aged(RECENT[1], 0)]
    )


def _kept(registry: Registry) -> list[str]:
    return sorted(r.request_id for r in registry.list_verifications(limit=10_000))


def test_prune_deletes_in_batches_only_what_is_past_retention(registry: Registry) -> None:
    _seed(registry)
    before = cutoff(RegistrySettings())

    assert registry.count_verifications_before(before) == len(OLD)
    assert registry.prune_verifications(before, batch_size=2) == len(OLD)

    assert _kept(registry) == RECENT
    assert registry.prune_verifications(before) == 0


def test_prune_refuses_an_empty_batch(registry: Registry) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        registry.prune_verifications(utc_now(), batch_size=0)


# --- cap-verifier audit prune --------------------------------------------------------------------


def _config(tmp_path: Path, url: str, **registry: Any) -> Path:
    config = {
        "tls": {"enabled": False},
        "oauth2": {
            "issuer": "https://idp.cap.test",
            "audience": "cap-verifier",
            "jwks_url": "https://idp.cap.test/jwks",
        },
        "registry": {"url": url, **registry},
    }
    path = tmp_path / "verifier.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def _prune(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAP_VERIFIER_")}
    return subprocess.run(
        [str(BIN / "cap-verifier"), "audit", "prune", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def _json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_cli_dry_run_counts_then_prune_removes(
    registry: Registry, registry_url: str, tmp_path: Path
) -> None:
    _seed(registry)
    config = _config(tmp_path, registry_url)

    dry = _prune(config, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"audit prune: would remove {len(OLD)} verification records" in dry.stdout
    assert _kept(registry) == sorted(OLD + RECENT)

    done = _prune(config)
    assert done.returncode == 0, done.stderr
    assert f"audit prune: removed {len(OLD)} verification records" in done.stdout
    assert f"(retention {AUDIT_RETENTION_DAYS} days)" in done.stdout
    (line,) = [x for x in _json_lines(done.stdout) if x.get("event") == "audit_prune"]
    assert (line["rows"], line["outcome"], line["dry_run"]) == (len(OLD), "success", False)
    assert _kept(registry) == RECENT


@pytest.mark.parametrize(
    ("registry_keys", "error"),
    [
        ({"audit_retention_days": 7}, "registry.audit_retention_days"),
        ({"audit_retention_days": "seven years"}, "registry.audit_retention_days"),
        ({"audit_retention_dayz": 2557}, "audit_retention_dayz"),
    ],
)
def test_cli_bad_config_is_one_line_and_changes_nothing(
    registry: Registry,
    registry_url: str,
    tmp_path: Path,
    registry_keys: dict[str, Any],
    error: str,
) -> None:
    _seed(registry)

    result = _prune(_config(tmp_path, registry_url, **registry_keys))

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("config error: ")
    assert error in result.stderr
    assert result.stderr.count("\n") == 1
    assert _kept(registry) == sorted(OLD + RECENT)


def test_cli_on_an_unmigrated_database_is_one_line(registry_url: str, tmp_path: Path) -> None:
    result = _prune(_config(tmp_path, registry_url))

    assert result.returncode == 1
    assert result.stderr == "audit prune failed: policy registry unavailable: schema not migrated\n"


# --- the service's own schedule (SQLite) ---------------------------------------------------------


def test_the_service_prunes_its_sqlite_registry(
    make_service: Callable[..., ServiceProcess],
) -> None:
    service = make_service()
    service.migrate()
    with Registry(service.config["registry"]["url"]) as registry:
        _seed(registry)
        service.start()
        try:
            wait_until(lambda: _kept(registry) == RECENT, 30, "the service's start-up prune")
        finally:
            service.stop()
    lines = [json.loads(x) for x in service.logs().splitlines() if x.startswith("{")]
    prunes = [x for x in lines if x.get("event") == "audit_prune"]
    assert [(x["rows"], x["outcome"]) for x in prunes] == [(len(OLD), "success")]


def test_only_a_sqlite_registry_is_pruned_by_the_service(tmp_path: Path) -> None:
    sqlite = Registry(f"sqlite:///{tmp_path}/registry.db")
    postgresql = Registry("postgresql+psycopg://cap@127.0.0.1:1/cap")  # never connected

    assert AuditPruner(sqlite, RegistrySettings()).active
    assert not AuditPruner(sqlite, RegistrySettings(audit_prune_interval_hours=0)).active
    assert not AuditPruner(postgresql, RegistrySettings()).active
