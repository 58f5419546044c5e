"""The cloud resources of ``cluster.provider: eks`` under mocks: the prod stack proves its ORR
lines (one test per line, named with its id), staging is sized as its config says, and every
IAM policy is least privilege (and a widened one is caught by the same check).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from infra.cloud.component import EksEnvironment
from infra.cloud.instances import INSTANCE_TYPES, MIN_NODE
from infra.cloud.network import GATEWAY_ENDPOINTS, INTERFACE_ENDPOINTS
from infra.cloud.policies import scope_problems, secret_path_arn
from infra.config import PROJECT, EnvConfig, load
from pulumi_mocks import ACCOUNT, Registration, Run, install, pulumi_test, uninstall

Policy = Callable[[list[Registration]], None]
LOG_TYPES = {"api", "audit", "authenticator", "controllerManager", "scheduler"}


@pytest.fixture
def cloud() -> Iterator[Callable[[str], tuple[Run, EnvConfig]]]:
    """``cloud(env)``: fresh mocks, and the environment's cloud resources registered."""

    def start(env: str) -> tuple[Run, EnvConfig]:
        run = install(env, PROJECT, {})
        cfg = load(env)
        EksEnvironment(f"cap-verifier-{env}", cfg)
        return run, cfg

    yield start
    uninstall()


def of_type(registrations: Sequence[Registration], kind: str) -> list[Registration]:
    return [r for r in registrations if r.type.rsplit(":", 1)[-1] == kind]


def one(registrations: Sequence[Registration], kind: str) -> Registration:
    found = of_type(registrations, kind)
    assert len(found) == 1, [r.urn for r in found]
    return found[0]


def by_id(registrations: Sequence[Registration], kind: str) -> dict[str, Registration]:
    """The resources of ``kind`` by the id the mocks gave them (``<name>_id``)."""
    return {f"{r.name}_id": r for r in of_type(registrations, kind)}


def backups(registrations: Sequence[Registration]) -> list[Registration]:
    """The backup bucket's resources (the log bucket has its own, ``-logs``)."""
    return [r for r in registrations if r.name.endswith("-backups")]


def logs(registrations: Sequence[Registration]) -> list[Registration]:
    """The log bucket's resources."""
    return [r for r in registrations if r.name.endswith("-logs") and r.type.startswith("aws:s3")]


def eks_of(cfg: EnvConfig) -> Any:
    assert cfg.cluster.eks is not None
    return cfg.cluster.eks


# --- the prod stack, one test per ORR line ------------------------------------------------------


@pytest.mark.orr("1.1-01")
@pulumi_test
def test_orr_1_1_01_at_least_three_worker_nodes(cloud: Callable[..., tuple[Run, EnvConfig]]) -> Any:
    run, cfg = cloud("prod")

    def check(registrations: list[Registration]) -> None:
        scaling = one(registrations, "NodeGroup").inputs["scalingConfig"]
        assert scaling["minSize"] >= 3, scaling
        assert scaling["minSize"] <= scaling["desiredSize"] <= scaling["maxSize"], scaling
        assert scaling["maxSize"] == eks_of(cfg).nodes.max_size

    return run.check(check)


@pytest.mark.orr("1.1-02")
@pulumi_test
def test_orr_1_1_02_nodes_of_8_vcpu_and_16_gib(cloud: Callable[..., tuple[Run, EnvConfig]]) -> Any:
    run, _ = cloud("prod")

    def check(registrations: list[Registration]) -> None:
        types = one(registrations, "NodeGroup").inputs["instanceTypes"]
        assert types
        for name in types:
            capacity = INSTANCE_TYPES[name]
            assert capacity.vcpu >= MIN_NODE.vcpu, name
            assert capacity.memory_gib >= MIN_NODE.memory_gib, name

    return run.check(check)


@pulumi_test
def test_nodes_spread_over_three_zones(
    cloud: Callable[..., tuple[Run, EnvConfig]],
) -> Any:
    """The node group's subnets are private subnets of three distinct zones, so that the
    pods' anti-affinity and topology spread (ORR 1.1-03, the model's policy) have zones to use."""
    run, cfg = cloud("prod")

    def check(registrations: list[Registration]) -> None:
        subnets = by_id(registrations, "Subnet")
        group = one(registrations, "NodeGroup")
        zones = {subnets[s].inputs["availabilityZone"] for s in group.inputs["subnetIds"]}
        assert zones == set(eks_of(cfg).availability_zones), zones
        assert all("private" in subnets[s].name for s in group.inputs["subnetIds"])
        cluster = one(registrations, "Cluster")
        assert cluster.inputs["vpcConfig"]["subnetIds"] == group.inputs["subnetIds"]

    return run.check(check)


