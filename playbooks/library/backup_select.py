#!/usr/bin/python
"""Pick the backup to restore and check it before anything is touched."""

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_select
short_description: Choose a backup and check it completely, changing nothing
description:
  - Picks the named backup, or the newest one (by name, even when its manifest is unreadable:
    a damaged newest backup is reported, not passed over), under C(root) - first fetching it
    from C(url) (S3) into C(root) when given - and checks every file against the manifest (size and
    SHA-256) and the snapshot's schema revision against the code's. Fails with one line
    naming the first problem; the registry is not touched.
options:
  root:
    description: The local backup root.
    type: path
    required: true
  name:
    description: The backup's name (its UTC stamp, e.g. 20260101T020000Z); default the latest.
    type: str
    default: ""
  url:
    description: An S3 location (s3://bucket/prefix) to fetch the backup from.
    type: str
    default: ""
author: cap-verifier-ops
"""

RETURN = r"""
path:
  description: The backup directory, checked.
  type: str
  returned: always
manifest:
  description: Its manifest.
  type: dict
  returned: always
"""

from pathlib import Path

import msgspec
from ansible.module_utils.basic import AnsibleModule

from cap_ops.backup import BackupError, check_revision, verify_files
from cap_ops.backup.s3 import download
from cap_ops.backup.timestamps import parse_stamp


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "name": {"type": "str", "default": ""},
            "url": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    root, name, url = Path(module.params["root"]), module.params["name"], module.params["url"]
    try:
        if url:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory = download(url, name or None, root)
        elif name:
            directory = root / name
            if not directory.is_dir():
                raise BackupError(f"{directory}: no such backup")
        else:
            # The newest directory named as a backup, readable or not: a damaged newest backup
            # is reported, never silently passed over for an older one.
            names = (
                sorted(p.name for p in root.iterdir() if parse_stamp(p.name))
                if root.is_dir()
                else []
            )
            if not names:
                raise BackupError(f"{root}: no backup to restore")
            directory = root / names[-1]
        manifest = verify_files(directory)
        check_revision(manifest.schema_revision, service_version=manifest.service_version)
    except BackupError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=bool(url), path=str(directory), manifest=msgspec.to_builtins(manifest))


if __name__ == "__main__":
    main()
