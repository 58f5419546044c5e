"""The ``cluster`` config of the cloud resources: bad values fail in one line naming the key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from infra.cloud.instances import INSTANCE_TYPES, MIN_NODE, capacity_problem
from infra.config import KEY_PREFIX, ConfigError, EnvConfig, from_values
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]


def values_of(env: str, changes: dict[str, Any]) -> dict[str, Any]:
    """The bare-key values of ``Pulumi.<env>.yaml``, some dotted keys changed."""
    document = YAML(typ="safe", pure=True).load((ROOT / f"Pulumi.{env}.yaml").read_text())
    values = {k.removeprefix(KEY_PREFIX): v for k, v in document["config"].items()}
    values = copy.deepcopy(values)
    for key, value in changes.items():
        *path, last = key.split(".")
        parent = values
        for name in path:
            parent = parent[name]
        parent[last] = value
    return values


def config_of(env: str, changes: dict[str, Any]) -> EnvConfig:
    return from_values(env, values_of(env, changes), f"Pulumi.{env}.yaml")


@pytest.mark.parametrize(
    ("env", "changes", "expected"),
    [
        (
            "prod",
            {"cluster.eks.nodes.min_size": 2, "cluster.eks.nodes.desired_size": 2},
            "Pulumi.prod.yaml: cap-verifier-ops:cluster.eks.nodes.min_size: expected >= 3 in"
            " prod (ORR 1.1-01), got 2",
        ),
        (
            "prod",
            {"cluster.eks.nodes.instance_types": ["m6i.xlarge"]},
            "Pulumi.prod.yaml: cap-verifier-ops:cluster.eks.nodes.instance_types: m6i.xlarge has"
            " 4 vCPU / 16 GiB, below 8 vCPU / 16 GiB",
        ),
        (
            "staging",
            {"cluster.eks.nodes.instance_types": ["m6i.2xlarge", "r6i.xlarge"]},
            "Pulumi.staging.yaml: cap-verifier-ops:cluster.eks.nodes.instance_types: r6i.xlarge"
            " has 4 vCPU / 32 GiB",
        ),
        (
            "prod",
            {"cluster.eks.nodes.instance_types": ["x9.huge"]},
            "Pulumi.prod.yaml: cap-verifier-ops:cluster.eks.nodes.instance_types: unknown"
            " instance type 'x9.huge'",
        ),
        (
            "prod",
            {"cluster.eks.version": "1.28"},
            "Pulumi.prod.yaml: cap-verifier-ops:cluster.eks.version: 1.28 outside the supported"
            " range 1.29..1.34",
        ),
        (
            "staging",
            {"cluster.eks.version": "1.35"},
            "Pulumi.staging.yaml: cap-verifier-ops:cluster.eks.version: 1.35 outside",
        ),
        (
            "prod",
            {"cluster.eks.api_public_cidrs": []},
            "Pulumi.prod.yaml: cap-verifier-ops:cluster.eks.api_public_cidrs: expected at least"
            " one CIDR",
        ),
        (
            "prod",
            {"cluster.eks.api_public_cidrs": ["0.0.0.0/0"]},
            "Pulumi.prod.yaml: cap-verifier-ops:cluster.eks.api_public_cidrs: a /0 opens",
        ),
        (
            "prod",
            {"cluster.eks.zones": ["eu-central-1a", "eu-central-1b"]},
            "Pulumi.prod.yaml: cap-verifier-ops:cluster.eks.zones: expected three zones",
        ),
        (
            "prod",
            {"cluster.provider": "existing"},
            "Pulumi.prod.yaml: cap-verifier-ops:cluster.eks: only with provider eks",
        ),
        (
            "dev",
            {"cluster.provider": "eks"},
            "Pulumi.dev.yaml: cap-verifier-ops:cluster.eks: missing",
        ),
        (
            "prod",
            {"cluster.eks.nodes.max_size": 2},
            "Pulumi.prod.yaml: cap-verifier-ops:cluster.eks.nodes.desired_size: expected min_size",
        ),
    ],
)
def test_bad_cluster_config_fails_in_one_line_naming_the_key(
    env: str, changes: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        config_of(env, changes)
    message = str(raised.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_the_instance_table_holds_types_on_both_sides_of_the_rule() -> None:
    """Not a list of the allowed types only: the capacity rule refuses some of them."""
    refused = [t for t in INSTANCE_TYPES if capacity_problem(t)]
    allowed = [t for t in INSTANCE_TYPES if not capacity_problem(t)]
    assert refused
    assert allowed
    for name in allowed:
        assert INSTANCE_TYPES[name].vcpu >= MIN_NODE.vcpu
        assert INSTANCE_TYPES[name].memory_gib >= MIN_NODE.memory_gib


def test_zones_default_to_a_b_c_of_the_region() -> None:
    eks = config_of("prod", {}).cluster.eks
    assert eks is not None
    assert eks.availability_zones == ("eu-central-1a", "eu-central-1b", "eu-central-1c")
