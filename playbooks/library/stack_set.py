#!/usr/bin/python
"""Set keys of Pulumi.<env>.yaml, validated by the stack's typed config (cap_ops.stack_edit)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_set
short_description: Set keys of an environment's Pulumi.<env>.yaml, validated
description:
  - Sets dotted keys (C(scaling.hpa.max_replicas)) of C(Pulumi.<env>.yaml), keeping comments and
    layout. The edited file must pass the stack's typed config (the same checks as the Pulumi
    program and the renderer, quota included); otherwise the module fails with one line and the
    file is left as it was. In check mode it validates and reports, writing nothing.
options:
  root:
    description: The repository root.
    type: path
    required: true
  env:
    description: The environment (dev, staging, prod).
    type: str
    required: true
  values:
    description: Dotted key -> new value. Only existing keys can be set.
    type: dict
    required: true
author: cap-verifier-ops
"""

RETURN = r"""
before:
  description: The previous value of every key set.
  type: dict
  returned: always
"""

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

from cap_ops.stack_edit import StackEditError, set_values


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "env": {"type": "str", "required": True, "choices": ["dev", "staging", "prod"]},
            "values": {"type": "dict", "required": True},
        },
        supports_check_mode=True,
    )

    params = module.params
    try:
        edit = set_values(
            Path(params["root"]), params["env"], params["values"], write=not module.check_mode
        )
    except StackEditError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=edit.changed, before=edit.before, path=str(edit.path))


if __name__ == "__main__":
    main()
