#!/usr/bin/python
"""Snapshot the live registry into a new, hidden partial backup directory."""

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_snapshot
short_description: Snapshot the live CAP Verifier registry into a partial backup
description:
  - Creates C(<root>/.partial-<stamp>/) (mode 0700) and takes a consistent snapshot of the
    registry into it while the service keeps serving - the SQLite online backup API, or
    C(pg_dump -Fc) at an exported snapshot for PostgreSQL - then writes C(manifest.json)
    (SHA-256 and size of each file, row counts, schema revision, service version, time).
    Nothing is visible as a backup until C(backup_publish) renames the directory.
options:
  root:
    description: The backup root directory (created mode 0700 when missing).
    type: path
    required: true
  registry_url:
    description: The registry URL, as the service's C(registry.url).
    type: str
    required: true
author: cap-verifier-ops
"""

RETURN = r"""
partial:
  description: The partial backup directory.
  type: str
  returned: changed
manifest:
  description: The manifest written.
  type: dict
  returned: changed
"""

import os
from pathlib import Path

import msgspec
from ansible.module_utils.basic import AnsibleModule

from cap_ops.backup import BackupError, partial_directory, snapshot


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "registry_url": {"type": "str", "required": True, "no_log": True},
        },
        supports_check_mode=True,
    )
    if module.check_mode:
        module.exit_json(changed=True, partial="", manifest={})
    root = Path(module.params["root"])
    partial = None
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = partial_directory(root)
        manifest = snapshot(module.params["registry_url"], partial)
    except BackupError as exc:
        if partial is not None and partial.is_dir() and not os.listdir(partial):
            partial.rmdir()
        module.fail_json(msg=str(exc))
    module.exit_json(changed=True, partial=str(partial), manifest=msgspec.to_builtins(manifest))


if __name__ == "__main__":
    main()
