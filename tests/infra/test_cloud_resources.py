"""The cloud resources of ``cluster.provider: eks`` under mocks: the prod stack proves its ORR
lines (one test per line, named with its id), staging is sized as its config says, and every
IAM policy is least privilege (and a widened one is caught by the same check).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest
from infra.cloud.cluster import control_plane_log_group
from infra.cloud.component import EksEnvironment
from infra.cloud.instances import INSTANCE_TYPES, MIN_NODE
from infra.cloud.network import GATEWAY_ENDPOINTS, INTERFACE_ENDPOINTS
from infra.cloud.policies import scope_problems, secret_path_arn
from infra.cloud.storage import LOG_EXPIRY_MARGIN_DAYS
from infra.config import PROJECT, EnvConfig, load
from infra.logs import loki
from pulumi_mocks import ACCOUNT, Registration, Run, install, pulumi_test, uninstall

from cap_ops import log_store

Policy = Callable[[list[Registration]], None]
LOG_TYPES = {"api", "audit", "authenticator", "controllerManager", "scheduler"}
EKS_ENVS = pytest.mark.parametrize("env", ["staging", "prod"])


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


@pytest.mark.orr("2.4-05", "2.4-06")  # 2.4-06: the node role, EKS's equivalent of a pull secret
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


PUBLIC_ACCESS_FLAGS = (
    "blockPublicAcls",
    "blockPublicPolicy",
    "ignorePublicAcls",
    "restrictPublicBuckets",
)


def bucket_problems(
    everything: Sequence[Registration], name: str, key: str, days: int, *, versioned: bool
) -> list[str]:
    """The bucket whose resources' names end in ``name``: not force-destroyed, public access
    blocked, versioned or not as ``versioned`` says, SSE-KMS with the rotating key whose name
    ends in ``key``, a TLS-only policy, every object (and old version) expired after ``days``."""
    registrations = [r for r in everything if r.type.startswith("aws:s3") and r.name.endswith(name)]
    bucket = one(registrations, "Bucket")
    bucket_arn = f"arn:aws:s3:::{bucket.name}-0123abcd"
    (kms,) = [r for r in of_type(everything, "Key") if r.name.endswith(key)]
    problems: list[str] = []
    if bucket.inputs["forceDestroy"] is not False:
        problems.append("force_destroy")
    block = one(registrations, "BucketPublicAccessBlock").inputs
    problems += [f"public access: {k} off" for k in PUBLIC_ACCESS_FLAGS if block.get(k) is not True]
    versioning = [
        v.inputs["versioningConfiguration"] for v in of_type(registrations, "BucketVersioning")
    ]
    if versioning != ([{"status": "Enabled"}] if versioned else []):
        problems.append(f"versioning {versioning}, versioned={versioned}")
    sse = one(registrations, "BucketServerSideEncryptionConfiguration").inputs["rules"][0]
    by_default = sse["applyServerSideEncryptionByDefault"]
    if by_default != {
        "sseAlgorithm": "aws:kms",
        "kmsMasterKeyId": f"arn:aws:kms:eu-central-1:{ACCOUNT}:key/{kms.name}",
    }:
        problems.append(f"encryption {by_default}, not SSE-KMS with {kms.name}")
    if kms.inputs["enableKeyRotation"] is not True:
        problems.append(f"{kms.name}: no rotation")
    statements = json.loads(one(registrations, "BucketPolicy").inputs["policy"])["Statement"]
    tls_only = {
        "Effect": "Deny",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    if not any({k: s.get(k) for k in tls_only} == tls_only for s in statements):
        problems.append(f"no TLS-only statement in {statements}")
    rule = one(registrations, "BucketLifecycleConfiguration").inputs["rules"][0]
    expiry = {
        "status": rule["status"],
        "filter": rule["filter"],
        "expiration": rule["expiration"]["days"],
        "noncurrent": (rule.get("noncurrentVersionExpiration") or {}).get("noncurrentDays"),
    }
    wanted = {"status": "Enabled", "filter": {"prefix": ""}, "expiration": days}
    if expiry != wanted | {"noncurrent": days if versioned else None}:
        problems.append(f"lifecycle {expiry}, not expiry after {days} days")
    problems += [
        f"{r.urn}: on another bucket"
        for r in registrations
        if r is not bucket and r.inputs["bucket"] != f"{bucket.name}_id"
    ]
    return problems


@pytest.mark.orr("4.4-06")
@pulumi_test
def test_orr_4_4_06_backups_in_s3_versioned_encrypted_private_tls_only_30_days(
    cloud: Callable[..., tuple[Run, EnvConfig]],
) -> Any:
    run, cfg = cloud("prod")
    assert cfg.database is not None
    days = cfg.database.backup.retention_days
    assert days == 30

    def check(everything: list[Registration]) -> None:
        assert bucket_problems(everything, "-backups", "-data", days, versioned=True) == []

    return run.check(check)


def log_bucket_problems(cfg: EnvConfig, everything: Sequence[Registration]) -> list[str]:
    """Loki's bucket: unversioned on purpose (the compactor's deletes really delete), its own
    rotating key, expiry a margin after the retention of :mod:`cap_ops.log_store`."""
    return bucket_problems(everything, "-logs", "-logs", EXPIRY_DAYS, versioned=False)


EXPIRY_DAYS = log_store.RETENTION_DAYS + LOG_EXPIRY_MARGIN_DAYS
"""Logs are kept their 90 days, then the bucket deletes what the compactor left."""


def _inputs_of(
    kind: str, name: str, edit: Callable[[dict[str, Any]], object]
) -> Callable[[list[Registration]], list[Registration]]:
    """A bad input: ``edit`` applied to the inputs of every ``kind`` whose name ends in ``name``."""

    def apply(registrations: list[Registration]) -> list[Registration]:
        def edited(r: Registration) -> Registration:
            if r.type.rsplit(":", 1)[-1] != kind or not r.name.endswith(name):
                return r
            inputs = json.loads(json.dumps(r.inputs))
            edit(inputs)
            return replace(r, inputs=inputs)

        return [edited(r) for r in registrations]

    return apply


def _versioned(registrations: list[Registration]) -> list[Registration]:
    """The log bucket with the backup bucket's versioning, re-pointed at it."""
    (versioning,) = of_type(backups(registrations), "BucketVersioning")
    bucket = one(logs(registrations), "Bucket")
    added = replace(
        versioning, name=bucket.name, inputs={**versioning.inputs, "bucket": f"{bucket.name}_id"}
    )
    return [*registrations, added]