@pytest.mark.orr("1.1-04")
@pulumi_test
def test_orr_1_1_04_kubernetes_1_24_or_newer_within_the_supported_range(
    cloud: Callable[..., tuple[Run, EnvConfig]],
) -> Any:
    run, cfg = cloud("prod")

    def check(registrations: list[Registration]) -> None:
        version = one(registrations, "Cluster").inputs["version"]
        assert int(version.split(".")[1]) >= 24, version
        assert cfg.cluster.supports(version), version

    return run.check(check)


@pytest.mark.orr("2.3-04", "7.1-05")
@pulumi_test
def test_orr_2_3_04_and_7_1_05_secrets_encrypted_at_rest_with_a_rotating_kms_key(
    cloud: Callable[..., tuple[Run, EnvConfig]],
) -> Any:
    run, _ = cloud("prod")

    def check(registrations: list[Registration]) -> None:
        encryption = one(registrations, "Cluster").inputs["encryptionConfig"]
        assert encryption["resources"] == ["secrets"]
        key = next(r for r in of_type(registrations, "Key") if r.name.endswith("-secrets"))
        assert encryption["provider"]["keyArn"].endswith(f"key/{key.name}")
        assert key.inputs["enableKeyRotation"] is True

    return run.check(check)


@pytest.mark.orr("2.4-05")
@pulumi_test
def test_orr_2_4_05_images_in_a_private_registry_pulled_with_the_node_role(
    cloud: Callable[..., tuple[Run, EnvConfig]],
) -> Any:
    run, _ = cloud("prod")

    def check(registrations: list[Registration]) -> None:
        one(registrations, "Repository")
        assert not of_type(registrations, "RepositoryPolicy")  # nobody outside the account
        attached = {
            r.inputs["policyArn"].rsplit("/", 1)[-1]
            for r in of_type(registrations, "RolePolicyAttachment")
            if "-nodes-" in r.name
        }
        assert "AmazonEC2ContainerRegistryReadOnly" in attached, attached
        endpoints = {
            r.inputs["serviceName"].rsplit(".", 2)[-2:][-1]
            for r in registrations
            if r.type.endswith("VpcEndpoint")
        }
        assert "dkr" in endpoints, endpoints

    return run.check(check)


@pytest.mark.orr("2.4-07")
@pulumi_test
def test_orr_2_4_07_images_by_digest_in_an_immutable_scanned_repository(
    cloud: Callable[..., tuple[Run, EnvConfig]], artefacts: Any
) -> Any:
    """Every container of prod runs its image by digest (never a tag, never latest), from a
    repository whose tags cannot be moved, scanned on push, encrypted and pruned."""
    from infra.model import model
    from infra.policies.manifests import pod_spec

    run, cfg = cloud("prod")
    spec = pod_spec(model(cfg, artefacts))
    images = [c["image"] for c in spec["containers"] + spec.get("initContainers", [])]
    assert images
    assert all(re.search(r"@sha256:[0-9a-f]{64}$", image) for image in images), images

    def check(registrations: list[Registration]) -> None:
        repository = one(registrations, "Repository").inputs
        assert repository["imageTagMutability"] == "IMMUTABLE"
        assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
        assert repository["encryptionConfigurations"][0]["encryptionType"] == "KMS"
        rule = json.loads(one(registrations, "LifecyclePolicy").inputs["policy"])["rules"][0]
        assert rule["selection"]["countNumber"] == eks_of(cfg).registry_keep_images
        assert rule["action"] == {"type": "expire"}

    return run.check(check)


