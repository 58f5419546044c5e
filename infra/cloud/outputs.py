"""``infra/outputs/<env>.yaml``: the cloud values of one environment for the Argo CD path.

The file is the one home of the values the cloud provides (role ARNs, backup destination),
placeholders included until the environment is provisioned; the config loader merges it into
the stack's config, and ``Pulumi.<env>.yaml`` may not set those keys. Fill it from the stack:

    pulumi stack output --stack <env> --json | python -m infra.cloud.outputs <env>

(the kubeconfig, a secret, is never written).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cap_verifier.typed_yaml import ConfigError, read_yaml

ROOT = Path(__file__).resolve().parents[2]
FOLDER = "infra/outputs"
HEADER = (
    "# The cloud values of {env} (infra/cloud/outputs.py): written by\n"
    "# `pulumi stack output --stack {env} --json | python -m infra.cloud.outputs {env}`.\n"
)
CLOUD_KEYS: dict[str, str] = {
    "secrets_role_arn": "secrets.store_role_arn",
    "backup_role_arn": "database.backup.role_arn",
    "backup_destination": "database.backup.destination",
    "repository_url": "image.repository",
    "logs_bucket": "logging.bucket",
    "logs_role_arn": "logging.role_arn",
}
"""Stack output -> the dotted config key it fills (on the Argo CD path, from the file)."""
INFORMATIVE = (
    "cluster_name",
    "oidc_issuer",
    "backup_bucket",
    "playbooks_role_arn",
)
"""Stack outputs kept in the file for operators; no config key reads them."""


PLACEHOLDER_MARK = "placeholders"
"""A file whose first line says so holds placeholders, not a stack's outputs."""


def path_of(env: str, root: Path | None = None) -> Path:
    return (root or ROOT) / FOLDER / f"{env}.yaml"


def placeholders(env: str, root: Path | None = None) -> bool:
    """Whether ``env``'s file still holds placeholders (written by hand, not from a stack)."""
    path = path_of(env, root)
    return path.exists() and PLACEHOLDER_MARK in path.read_text(encoding="utf-8").split("\n")[0]


def read(env: str, root: Path | None = None) -> dict[str, str]:
    """The outputs of ``env`` (empty when the file does not exist)."""
    path = path_of(env, root)
    label = f"{FOLDER}/{env}.yaml"
    if not path.exists():
        return {}
    document = read_yaml(path, label) or {}
    if not isinstance(document, dict):
        raise ConfigError(f"{label}: expected a mapping")
    for key, value in document.items():
        if key not in CLOUD_KEYS and key not in INFORMATIVE:
            raise ConfigError(f"{label}: {key}: unknown key")
        if not isinstance(value, str):
            raise ConfigError(f"{label}: {key}: expected a string")
    return dict(document)


def merged(
    env: str, values: Mapping[str, Any], source: str, outputs: Mapping[str, str]
) -> dict[str, Any]:
    """``values`` (bare config keys) with the outputs set at their config keys; a key the
    stack file sets itself is refused in one line."""
    result = copy.deepcopy(dict(values))
    for name, key in CLOUD_KEYS.items():
        *sections, last = key.split(".")
        parent: Any = result
        for section in sections:
            parent = parent.get(section) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue  # no such section (dev has no database)
        if last in parent:
            raise ConfigError(
                f"{source}: cap-verifier-ops:{key}: comes from {FOLDER}/{env}.yaml"
                f" ({name}, the cluster's stack output), not from the stack file"
            )
        if name in outputs:
            parent[last] = outputs[name]
    return result


def render(env: str, stack_outputs: Mapping[str, Any]) -> str:
    """The file's text from ``pulumi stack output --json`` (secrets and unknown keys left out)."""
    keys = [*CLOUD_KEYS, *INFORMATIVE]
    lines = [
        f"{k}: {json.dumps(stack_outputs[k])}"
        for k in keys
        if isinstance(stack_outputs.get(k), str)
    ]
    return HEADER.format(env=env) + "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.cloud.outputs", description=__doc__)
    parser.add_argument("env")
    args = parser.parse_args(argv)
    stack_outputs = json.load(sys.stdin)
    missing = [k for k in CLOUD_KEYS if k not in stack_outputs]
    if missing:
        print(f"stack outputs: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    path_of(args.env).write_text(render(args.env, stack_outputs), encoding="utf-8")
    print(f"wrote {FOLDER}/{args.env}.yaml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