BAD_LOG_BUCKETS: dict[str, Callable[[list[Registration]], list[Registration]]] = {
    "versioned": _versioned,
    "expiry-30-days": _inputs_of(
        "BucketLifecycleConfiguration",
        "-logs",
        lambda i: i["rules"][0]["expiration"].update(days=30),
    ),
    "public-policy-allowed": _inputs_of(
        "BucketPublicAccessBlock", "-logs", lambda i: i.update(blockPublicPolicy=False)
    ),
    "plain-http-allowed": _inputs_of(
        "BucketPolicy", "-logs", lambda i: i.update(policy=json.dumps({"Statement": []}))
    ),
    "aes256": _inputs_of(
        "BucketServerSideEncryptionConfiguration",
        "-logs",
        lambda i: i["rules"][0].update(
            applyServerSideEncryptionByDefault={"sseAlgorithm": "AES256"}
        ),
    ),
    "key-not-rotated": _inputs_of("Key", "-logs", lambda i: i.update(enableKeyRotation=False)),
}


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


API_AUDIT_LOGS = {"api", "audit"}
"""The control-plane logs that record every request to the Kubernetes API and who made it
(CloudWatch Logs, ``/aws/eks/<cluster>/cluster``): every kubectl change."""


def audit_log_problems(cfg: EnvConfig, registrations: Sequence[Registration]) -> list[str]:
    """The API and audit logs are on, into the cluster's own log group, kept the logs' time."""
    cluster = one(registrations, "Cluster")
    enabled = set(cluster.inputs.get("enabledClusterLogTypes") or [])
    problems = [f"control-plane log {t!r} off" for t in sorted(API_AUDIT_LOGS - enabled)]
    groups = {r.inputs.get("name"): r.inputs for r in of_type(registrations, "LogGroup")}
    group = groups.get(control_plane_log_group(cluster.inputs["name"]))
    if group is None:
        problems.append("no log group of the cluster's: EKS makes one kept forever")
    elif group.get("retentionInDays") != log_store.RETENTION_DAYS:
        problems.append(f"control-plane logs kept {group.get('retentionInDays')} days")
    return problems


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


def logs_role_problems(cfg: EnvConfig, registrations: Sequence[Registration]) -> list[str]:
    """Loki's role: assumed only by Loki's service account, allowed the log bucket, its objects
    and its key, every one of them and nothing else."""
    name = f"cap-verifier-{cfg.env}-logs"
    (role,) = [r for r in of_type(registrations, "Role") if r.name == name]
    (policy,) = [p for p in of_type(registrations, "RolePolicy") if p.name == name]
    problems: list[str] = []
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    subjects = [
        v for t in trust for k, v in t["Condition"]["StringEquals"].items() if k.endswith(":sub")
    ]
    wanted = f"system:serviceaccount:{loki.NAMESPACE}:{loki.SERVICE_ACCOUNT}"
    if len(trust) != 1 or subjects != [wanted]:
        problems.append(f"trusted by {subjects}, not only {wanted}")
    document = json.loads(policy.inputs["policy"])
    allowed = allowed_resources(cfg, registrations)[name]
    problems += scope_problems(document, allowed)
    named = {r for s in document["Statement"] for r in s["Resource"]}
    if named != set(allowed):
        problems.append(f"policy on {sorted(named)}, not {sorted(allowed)}")
    return problems