@pytest.mark.orr("4.4-06")
@pulumi_test
def test_orr_4_4_06_backups_in_s3_versioned_encrypted_private_tls_only_30_days(
    cloud: Callable[..., tuple[Run, EnvConfig]],
) -> Any:
    run, cfg = cloud("prod")
    assert cfg.database is not None
    days = cfg.database.backup.retention_days

    def check(everything: list[Registration]) -> None:
        registrations = backups(everything)
        bucket = one(registrations, "Bucket")
        bucket_id = f"{bucket.name}_id"
        assert bucket.inputs["forceDestroy"] is False
        block = one(registrations, "BucketPublicAccessBlock").inputs
        assert all(
            block[k] is True
            for k in (
                "blockPublicAcls",
                "blockPublicPolicy",
                "ignorePublicAcls",
                "restrictPublicBuckets",
            )
        )
        versioning = one(registrations, "BucketVersioning").inputs
        assert versioning["versioningConfiguration"] == {"status": "Enabled"}
        sse = one(registrations, "BucketServerSideEncryptionConfiguration").inputs["rules"][0]
        assert sse["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
        assert sse["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"].endswith("-data")
        policy = json.loads(one(registrations, "BucketPolicy").inputs["policy"])
        deny = policy["Statement"][0]
        assert deny["Effect"] == "Deny"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        rule = one(registrations, "BucketLifecycleConfiguration").inputs["rules"][0]
        assert rule["status"] == "Enabled"
        assert rule["filter"] == {"prefix": ""}
        assert rule["expiration"]["days"] == days == 30
        assert rule["noncurrentVersionExpiration"]["noncurrentDays"] == days
        for kind in ("BucketPublicAccessBlock", "BucketVersioning", "BucketPolicy"):
            assert one(registrations, kind).inputs["bucket"] == bucket_id, kind

    return run.check(check)


@pytest.mark.orr("1.1-07")
def test_orr_1_1_07_limit_ranges_in_the_prod_model(
    configs: dict[str, EnvConfig], artefacts: Any
) -> None:
    from infra.model import model

    ranges = [m for m in model(configs["prod"], artefacts) if m["kind"] == "LimitRange"]
    assert ranges
    for limit_range in ranges:
        container = next(x for x in limit_range["spec"]["limits"] if x["type"] == "Container")
        assert {"default", "defaultRequest", "max"} <= container.keys(), container


# --- the control plane and nodes, every eks stack ------------------------------------------------

EKS_ENVS = pytest.mark.parametrize("env", ["staging", "prod"])


@EKS_ENVS
@pulumi_test
def test_control_plane_endpoint_logs_and_node_template(
    cloud: Callable[..., tuple[Run, EnvConfig]], env: str
) -> Any:
    run, cfg = cloud(env)
    eks = eks_of(cfg)

    def check(registrations: list[Registration]) -> None:
        cluster = one(registrations, "Cluster").inputs
        vpc = cluster["vpcConfig"]
        assert vpc["publicAccessCidrs"] == list(eks.api_public_cidrs)
        assert vpc["endpointPrivateAccess"] is True
        assert set(cluster["enabledClusterLogTypes"]) == LOG_TYPES
        template = one(registrations, "LaunchTemplate").inputs
        assert template["metadataOptions"]["httpTokens"] == "required"
        ebs = template["blockDeviceMappings"][0]["ebs"]
        assert ebs["encrypted"] == "true"
        assert ebs["volumeSize"] == eks.nodes.root_volume_gib
        group = one(registrations, "NodeGroup").inputs
        assert group["launchTemplate"]["id"] == f"{one(registrations, 'LaunchTemplate').name}_id"
        scaling = group["scalingConfig"]
        wanted = (eks.nodes.min_size, eks.nodes.desired_size, eks.nodes.max_size)
        assert (scaling["minSize"], scaling["desiredSize"], scaling["maxSize"]) == wanted

    return run.check(check)


@EKS_ENVS
@pulumi_test
def test_network_three_zones_nat_as_configured_and_endpoints(
    cloud: Callable[..., tuple[Run, EnvConfig]], env: str
) -> Any:
    run, cfg = cloud(env)
    eks = eks_of(cfg)

    def check(registrations: list[Registration]) -> None:
        subnets = of_type(registrations, "Subnet")
        assert len({s.inputs["availabilityZone"] for s in subnets}) == 3
        assert len(subnets) == 6
        nats = of_type(registrations, "NatGateway")
        assert len(nats) == (3 if eks.nat_per_zone else 1), [n.urn for n in nats]
        services = {
            r.inputs["serviceName"].removeprefix(f"com.amazonaws.{eks.region}.")
            for r in of_type(registrations, "VpcEndpoint")
        }
        assert services == {*GATEWAY_ENDPOINTS, *INTERFACE_ENDPOINTS}

    return run.check(check)


def test_the_stacks_are_sized_as_their_config_says(configs: dict[str, EnvConfig]) -> None:
    """Prod: a NAT gateway per zone and at least 3 nodes; staging one NAT; dev no cloud."""
    prod, staging, dev = (configs[e] for e in ("prod", "staging", "dev"))
    assert eks_of(prod).nat_per_zone
    assert eks_of(prod).nodes.min_size >= 3
    assert not eks_of(staging).nat_per_zone
    assert dev.cluster.provider == "existing"
    assert dev.cluster.eks is None


# --- IAM: least privilege ------------------------------------------------------------------------


def allowed_resources(
    cfg: EnvConfig, registrations: Sequence[Registration]
) -> dict[str, list[str]]:
    """Per role name, the exact resources its policy may name."""
    assert cfg.database is not None
    bucket_arn = f"arn:aws:s3:::{one(backups(registrations), 'Bucket').name}-0123abcd"
    logs_arn = f"arn:aws:s3:::{one(logs(registrations), 'Bucket').name}-0123abcd"

    def key_arn(suffix: str) -> str:
        key = next(r for r in of_type(registrations, "Key") if r.name.endswith(suffix))
        return f"arn:aws:kms:eu-central-1:{ACCOUNT}:key/{key.name}"

    on_prefix = [f"{bucket_arn}/{cfg.database.backup.prefix}/*", bucket_arn, key_arn("-data")]
    name = f"cap-verifier-{cfg.env}"
    secrets = secret_path_arn(cfg.secrets.store_region, ACCOUNT, cfg.secrets.key_prefix)
    return {
        f"{name}-secrets": [secrets],
        f"{name}-backup": on_prefix,
        f"{name}-playbooks": on_prefix,
        f"{name}-logs": [f"{logs_arn}/*", logs_arn, key_arn("-logs")],
    }


def policy_problems(cfg: EnvConfig, registrations: Sequence[Registration]) -> list[str]:
    """Every inline policy parsed and checked against its role's scope."""
    scopes = allowed_resources(cfg, registrations)
    policies = of_type(registrations, "RolePolicy")
    problems = [f"{p.urn}: no scope known" for p in policies if p.name not in scopes]
    problems += [f"role {n}: no policy" for n in scopes.keys() - {p.name for p in policies}]
    for policy in policies:
        document = json.loads(policy.inputs["policy"])
        problems += [
            f"{policy.urn}: {p}" for p in scope_problems(document, scopes.get(policy.name, []))
        ]
    return problems


@EKS_ENVS
@pulumi_test
def test_every_identity_policy_is_least_privilege(
    cloud: Callable[..., tuple[Run, EnvConfig]], env: str
) -> Any:
    run, cfg = cloud(env)

    def check(registrations: list[Registration]) -> None:
        assert policy_problems(cfg, registrations) == []
        for role in of_type(registrations, "Role"):
            trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
            assert len(trust) == 1, role.urn
            condition = trust[0].get("Condition", {}).get("StringEquals", {})
            if "Federated" in trust[0]["Principal"]:
                subjects = [v for k, v in condition.items() if k.endswith(":sub")]
                assert len(subjects) == 1, role.urn
                assert subjects[0].startswith("system:serviceaccount:"), role.urn

    return run.check(check)


WIDENINGS: dict[str, Callable[[dict[str, Any]], None]] = {
    "wildcard action": lambda d: d["Statement"][0].update(Action=["s3:*"]),
    "whole bucket": lambda d: d["Statement"][0].update(Resource=["arn:aws:s3:::*"]),
    "another prefix": lambda d: d["Statement"][0]["Resource"].append("arn:aws:s3:::b/other/*"),
    "not action": lambda d: d["Statement"][0].update(NotAction=["iam:*"]),
}


@pytest.mark.parametrize("widening", sorted(WIDENINGS))
@pulumi_test
def test_a_widened_policy_fails_the_same_check(
    cloud: Callable[..., tuple[Run, EnvConfig]], widening: str
) -> Any:
    run, cfg = cloud("prod")

    def check(registrations: list[Registration]) -> None:
        backup = next(p for p in of_type(registrations, "RolePolicy") if p.name.endswith("-backup"))
        document = json.loads(backup.inputs["policy"])
        WIDENINGS[widening](document)
        widened = [
            Registration(**{**r.__dict__, "inputs": {**r.inputs, "policy": json.dumps(document)}})
            if r is backup
            else r
            for r in registrations
        ]
        problems = policy_problems(cfg, widened)
        assert problems
        assert all(backup.urn in p for p in problems), problems

    return run.check(check)
