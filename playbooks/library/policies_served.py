#!/usr/bin/python
"""Read every stored policy through the verifier's API: is each one served?"""

from __future__ import annotations

DOCUMENTATION = r"""
module: policies_served
short_description: Check that the verifier serves every policy its registry stores
description:
  - Lists the policies of the registry (v1 by hash, PolicyV2 by id) with the service's own
    code, then reads each one through the API (GET /policy/<hash>, GET /policy/v2/<id>) over
    TLS, several at a time. Fails with one line naming the first policy not answered with 200
    and how many were not. Changes nothing.
options:
  registry_url:
    description: The registry URL, as the service's C(registry.url).
    type: str
    required: true
  verifier_url:
    description: The verifier's base URL.
    type: str
    required: true
  access_token:
    description: A token with the C(policy:read) scope.
    type: str
    required: true
  ca_cert:
    description: The CA bundle that signed the verifier's certificate (default - the system's).
    type: path
  concurrency:
    description: Requests in flight at once.
    type: int
    default: 8
author: cap-verifier-ops
"""

RETURN = r"""
v1:
  description: How many v1 policies were read.
  type: int
  returned: always
v2:
  description: How many PolicyV2 policies were read.
  type: int
  returned: always
seconds:
  description: How long reading them took.
  type: float
  returned: always
"""

import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import httpx
from ansible.module_utils.basic import AnsibleModule

from cap_verifier.registry import Registry


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "registry_url": {"type": "str", "required": True, "no_log": True},
            "verifier_url": {"type": "str", "required": True},
            "access_token": {"type": "str", "required": True, "no_log": True},
            "ca_cert": {"type": "path"},
            "concurrency": {"type": "int", "default": 8},
        },
        supports_check_mode=True,
    )
    params = module.params
    registry = Registry(params["registry_url"])
    try:
        ids = registry.policy_ids()
    except Exception as exc:  # one line, never the URL (it may hold a password)
        module.fail_json(msg=f"cannot read the registry: {type(exc).__name__}")
    finally:
        registry.close()
    base = params["verifier_url"].rstrip("/")
    paths = [f"/policy/{quote(p, safe='')}" for p in ids["v1"]]
    paths += [f"/policy/v2/{quote(p, safe='')}" for p in ids["v2"]]
    context = ssl.create_default_context(cafile=params["ca_cert"])
    limits = httpx.Limits(max_connections=params["concurrency"])
    headers = {"Authorization": f"Bearer {params['access_token']}"}
    started = time.monotonic()
    with httpx.Client(verify=context, limits=limits, headers=headers, timeout=30) as client:

        def status(path: str) -> tuple[str, str]:
            try:
                return path, str(client.get(base + path).status_code)
            except httpx.HTTPError as exc:
                return path, type(exc).__name__

        with ThreadPoolExecutor(max_workers=params["concurrency"]) as pool:
            failed = [(p, s) for p, s in pool.map(status, paths) if s != "200"]
    seconds = round(time.monotonic() - started, 1)
    if failed:
        path, answer = failed[0]
        count = f"{len(failed)} of {len(paths)}"
        module.fail_json(msg=f"{count} stored policies not served; first: GET {path}: {answer}")
    module.exit_json(changed=False, v1=len(ids["v1"]), v2=len(ids["v2"]), seconds=seconds)


if __name__ == "__main__":
    main()
