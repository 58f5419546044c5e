#!/usr/bin/python
"""Record one more file of a partial backup in its manifest."""

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_add_file
short_description: Record a file of a partial backup in its manifest
description:
  - Adds the SHA-256 and size of C(directory/name) to C(manifest.json) (rewritten
    atomically). The file must be a regular file of mode 0600 or stricter.
options:
  directory:
    description: The partial backup directory.
    type: path
    required: true
  name:
    description: The file's name inside the directory.
    type: str
    required: true
author: cap-verifier-ops
"""

RETURN = r"""
manifest:
  description: The manifest with the file recorded.
  type: dict
  returned: always
"""

from pathlib import Path

import msgspec
from ansible.module_utils.basic import AnsibleModule

from cap_ops.backup import BackupError, add_file, read_manifest


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "directory": {"type": "path", "required": True},
            "name": {"type": "str", "required": True},
        },
        supports_check_mode=True,
    )
    if module.check_mode:
        module.exit_json(changed=True, manifest={})
    directory = Path(module.params["directory"])
    try:
        manifest = add_file(directory, read_manifest(directory), directory / module.params["name"])
    except BackupError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=True, manifest=msgspec.to_builtins(manifest))


if __name__ == "__main__":
    main()
