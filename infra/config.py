"""Typed, frozen environment config read from ``Pulumi.<env>.yaml``.

Every environment difference lives under ``config:`` keys prefixed ``cap-verifier-ops:``, one key
per concern (``image``, ``service``, ``scaling``, ``registry``, ``oauth2``, ``edge``, ``cluster``,
``delivery``, ``secrets``, ``database``). The sections are msgspec structs: unknown keys are
refused, bounds and patterns sit on the fields, rules within a section in its ``__post_init__``
and rules across sections in :class:`EnvConfig`'s. Any error is one :class:`ConfigError` line,
``Pulumi.<env>.yaml: cap-verifier-ops:<section>.<key>: <what is wrong>``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from cap_verifier.settings import ServerSettings
from cap_verifier.typed_yaml import ConfigError, describe, read_yaml
from infra.cloud import outputs as cloud_outputs
from infra.cloud.instances import capacity_problem

__all__ = ["ENVIRONMENTS", "ConfigError", "EnvConfig", "load", "load_all"]

PROJECT = "cap-verifier-ops"
KEY_PREFIX = f"{PROJECT}:"
ENVIRONMENTS: tuple[str, ...] = ("dev", "staging", "prod")
ROLLOUT_SURGE_PODS = 1
"""The extra pod a Deployment's rolling update starts before it stops an old one."""
DIGEST_ENVIRONMENTS = frozenset({"staging", "prod"})
REPO_ROOT = Path(__file__).resolve().parent.parent

