"""Ansible callback: one audit line per playbook run (cap_ops.playbook_audit)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ansible.parsing.splitter import parse_kv
from ansible.plugins.callback import CallbackBase

from ansible import context  # type: ignore[attr-defined]
from cap_ops import playbook_audit

DOCUMENTATION = """
name: audit_log
type: notification
short_description: one JSON line per playbook run (operator, operation, environment, result)
description:
  - Appends the run to the audit log when the playbook ends; values of extra variables are
    never written, only their names.
options:
  path:
    description: The audit log; by default .local/logs/playbooks.log for the local inventory
      and the operator's state folder for the clusters.
    env:
      - name: CAP_OPS_AUDIT_LOG
    ini:
      - section: callback_audit_log
        key: path
"""


def _extra_var_names(tokens: Any) -> list[str]:
    names: list[str] = []
    for token in tokens or ():
        text = str(token)
        if text.startswith("@"):
            names.append(text)  # a vars file: its path, not its contents
        elif text.lstrip().startswith(("{", "[")):
            names.append("<inline JSON/YAML>")
        else:
            names.extend(k for k in parse_kv(text) if not k.startswith("_"))
    return names


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "audit_log"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._operation = "unknown"
        self._started = datetime.now(UTC)

    def v2_playbook_on_start(self, playbook: Any) -> None:
        self._operation = Path(playbook._file_name).stem
        self._started = datetime.now(UTC)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        args = context.CLIARGS
        inventories = args.get("inventory") or ("unknown",)
        environment = playbook_audit.environment_of(str(inventories[0]))
        run = playbook_audit.Run(
            operation=self._operation,
            environment=environment,
            operator=playbook_audit.operator(),
            check_mode=bool(args.get("check")),
            started=self._started,
            finished=datetime.now(UTC),
            hosts={host: dict(stats.summarize(host)) for host in sorted(stats.processed)},
            extra_vars=_extra_var_names(args.get("extra_vars")),
        )
        configured = self.get_option("path")
        path = Path(os.path.expanduser(configured)) if configured else None
        playbook_audit.append(path or playbook_audit.default_path(environment), run)
