#!/usr/bin/python
"""List the policies stored in the registry (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_policies
short_description: List the policies stored in the CAP Verifier registry
description:
  - Reads the registry (SQLite file or PostgreSQL URL) with the service's own code and returns
    the ids of every stored v1 and PolicyV2 policy. Changes nothing.
options:
  registry_url:
    description: The registry URL, as the service's C(registry.url).
    type: str
    required: true
author: cap-verifier-ops
"""

RETURN = r"""
v1:
  description: UUIDs of the stored v1 policies.
  type: list
  returned: always
v2:
  description: Ids of the stored PolicyV2 policies.
  type: list
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from cap_verifier.registry import Registry


def main() -> None:
    module = AnsibleModule(
        argument_spec={"registry_url": {"type": "str", "required": True, "no_log": True}},
        supports_check_mode=True,
    )

    registry = Registry(module.params["registry_url"])
    try:
        ids = registry.policy_ids()
    except Exception as exc:  # one line, never the URL (it may hold a password)
        module.fail_json(msg=f"cannot read the registry: {type(exc).__name__}")
    finally:
        registry.close()
    module.exit_json(changed=False, **ids)


if __name__ == "__main__":
    main()