Environment = Literal["dev", "staging", "prod"]
RegistryKind = Literal["sqlite", "postgresql"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
AcmeEnvironment = Literal["staging", "production"]
RateLimitUnit = Literal["Second", "Minute", "Hour"]
ClusterProvider = Literal["existing", "eks"]
LokiMode = Literal["single-binary", "simple-scalable"]
PROD_MIN_NODES = 3
"""ORR 1.1-01: at least 3 worker nodes in production."""

Text = Annotated[str, Meta(min_length=1)]
Quantity = Annotated[str, Meta(pattern=r"^[0-9]+(m|Ki|Mi|Gi|Ti)?$")]
Digest = Annotated[str, Meta(pattern=r"^sha256:[0-9a-f]{64}$")]
Tag = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")]
LabelValue = Annotated[str, Meta(pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")]
K8sVersion = Annotated[str, Meta(pattern=r"^1\.[0-9]{1,2}$")]
DnsLabel = Annotated[str, Meta(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
Email = Annotated[str, Meta(pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,63}$")]
GitRef = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")]
Context = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,252}$")]
Region = Annotated[str, Meta(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")]
Zone = Annotated[str, Meta(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$")]
RoleArn = Annotated[
    str, Meta(pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")
]
SecretPath = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,200}[A-Za-z0-9]$")]
BucketName = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
S3Url = Annotated[str, Meta(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?$")]
Host = Annotated[str, Meta(pattern=r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")]
HttpsUrl = Annotated[str, Meta(pattern=r"^https://\S+$")]
Cidr = Annotated[str, Meta(pattern=r"^[0-9a-fA-F.:]+/[0-9]{1,3}$")]
Port = Annotated[int, Meta(ge=1, le=65535)]
Labels = Annotated[dict[str, Text], Meta(min_length=1)]

_PASSWORD_IN_URL = re.compile(r"^[^/]*//[^/@]*:[^/@]*@")


def _cidrs(**values: str) -> None:
    """Each value a network address with its prefix (``10.0.0.0/8``, not ``10.0.0.1/8``)."""
    for key, value in values.items():
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError:
            raise ValueError(f"{key}: expected a CIDR, got {value!r}") from None


class _Section(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class Image(_Section, frozen=True):
    """The service's image: by digest (staging, prod) or by tag (dev)."""

    repository: Text
    """The image repository, without tag or digest: `repository_url` of
    `infra/outputs/<env>.yaml` (the ECR repository on eks), never the stack file."""
    version: LabelValue
    """The application version, the ``app.kubernetes.io/version`` label."""
    tag: Tag | None = None
    """The image tag (dev only; staging and prod pin a digest)."""
    digest: Digest | None = None
    """The image digest; required in staging and prod."""

    def __post_init__(self) -> None:
        if "@" in self.repository or self.repository.rsplit("/", 1)[-1].count(":"):
            raise ValueError("repository: expected a repository without tag or digest")
        if self.tag is None and self.digest is None:
            raise ValueError("tag: missing: set tag or digest")

    @property
    def reference(self) -> str:
        """Image reference: by digest when one is set, else by tag."""
        if self.digest is not None:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag}"


class Resources(_Section, frozen=True):
    cpu_request: Quantity
    """CPU request (Kubernetes quantity)."""
    memory_request: Quantity
    """Memory request (Kubernetes quantity)."""
    cpu_limit: Quantity
    """CPU limit (Kubernetes quantity)."""
    memory_limit: Quantity
    """Memory limit (Kubernetes quantity)."""


class Service(_Section, frozen=True):
    """The verifier process in its pods."""

    log_level: LogLevel
    """The service's log level (INFO in prod; DEBUG is refused there)."""
    graceful_timeout_seconds: Annotated[int, Meta(ge=1, le=600)]
    """How long a stopping pod finishes its requests."""
    prestop_sleep_seconds: Annotated[int, Meta(ge=0, le=120)]
    """How long a stopping pod keeps serving while the endpoints drop it."""
    resources: Resources
    """The container's requests and limits."""
    head_timeout_seconds: Annotated[float, Meta(ge=1, le=60)] | None = None
    """``server.head_timeout`` of the pods (the service's default when unset)."""
    body_timeout_seconds: Annotated[float, Meta(gt=0, le=600)] | None = None
    """``server.body_timeout`` of the pods (the service's default when unset)."""

    @property
    def head_timeout(self) -> float:
        return self.head_timeout_seconds or ServerSettings().head_timeout

    @property
    def body_timeout(self) -> float:
        return self.body_timeout_seconds or ServerSettings().body_timeout


class Hpa(_Section, frozen=True):
    enabled: bool
    """Whether the HPA scales the workload."""
    min_replicas: Annotated[int, Meta(ge=1)]
    """The HPA's lower bound."""
    max_replicas: Annotated[int, Meta(ge=1)]
    """The HPA's upper bound (a canary runs up to twice as many pods)."""
    scale_down_stabilization_seconds: Annotated[int, Meta(ge=0, le=3600)]
    """How long the HPA waits before it scales down."""

    def __post_init__(self) -> None:
        if self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas: expected an integer >= min_replicas")


class Scaling(_Section, frozen=True):
    replicas: Annotated[int, Meta(ge=1)]
    """The replicas without an HPA (exactly 1 with a SQLite registry)."""
    hpa: Hpa
    """The HorizontalPodAutoscaler."""
    pdb_min_available: Annotated[int, Meta(ge=0)]
    """The PodDisruptionBudget's minAvailable (below the minimum replicas; 0: none)."""
    quota_pods: Annotated[int, Meta(ge=1)]
    """The namespace's pod quota: the capacity agreed for the environment. Scaling (``make``,
    ``playbooks/scale.yml``) stays within it; raising it is a capacity decision of its own."""

    @property
    def min_replicas(self) -> int:
        return self.hpa.min_replicas if self.hpa.enabled else self.replicas

    def __post_init__(self) -> None:
        if self.pdb_min_available and self.pdb_min_available >= self.min_replicas:
            raise ValueError("pdb_min_available: expected an integer < the minimum replica count")


class Registry(_Section, frozen=True):
    kind: RegistryKind
    """`sqlite` (one pod, its volume) or `postgresql` (the CloudNativePG cluster of `database`)."""
    url: Text
    """The database URL, never with a password (that comes from the secret store)."""
    storage_size: Quantity | None = None
    """The SQLite volume; only with ``kind: sqlite``."""

    def __post_init__(self) -> None:
        if not self.url.startswith("sqlite:///" if self.kind == "sqlite" else "postgresql"):
            raise ValueError(f"url: does not match kind {self.kind}")
        if self.kind == "postgresql" and _PASSWORD_IN_URL.match(self.url):
            raise ValueError("url: must not contain a password")
        if (self.storage_size is None) == (self.kind == "sqlite"):
            raise ValueError(
                "storage_size: missing: a sqlite registry needs its volume"
                if self.kind == "sqlite"
                else "storage_size: only for a sqlite registry"
            )


class OAuth2(_Section, frozen=True):
    issuer: HttpsUrl
    """The tokens' `iss`."""
    audience: Text
    """The tokens' `aud`."""
    jwks_url: HttpsUrl
    """Where the service fetches the signing keys."""
    jwks_cidr: Cidr
    """Where the identity provider's JWKS endpoint is, for the egress NetworkPolicy."""
    jwks_port: Port
    """The JWKS endpoint's port, for the egress NetworkPolicy."""

    def __post_init__(self) -> None:
        _cidrs(jwks_cidr=self.jwks_cidr)


class RateLimit(_Section, frozen=True):
    requests: Annotated[int, Meta(ge=1)]
    """Requests allowed per unit."""
    unit: RateLimitUnit
    """The rate limit's time unit."""


class Edge(_Section, frozen=True):
    """What clients meet: the host, the gateway, certificates, mTLS and request limits."""

    host: Host
    """The public host name (DNS points it at the gateway)."""
    gateway_class_name: DnsLabel
    """The GatewayClass of Envoy Gateway."""
    gateway_cidr: Cidr
    """Where the gateway's pods are, for the service's ingress NetworkPolicy."""
    acme_environment: AcmeEnvironment
    """Let's Encrypt `production` (prod) or `staging` (elsewhere)."""
    acme_email: Email
    """The ACME account's contact."""
    require_mtls: bool
    """Whether clients must present a certificate of the client CA."""
    allowed_client_sans: tuple[Text, ...]
    """The client certificate SANs accepted with mTLS."""
    rate_limit: RateLimit
    """The gateway's rate limit per client."""
    request_timeout_seconds: Annotated[int, Meta(ge=1, le=600)]
    """The gateway's timeout for a whole request."""
    connection_limit: Annotated[int, Meta(ge=1)]
    """Client connections the gateway holds open at most (Envoy's listener limit)."""
    mtls_ca_secret: DnsLabel | None = None
    """The Secret holding the client CA bundle (required with mTLS)."""

    def __post_init__(self) -> None:
        _cidrs(gateway_cidr=self.gateway_cidr)
        if self.require_mtls and not self.allowed_client_sans:
            raise ValueError("allowed_client_sans: expected at least one SAN with require_mtls")
        if self.require_mtls and self.mtls_ca_secret is None:
            raise ValueError("mtls_ca_secret: missing: require_mtls needs the client CA bundle")


class Nodes(_Section, frozen=True):
    """The managed node group over the private subnets of every zone."""

    instance_types: tuple[Text, ...]
    """The node group's instance types (each at least 8 vCPU and 16 GiB)."""
    min_size: Annotated[int, Meta(ge=1)]
    """The node group's minimum (at least 3 in prod)."""
    desired_size: Annotated[int, Meta(ge=1)]
    """The node group's initial size."""
    max_size: Annotated[int, Meta(ge=1)]
    """The node group's maximum."""
    root_volume_gib: Annotated[int, Meta(ge=20, le=1000)] = 50
    """Each node's encrypted root volume, in GiB."""

    def __post_init__(self) -> None:
        if not self.instance_types:
            raise ValueError("instance_types: expected at least one instance type")
        for instance_type in self.instance_types:
            problem = capacity_problem(instance_type)
            if problem:
                raise ValueError(f"instance_types: {problem}")
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError("desired_size: expected min_size <= desired_size <= max_size")


class Eks(_Section, frozen=True):
    """An EKS cluster and its cloud resources (``cluster.provider: eks``)."""

    region: Region
    """The AWS region."""
    version: K8sVersion
    """The EKS control plane's Kubernetes version (within the supported range)."""
    api_public_cidrs: tuple[Cidr, ...]
    """Who reaches the API endpoint from the internet; never empty, never everyone."""
    nodes: Nodes
    vpc_cidr: Cidr = "10.0.0.0/16"
    """The VPC's address range (private and public subnets are carved from it)."""
    zones: tuple[Zone, ...] = ()
    """Three availability zones of ``region`` (default: its zones a, b and c)."""
    nat_per_zone: bool = True
    """One NAT gateway per zone (a zone's outage leaves the others their egress), else one."""
    registry_keep_images: Annotated[int, Meta(ge=1, le=1000)] = 30
    """The ECR lifecycle keeps this many most recent images."""
    protect: bool = True
    """Pulumi's ``protect`` on the KMS key, cluster, backup bucket and image registry."""

    def __post_init__(self) -> None:
        if not self.api_public_cidrs:
            raise ValueError("api_public_cidrs: expected at least one CIDR")
        _cidrs(vpc_cidr=self.vpc_cidr)
        for cidr in self.api_public_cidrs:
            _cidrs(api_public_cidrs=cidr)
        if any(ipaddress.ip_network(c).prefixlen == 0 for c in self.api_public_cidrs):
            raise ValueError("api_public_cidrs: a /0 opens the API endpoint to everyone")
        if len(self.availability_zones) != 3 or any(
            not z.startswith(self.region) for z in self.availability_zones
        ):
            raise ValueError(f"zones: expected three zones of {self.region}")

    @property
    def availability_zones(self) -> tuple[str, ...]:
        return self.zones or tuple(f"{self.region}{letter}" for letter in "abc")


class Cluster(_Section, frozen=True):
    k8s_version_oldest: K8sVersion
    """The oldest Kubernetes minor version supported (objects are validated against it)."""
    k8s_version_newest: K8sVersion
    """The newest Kubernetes minor version supported (objects are validated against it)."""
    dns_namespace: DnsLabel
    """The namespace of the cluster DNS, for the egress NetworkPolicies."""
    dns_pod_labels: Labels
    """The cluster DNS pods' labels, for the egress NetworkPolicies."""
    provider: ClusterProvider = "existing"
    """``existing``: a cluster reached by ``kube_context``; ``eks``: provisioned by the program."""
    kube_context: Context | None = None
    """The kubeconfig context of the Pulumi provider with ``existing`` (the current context when
    unset), and of the operators and playbooks (``aws eks update-kubeconfig --alias``)."""
    eks: Eks | None = None

    def __post_init__(self) -> None:
        if _minor(self.k8s_version_oldest) > _minor(self.k8s_version_newest):
            raise ValueError("k8s_version_newest: expected a version >= k8s_version_oldest")
        if (self.eks is None) == (self.provider == "eks"):
            raise ValueError(
                "eks: missing: provider eks needs its section"
                if self.eks is None
                else "eks: only with provider eks"
            )
        if self.eks is not None and not self.supports(self.eks.version):
            oldest, newest = self.k8s_versions
            raise ValueError(
                f"eks.version: {self.eks.version} outside the supported range {oldest}..{newest}"
            )

    @property
    def k8s_versions(self) -> tuple[str, str]:
        return (self.k8s_version_oldest, self.k8s_version_newest)

    def supports(self, version: str) -> bool:
        """``1.<minor>`` within ``k8s_version_oldest``..``k8s_version_newest``."""
        oldest, newest = self.k8s_versions
        return _minor(oldest) <= _minor(version) <= _minor(newest)


def _minor(version: str) -> int:
    return int(version.split(".")[1])


class Canary(_Section, frozen=True):
    enabled: bool
    """Whether a release goes out as a canary (5, 25, 50, 100 % of the traffic)."""
    step_pause_minutes: Annotated[int, Meta(ge=1, le=120)]
    """How long each canary step is analysed."""


class Delivery(_Section, frozen=True):
    gitops: bool
    """True: Pulumi installs Argo CD and the root Application only; Argo CD syncs the rest."""
    repo_url: HttpsUrl
    """The Git repository Argo CD syncs `deploy/<env>/` from."""
    revision: GitRef
    """The branch or tag Argo CD follows."""
    canary: Canary
    """The prod canary (Argo Rollouts)."""


class Secrets(_Section, frozen=True):
    """AWS Secrets Manager behind the External Secrets store."""

    store_region: Region
    """The AWS region of Secrets Manager."""
    store_role_arn: RoleArn
    """The IAM role External Secrets assumes to read `key_prefix`."""
    key_prefix: SecretPath
    """The secrets' path prefix in Secrets Manager (`<prefix>/oauth2`, `<prefix>/alerting`, ...)."""


class Backup(_Section, frozen=True):
    destination: S3Url
    """The backups' S3 URL (filled from the cluster outputs on eks)."""
    role_arn: RoleArn
    """The IAM role the backups write with (filled from the cluster outputs on eks)."""
    retention_days: Annotated[int, Meta(ge=1, le=3650)]
    """Also the backup bucket's expiry of current and noncurrent versions (``eks``)."""
    prefix: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")] = "registry"
    """The bucket prefix the backups write under (``eks``: ``s3://<bucket>/<prefix>``)."""


class Database(_Section, frozen=True):
    """The CloudNativePG cluster behind a PostgreSQL registry, in its own namespace."""

    namespace: DnsLabel
    """The database cluster's namespace."""
    port: Port
    """The PostgreSQL port."""
    pod_labels: Labels
    """The database pods' labels, for the NetworkPolicies."""
    instances: Annotated[int, Meta(ge=1, le=9)]
    """CloudNativePG instances (one primary, the rest replicas)."""
    storage_size: Quantity
    """Each instance's volume."""
    backup: Backup
    """The daily base backups and WAL archive in object storage."""
    object_storage_cidr: Cidr
    """Where object storage is, for the database's egress NetworkPolicy."""
    kube_api_cidr: Cidr
    """The Kubernetes API's address, for the database's egress NetworkPolicy."""

    def __post_init__(self) -> None:
        _cidrs(object_storage_cidr=self.object_storage_cidr, kube_api_cidr=self.kube_api_cidr)


class Logging(_Section, frozen=True):
    """The central log store, Grafana Loki (``infra/logs``)."""

    mode: LokiMode = "single-binary"
    """``single-binary``: one Loki on its filesystem volume; ``simple-scalable``: read, write and
    backend targets on the S3 bucket of ``cluster.eks`` (required in prod)."""
    bucket: BucketName | None = None
    """Loki's S3 bucket with ``simple-scalable``; from ``infra/outputs/<env>.yaml``."""
    role_arn: RoleArn | None = None
    """The IAM role of Loki's service account with ``simple-scalable``; from
    ``infra/outputs/<env>.yaml``."""

    def __post_init__(self) -> None:
        scalable = self.mode == "simple-scalable"
        for key in ("bucket", "role_arn"):
            if (getattr(self, key) is not None) != scalable:
                raise ValueError(
                    f"{key}: missing: simple-scalable needs its object storage"
                    if scalable
                    else f"{key}: only with simple-scalable (single-binary keeps a filesystem)"
                )


class EnvConfig(_Section, frozen=True):
    env: Environment
    namespace: DnsLabel
    """The service's namespace (Pod Security restricted, quota, network policies)."""
    image: Image
    service: Service
    scaling: Scaling
    """Replicas, autoscaling, disruption budget and the namespace's pod quota."""
    registry: Registry
    """The policy registry the service stores compiled policies in."""
    oauth2: OAuth2
    """The identity provider whose RS256 tokens the service accepts."""
    edge: Edge
    """The public endpoint: host, gateway, certificates, mTLS and limits."""
    cluster: Cluster
    """The cluster: supported versions, DNS, and how it is reached or provisioned."""
    delivery: Delivery
    """How the objects reach the cluster: Argo CD from git, or Pulumi directly."""
    secrets: Secrets
    """Where External Secrets reads the service's secrets."""
    database: Database | None = None
    """Required with a PostgreSQL registry, refused with SQLite."""
    logging: Logging = Logging()
    """The central log store (Loki): its mode and object storage."""

    def __post_init__(self) -> None:
        """The rules that join sections or depend on the environment."""
        if self.env in DIGEST_ENVIRONMENTS:
            if self.image.tag is not None:
                raise ValueError(f"image.tag: not allowed in {self.env}: pin image.digest instead")
            if self.image.digest is None:
                raise ValueError(f"image.digest: missing: {self.env} pins the image by digest")
        if self.registry.kind == "sqlite" and (
            self.scaling.replicas != 1 or self.scaling.hpa.enabled
        ):
            raise ValueError("scaling.replicas: a sqlite registry needs exactly 1 and no HPA")
        if (self.database is None) == (self.registry.kind == "postgresql"):
            raise ValueError(
                "database: missing: a postgresql registry needs its cluster"
                if self.database is None
                else "database: only with a postgresql registry"
            )
        wanted_acme = "production" if self.env == "prod" else "staging"
        if self.edge.acme_environment != wanted_acme:
            raise ValueError(
                f"edge.acme_environment: expected {wanted_acme} in {self.env},"
                f" got {self.edge.acme_environment!r}"
            )
        eks = self.cluster.eks
        if eks is not None and self.env == "prod" and eks.nodes.min_size < PROD_MIN_NODES:
            raise ValueError(
                f"cluster.eks.nodes.min_size: expected >= {PROD_MIN_NODES} in prod"
                f" (ORR 1.1-01), got {eks.nodes.min_size}"
            )
        if eks is not None and self.database is None:
            raise ValueError("cluster.eks: needs database (the backup bucket's prefix and expiry)")
        if self.env == "prod" and self.logging.mode != "simple-scalable":
            raise ValueError(
                "logging.mode: prod keeps its logs in object storage (simple-scalable)"
            )
        if self.logging.mode == "simple-scalable" and eks is None:
            raise ValueError("logging.mode: simple-scalable needs cluster.eks (its bucket)")
        if self.delivery.canary.enabled and not self.scaling.hpa.enabled:
            raise ValueError("delivery.canary.enabled: a canary needs scaling.hpa (several pods)")
        if self.max_pods > self.scaling.quota_pods:
            raise ValueError(
                f"scaling.quota_pods: a rollout runs up to {self.max_pods} pods, more than the"
                f" quota of {self.scaling.quota_pods}: lower the replicas or raise the quota"
            )

    @property
    def max_pods(self) -> int:
        """The most pods a rollout can run at once.

        A Deployment surges one pod. The canary keeps every stable pod until it is promoted (so
        an abort is instant) while the canary grows to 100 %: twice the replicas at the last
        step.
        """
        scaling = self.scaling
        top = scaling.hpa.max_replicas if scaling.hpa.enabled else scaling.replicas
        return 2 * top if self.delivery.canary.enabled else top + ROLLOUT_SURGE_PODS

    @property
    def host(self) -> str:
        return self.edge.host


def from_values(
    env: str,
    values: Mapping[str, Any],
    source: str,
    *,
    strict: bool = True,
    outputs: Mapping[str, str] | None = None,
) -> EnvConfig:
    """``values`` (bare keys) as the typed config of ``env``; errors name ``source`` and the key.

    The cloud values (role ARNs, backup destination) come from ``outputs``, by default
    ``infra/outputs/<env>.yaml`` of the repository (:mod:`infra.cloud.outputs`).
    ``strict=False`` converts strings where the field wants a number or a boolean, as the Pulumi
    CLI hands scalars over as text.
    """
    if "env" in values:
        raise ConfigError(f"{source}: {KEY_PREFIX}env: unknown key (the stack name is the env)")
    if outputs is None:
        outputs = cloud_outputs.read(env)
    values = cloud_outputs.merged(env, values, source, outputs)
    try:
        return msgspec.convert({"env": env, **values}, EnvConfig, strict=strict)
    except msgspec.ValidationError as err:
        raise ConfigError(f"{source}: {KEY_PREFIX}{describe(err)}") from None


def load(env: str, root: Path = REPO_ROOT) -> EnvConfig:
    """Read ``Pulumi.<env>.yaml`` under ``root`` into an :class:`EnvConfig`."""
    path = root / f"Pulumi.{env}.yaml"
    source = path.name
    document = read_yaml(path, source)
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        raise ConfigError(f"{source}: config: expected a mapping")
    values = {
        k.removeprefix(KEY_PREFIX): v
        for k, v in document["config"].items()
        if k.startswith(KEY_PREFIX)
    }
    found = cloud_outputs.path_of(env, root).exists()
    return from_values(
        env, values, source, outputs=cloud_outputs.read(env, root) if found else None
    )


def load_all(root: Path = REPO_ROOT) -> dict[str, EnvConfig]:
    return {env: load(env, root) for env in ENVIRONMENTS}
