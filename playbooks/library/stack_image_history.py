#!/usr/bin/python
"""The images an environment ran, newest first, from the git history of Pulumi.<env>.yaml."""

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_image_history
short_description: The images an environment ran, from git
description:
  - Reads the image section of every commit that changed C(Pulumi.<env>.yaml), newest first,
    and returns the current image and the one before it (the rollback target). Changes nothing.
options:
  root:
    description: The repository root (a git work tree).
    type: path
    required: true
  env:
    description: The environment (dev, staging, prod).
    type: str
    required: true
author: cap-verifier-ops
"""

RETURN = r"""
current:
  description: The image of the newest commit (commit, version, reference, digest, tag).
  type: dict
  returned: always
previous:
  description: The image before it.
  type: dict
  returned: always
"""

from dataclasses import asdict
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

from cap_ops.stack_edit import StackEditError, image_history


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "env": {"type": "str", "required": True, "choices": ["dev", "staging", "prod"]},
        },
        supports_check_mode=True,
    )

    root, env = Path(module.params["root"]), module.params["env"]
    try:
        history = image_history(root, env)
    except StackEditError as exc:
        module.fail_json(msg=str(exc))
    if len(history) < 2:
        module.fail_json(msg=f"Pulumi.{env}.yaml: git holds no earlier image to go back to")
    module.exit_json(changed=False, current=asdict(history[0]), previous=asdict(history[1]))


if __name__ == "__main__":
    main()
