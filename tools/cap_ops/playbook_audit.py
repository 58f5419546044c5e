"""The playbooks' audit log: one JSON line per run of an on-call playbook (who ran which
operation on which environment, when, in check mode or not, and how it ended).

Written by the ``audit_log`` callback (``playbooks/callback_plugins/audit_log.py``) in the
schema of the service's lines (:mod:`cap_verifier.logs`), so that ``make logs`` and Loki read it
like any other line. Locally it goes to ``.local/logs/playbooks.log``; for the clusters to the
operator's state folder unless ``CAP_OPS_AUDIT_LOG`` names another file (docs/logging.md).
Values of extra variables are never written (a confirmation is harmless, a secret is not): only
their names.
"""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cap_ops.localenv.layout import Layout
from cap_verifier.logs import CORE_FIELDS

PATH_ENV = "CAP_OPS_AUDIT_LOG"
OPERATOR_ENV = "CAP_OPS_OPERATOR"
LOGGER = "cap_ops.playbooks"
MESSAGE = "playbook run"
FILE_NAME = "playbooks.log"


@dataclass(frozen=True)
class Run:
    """One playbook run, as the callback saw it."""

    operation: str
    environment: str
    operator: str
    check_mode: bool
    started: datetime
    finished: datetime
    hosts: dict[str, dict[str, int]]
    """Per host: Ansible's counts (ok, changed, failures, unreachable, skipped, rescued)."""
    extra_vars: list[str] = field(default_factory=list)
    """Names of the extra variables given on the command line (never their values)."""

    @property
    def result(self) -> str:
        """``failed`` when a task failed or a host was unreachable on any host, else ``ok``."""
        bad = any(c.get("failures", 0) or c.get("unreachable", 0) for c in self.hosts.values())
        return "failed" if bad else "ok"

    def line(self) -> str:
        """The JSON line, in the schema of every other log line."""
        core = (
            self.finished.isoformat(timespec="milliseconds"),
            "ERROR" if self.result == "failed" else "INFO",
            LOGGER,
            MESSAGE,
            None,
            os.getpid(),
        )
        entry: dict[str, Any] = dict(zip(CORE_FIELDS, core, strict=True))
        entry.update(
            event="playbook_run",
            operation=self.operation,
            environment=self.environment,
            operator=self.operator,
            check_mode=self.check_mode,
            outcome=self.result,
            started=self.started.isoformat(timespec="milliseconds"),
            duration_ms=round((self.finished - self.started).total_seconds() * 1000, 1),
            hosts=self.hosts,
            extra_vars=sorted(self.extra_vars),
        )
        return json.dumps(entry, ensure_ascii=False)


def operator() -> str:
    """Who runs the playbook: ``CAP_OPS_OPERATOR`` (CI sets its actor), else the login user
    behind sudo, else the user."""
    return os.environ.get(OPERATOR_ENV) or os.environ.get("SUDO_USER") or getpass.getuser()


def environment_of(inventory: str) -> str:
    """``local`` from ``inventories/local/inventory.py``; the inventory's name otherwise."""
    path = Path(inventory)
    return path.parent.name if path.name == "inventory.py" else path.stem


def default_path(environment: str) -> Path:
    """Where a run is recorded when ``CAP_OPS_AUDIT_LOG`` is unset."""
    if environment == "local":
        return Layout.default().logs / FILE_NAME
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "cap-verifier-ops" / FILE_NAME


def append(path: Path, run: Run) -> None:
    """Append the run's line and make it durable before the playbook returns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.write(run.line() + "\n")
        out.flush()
        os.fsync(out.fileno())
