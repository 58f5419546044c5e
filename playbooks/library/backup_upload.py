#!/usr/bin/python
"""Copy a published backup to S3-compatible object storage, manifest last."""

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_upload
short_description: Upload a backup to S3-compatible object storage
description:
  - Checks the backup's files, then uploads them to C(<url>/<name>/), C(manifest.json) last,
    so that an interrupted upload is never taken for a backup. Credentials and endpoint come
    from the AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL).
options:
  directory:
    description: The published backup directory.
    type: path
    required: true
  url:
    description: The S3 location, s3://bucket/prefix.
    type: str
    required: true
author: cap-verifier-ops
"""

RETURN = r"""
uploaded:
  description: The S3 URL of the uploaded backup.
  type: str
  returned: always
"""

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

from cap_ops.backup import BackupError
from cap_ops.backup.s3 import upload


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "directory": {"type": "path", "required": True},
            "url": {"type": "str", "required": True},
        },
        supports_check_mode=True,
    )
    if module.check_mode:
        module.exit_json(changed=True, uploaded="")
    try:
        uploaded = upload(Path(module.params["directory"]), module.params["url"])
    except BackupError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=True, uploaded=uploaded)


if __name__ == "__main__":
    main()