def _trusted_by(subject: str) -> Callable[[dict[str, Any]], None]:
    def edit(inputs: dict[str, Any]) -> None:
        trust = json.loads(inputs["assumeRolePolicy"])
        condition = trust["Statement"][0]["Condition"]["StringEquals"]
        for key in [k for k in condition if k.endswith(":sub")]:
            condition[key] = subject
        inputs["assumeRolePolicy"] = json.dumps(trust)

    return edit


def _also_on(resource: str) -> Callable[[dict[str, Any]], None]:
    def edit(inputs: dict[str, Any]) -> None:
        document = json.loads(inputs["policy"])
        document["Statement"][0]["Resource"].append(resource)
        inputs["policy"] = json.dumps(document)

    return edit


BAD_LOGS_ROLES: dict[str, Callable[[list[Registration]], list[Registration]]] = {
    "another-service-account": _inputs_of(
        "Role", "-logs", _trusted_by("system:serviceaccount:logging:alloy")
    ),
    "every-service-account": _inputs_of(
        "Role", "-logs", _trusted_by("system:serviceaccount:logging:*")
    ),
    "the-backup-bucket-too": _inputs_of(
        "RolePolicy", "-logs", _also_on("arn:aws:s3:::cap-verifier-prod-backups-0123abcd/*")
    ),
}


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


# --- the logging stack's cloud side and the API audit log, each with the bad inputs it catches ---

Edit = Callable[[list[Registration]], list[Registration]]


@dataclass(frozen=True)
class CloudCheck:
    problems: Callable[[EnvConfig, Sequence[Registration]], list[str]]
    orr: tuple[str, ...]
    bad: Mapping[str, Edit]


def _without_audit(inputs: dict[str, Any]) -> None:
    inputs["enabledClusterLogTypes"].remove("audit")


def _kept_forever(inputs: dict[str, Any]) -> None:
    inputs.pop("retentionInDays", None)


CLOUD_CHECKS: dict[str, CloudCheck] = {
    "log-bucket": CloudCheck(log_bucket_problems, ("3.4-08", "7.1-05"), BAD_LOG_BUCKETS),
    "logs-role": CloudCheck(logs_role_problems, (), BAD_LOGS_ROLES),
    "api-audit-log": CloudCheck(
        audit_log_problems,
        ("7.2-06", "7.1-02"),
        {
            "no-audit": _inputs_of("Cluster", "", _without_audit),
            "kept-forever": _inputs_of("LogGroup", "control-plane", _kept_forever),
        },
    ),
}


@pytest.mark.parametrize(
    ("check", "env"),
    [
        pytest.param(
            name, env, id=f"{name}-{env}", marks=[pytest.mark.orr(*c.orr)] if c.orr else []
        )
        for name, c in CLOUD_CHECKS.items()
        for env in ("staging", "prod")
    ],
)
@pulumi_test
def test_log_bucket_logs_role_and_api_audit_log(
    cloud: Callable[..., tuple[Run, EnvConfig]], check: str, env: str
) -> Any:
    """ORR 3.4-08 and 7.1-05: the log bucket keeps its 90 days under its own rotating key;
    Loki's role reaches that bucket only; ORR 7.2-06: the API server and audit logs are on."""
    run, cfg = cloud(env)

    def policy(registrations: list[Registration]) -> None:
        assert CLOUD_CHECKS[check].problems(cfg, registrations) == []

    return run.check(policy)


@pytest.mark.parametrize(
    ("check", "bad"),
    [pytest.param(n, bad, id=f"{n}-{bad}") for n, c in CLOUD_CHECKS.items() for bad in c.bad],
)
@pulumi_test
def test_a_weaker_log_bucket_role_or_audit_log_is_caught(
    cloud: Callable[..., tuple[Run, EnvConfig]], check: str, bad: str
) -> Any:
    run, cfg = cloud("prod")

    def policy(registrations: list[Registration]) -> None:
        assert CLOUD_CHECKS[check].problems(cfg, CLOUD_CHECKS[check].bad[bad](registrations))

    return run.check(policy)
