#!/usr/bin/python
"""Make a finished partial backup visible: checked, owned, renamed."""

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_publish
short_description: Publish a finished partial backup
description:
  - Checks every file of the partial backup against its manifest, gives the directory (0700)
    and its files (0600) to C(owner), then renames it to C(<root>/<stamp>/) in one step. A
    reader sees the whole backup or none of it.
options:
  partial:
    description: The partial backup directory (from C(registry_snapshot)).
    type: path
    required: true
  root:
    description: The backup root.
    type: path
    required: true
  owner:
    description: The user who owns the published files (default - unchanged).
    type: str
    default: ""
author: cap-verifier-ops
"""

RETURN = r"""
path:
  description: The published backup directory.
  type: str
  returned: always
name:
  description: Its name (the snapshot's UTC time).
  type: str
  returned: always
"""

import os
import pwd
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

from cap_ops.backup import BackupError, publish, verify_files


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "partial": {"type": "path", "required": True},
            "root": {"type": "path", "required": True},
            "owner": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    if module.check_mode:
        module.exit_json(changed=True, path="", name="")
    partial, root = Path(module.params["partial"]), Path(module.params["root"])
    try:
        manifest = verify_files(partial)
        owner = module.params["owner"]
        ids = None
        if owner:
            entry = pwd.getpwnam(owner)
            ids = (entry.pw_uid, entry.pw_gid)
        for name in [*manifest.files, "manifest.json"]:
            os.chmod(partial / name, 0o600)
            if ids:
                os.chown(partial / name, *ids)
        os.chmod(partial, 0o700)
        if ids:
            os.chown(partial, *ids)
        path = publish(partial, root)
    except KeyError:
        module.fail_json(msg=f"owner {module.params['owner']!r}: no such user")
    except (BackupError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=True, path=str(path), name=path.name)


if __name__ == "__main__":
    main()
