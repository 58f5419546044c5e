#!/usr/bin/python
"""Restore a checked backup over the registry: scratch copy, verification, atomic swap."""

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_restore
short_description: Restore the CAP Verifier registry from a backup
description:
  - Checks the backup's files and schema revision, restores it into a scratch copy (a file
    beside the SQLite registry, or a scratch database), verifies the copy (row counts equal the
    manifest, every stored policy's hash recomputed equals its stored hash), then swaps it in
    atomically. The data replaced is kept (C(previous)). The service must be stopped.
options:
  directory:
    description: The backup directory.
    type: path
    required: true
  registry_url:
    description: The registry URL, as the service's C(registry.url).
    type: str
    required: true
  owner:
    description: PostgreSQL only - the role that must own the restored database.
    type: str
    default: ""
author: cap-verifier-ops
"""

RETURN = r"""
report:
  description: What was restored (target, backup, created_at, schema_revision, tables,
    seconds, previous).
  type: dict
  returned: always
"""

from pathlib import Path

import msgspec
from ansible.module_utils.basic import AnsibleModule

from cap_ops.backup import BackupError, restore


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "directory": {"type": "path", "required": True},
            "registry_url": {"type": "str", "required": True, "no_log": True},
            "owner": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    if module.check_mode:
        module.exit_json(changed=True, report={})
    try:
        report = restore(
            Path(module.params["directory"]),
            module.params["registry_url"],
            owner=module.params["owner"] or None,
        )
    except BackupError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=True, report=msgspec.to_builtins(report))


if __name__ == "__main__":
    main()
