#!/usr/bin/python
"""Retention: delete backups older than the retention, never the newest good one."""

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_prune
short_description: Delete old backups, keeping the newest good one
description:
  - Deletes the backups under C(root) (and under C(url) in S3 when given) taken more than
    C(keep_days) days ago, by the time in their name, plus partial backups older than a day.
    The newest good backup (files matching its manifest; in S3, complete) is kept however old.
options:
  root:
    description: The local backup root.
    type: path
    required: true
  keep_days:
    description: The retention in days.
    type: int
    required: true
  url:
    description: An S3 location (s3://bucket/prefix) to prune as well.
    type: str
    default: ""
  now:
    description: The time to prune at (RFC 3339 UTC; default now) - for tests and replays.
    type: str
    default: ""
author: cap-verifier-ops
"""

RETURN = r"""
deleted:
  description: The local backup directories deleted.
  type: list
  returned: always
deleted_remote:
  description: The S3 backups deleted (names).
  type: list
  returned: always
"""

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

from cap_ops.backup import BackupError, prune
from cap_ops.backup.s3 import prune_remote
from cap_ops.backup.timestamps import parse_rfc3339, utc_now


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "keep_days": {"type": "int", "required": True},
            "url": {"type": "str", "default": ""},
            "now": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    if module.check_mode:
        module.exit_json(changed=False, deleted=[], deleted_remote=[])
    params = module.params
    try:
        now = parse_rfc3339(params["now"]) if params["now"] else utc_now()
        root = Path(params["root"])
        deleted = [str(p) for p in prune(root, params["keep_days"], now)] if root.is_dir() else []
        remote = prune_remote(params["url"], params["keep_days"], now) if params["url"] else []
    except (BackupError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=bool(deleted or remote), deleted=deleted, deleted_remote=remote)


if __name__ == "__main__":
    main()
