"""Typed, frozen environment config read from ``Pulumi.<env>.yaml``.

Every environment difference lives under ``config:`` keys prefixed ``cap-verifier-ops:``. A missing
or invalid key raises :class:`ConfigError` with one line naming the file and the key.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

PROJECT = "cap-verifier-ops"
ENVIRONMENTS: tuple[str, ...] = ("dev", "staging", "prod")
DIGEST_ENVIRONMENTS = frozenset({"staging", "prod"})
REPO_ROOT = Path(__file__).resolve().parent.parent

RegistryKind = Literal["sqlite", "postgresql"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
AcmeEnvironment = Literal["staging", "production"]
RateLimitUnit = Literal["Second", "Minute", "Hour"]

_QUANTITY = re.compile(r"^[0-9]+(m|Ki|Mi|Gi|Ti)?$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_VERSION = re.compile(r"^1\.([0-9]{1,2})$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,63}$")
_GIT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_CONTEXT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,252}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")
_KEY_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,200}[A-Za-z0-9]$")
_S3_URL = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?$")
_HOST = re.compile(r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class ConfigError(ValueError):
    """One line: ``<file>: cap-verifier-ops:<key>: <what is wrong>``."""


@dataclass(frozen=True)
class DatabaseConfig:
    """The CloudNativePG cluster behind a PostgreSQL registry."""

    instances: int
    storage_size: str
    backup_destination: str
    backup_role_arn: str
    backup_retention_days: int
    object_storage_cidr: str
    kube_api_cidr: str


@dataclass(frozen=True)
class EnvConfig:
    env: str
    namespace: str
    host: str
    app_version: str
    image_repository: str
    image_tag: str | None
    image_digest: str | None
    replicas: int
    hpa_enabled: bool
    hpa_min_replicas: int
    hpa_max_replicas: int
    hpa_scale_down_stabilization_seconds: int
    pdb_min_available: int
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str
    registry_kind: RegistryKind
    registry_url: str
    registry_storage_size: str | None
    require_mtls: bool
    allowed_client_sans: tuple[str, ...]
    log_level: LogLevel
    graceful_timeout_seconds: int
    prestop_sleep_seconds: int
    gateway_namespace: str
    gateway_cidr: str
    prometheus_namespace: str
    dns_namespace: str
    dns_pod_labels: tuple[tuple[str, str], ...]
    oauth2_issuer: str
    oauth2_audience: str
    oauth2_jwks_url: str
    idp_jwks_cidr: str
    idp_jwks_port: int
    postgresql_namespace: str
    postgresql_port: int
    postgresql_pod_labels: tuple[tuple[str, str], ...]
    k8s_version_oldest: str
    k8s_version_newest: str
    gateway_class_name: str
    acme_environment: AcmeEnvironment
    acme_email: str
    mtls_ca_secret: str | None
    rate_limit_requests: int
    rate_limit_unit: RateLimitUnit
    request_timeout_seconds: int
    gitops: bool
    gitops_repo_url: str
    gitops_revision: str
    kube_context: str | None
    secret_store_region: str
    secret_store_role_arn: str
    secret_key_prefix: str
    canary_enabled: bool
    canary_step_pause_minutes: int
    database: DatabaseConfig | None

    @property
    def image(self) -> str:
        """Image reference: by digest when one is set, else by tag."""
        if self.image_digest is not None:
            return f"{self.image_repository}@{self.image_digest}"
        if self.env in DIGEST_ENVIRONMENTS:
            raise ConfigError(f"{self.env}: image must be pinned by digest, not by tag")
        return f"{self.image_repository}:{self.image_tag}"

    @property
    def k8s_versions(self) -> tuple[str, str]:
        return (self.k8s_version_oldest, self.k8s_version_newest)


class _Reader:
    def __init__(self, source: str, values: Mapping[str, Any]) -> None:
        self.source = source
        self.values = values
        self.used: set[str] = set()

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {PROJECT}:{key}: {message}")

    def raw(self, key: str, *, required: bool = True) -> Any:
        self.used.add(key)
        if key not in self.values or self.values[key] is None:
            if required:
                raise self.fail(key, "missing")
            return None
        return self.values[key]

    def string(self, key: str, pattern: re.Pattern[str] | None = None, what: str = "") -> str:
        value = self.raw(key)
        if not isinstance(value, str) or not value:
            raise self.fail(key, "expected a non-empty string")
        if pattern is not None and not pattern.match(value):
            raise self.fail(key, f"expected {what or pattern.pattern}, got {value!r}")
        return value

    def optional(self, key: str, pattern: re.Pattern[str], what: str) -> str | None:
        if self.raw(key, required=False) is None:
            return None
        return self.string(key, pattern, what)

    def integer(
        self, key: str, minimum: int = 0, maximum: int | None = None, what: str = ""
    ) -> int:
        value = self.raw(key)
        too_big = maximum is not None and isinstance(value, int) and value > maximum
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum or too_big:
            bound = what or (str(minimum) if maximum is None else f"{minimum}..{maximum}")
            raise self.fail(
                key,
                f"expected an integer >= {bound}"
                if maximum is None
                else f"expected an integer in {bound}",
            )
        return value

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self.fail(key, "expected true or false")
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.raw(key)
        if value not in choices:
            raise self.fail(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    def cidr(self, key: str) -> str:
        value = self.string(key)
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError:
            raise self.fail(key, f"expected a CIDR, got {value!r}") from None
        return value

    def https_url(self, key: str) -> str:
        value = self.string(key)
        if not value.startswith("https://"):
            raise self.fail(key, f"expected an https:// URL, got {value!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "expected a list of non-empty strings")
        return tuple(value)

    def labels(self, key: str) -> tuple[tuple[str, str], ...]:
        value = self.raw(key)
        if (
            not isinstance(value, dict)
            or not value
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        ):
            raise self.fail(key, "expected a non-empty map of string labels")
        return tuple(sorted(value.items()))


def load(env: str, root: Path = REPO_ROOT) -> EnvConfig:
    """Read ``Pulumi.<env>.yaml`` under ``root`` into an :class:`EnvConfig`."""
    path = root / f"Pulumi.{env}.yaml"
    source = path.name
    try:
        document = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    except YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid YAML"
        raise ConfigError(f"{source}: invalid YAML: {first}") from None
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        raise ConfigError(f"{source}: config: expected a mapping")
    prefix = f"{PROJECT}:"
    values = {k[len(prefix) :]: v for k, v in document["config"].items() if k.startswith(prefix)}
    return from_values(env, values, source)


def from_values(env: str, values: Mapping[str, Any], source: str) -> EnvConfig:
    r = _Reader(source, values)
    label = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
    namespace = r.string("namespace", _DNS_LABEL, "a DNS label")
    host = r.string("host", _HOST, "a host name")
    app_version = r.string("app_version", label, "a label value")
    image_repository = r.string("image_repository")
    if "@" in image_repository or image_repository.rsplit("/", 1)[-1].count(":"):
        raise r.fail("image_repository", "expected a repository without tag or digest")
    image_tag = r.optional("image_tag", _TAG, "an image tag")
    image_digest = r.optional("image_digest", _DIGEST, "sha256:<64 hex>")
    if env in DIGEST_ENVIRONMENTS:
        if image_tag is not None:
            raise r.fail("image_tag", f"not allowed in {env}: pin image_digest instead")
        if image_digest is None:
            raise r.fail("image_digest", f"missing: {env} pins the image by digest")
    elif image_tag is None and image_digest is None:
        raise r.fail("image_tag", "missing: set image_tag or image_digest")
    hpa_enabled = r.boolean("hpa_enabled")
    replicas = r.integer("replicas", 1)
    hpa_min = r.integer("hpa_min_replicas", 1)
    hpa_max = r.integer("hpa_max_replicas", hpa_min, what="hpa_min_replicas")
    registry_kind = r.choice("registry_kind", ("sqlite", "postgresql"))
    registry_url = r.string("registry_url")
    if not registry_url.startswith("sqlite:///" if registry_kind == "sqlite" else "postgresql"):
        raise r.fail("registry_url", f"does not match registry_kind {registry_kind}")
    if registry_kind == "postgresql" and re.match(r"^[^/]*//[^/@]*:[^/@]*@", registry_url):
        raise r.fail("registry_url", "must not contain a password")
    storage = None
    if registry_kind == "sqlite":
        storage = r.string("registry_storage_size", _QUANTITY, "a quantity")
        if replicas != 1 or hpa_enabled:
            raise r.fail("replicas", "sqlite registry needs exactly 1 replica and no HPA")
    pdb = r.integer("pdb_min_available", 0)
    if pdb and pdb >= (hpa_min if hpa_enabled else replicas):
        raise r.fail("pdb_min_available", "expected an integer < the minimum replica count")
    require_mtls = r.boolean("require_mtls")
    sans = r.strings("allowed_client_sans")
    if require_mtls and not sans:
        raise r.fail("allowed_client_sans", "expected at least one SAN when require_mtls is true")
    oldest = r.string("k8s_version_oldest", _VERSION, "1.<minor>")
    newest = r.string("k8s_version_newest", _VERSION, "1.<minor>")
    if int(oldest.split(".")[1]) > int(newest.split(".")[1]):
        raise r.fail("k8s_version_newest", "expected a version >= k8s_version_oldest")
    cfg = EnvConfig(
        env=env,
        namespace=namespace,
        host=host,
        app_version=app_version,
        image_repository=image_repository,
        image_tag=image_tag,
        image_digest=image_digest,
        replicas=replicas,
        hpa_enabled=hpa_enabled,
        hpa_min_replicas=hpa_min,
        hpa_max_replicas=hpa_max,
        hpa_scale_down_stabilization_seconds=r.integer(
            "hpa_scale_down_stabilization_seconds", 0, 3600
        ),
        pdb_min_available=pdb,
        cpu_request=r.string("cpu_request", _QUANTITY, "a quantity"),
        memory_request=r.string("memory_request", _QUANTITY, "a quantity"),
        cpu_limit=r.string("cpu_limit", _QUANTITY, "a quantity"),
        memory_limit=r.string("memory_limit", _QUANTITY, "a quantity"),
        registry_kind="sqlite" if registry_kind == "sqlite" else "postgresql",
        registry_url=registry_url,
        registry_storage_size=storage,
        require_mtls=require_mtls,
        allowed_client_sans=sans,
        log_level=_log_level(r.choice("log_level", ("DEBUG", "INFO", "WARNING", "ERROR"))),
        graceful_timeout_seconds=r.integer("graceful_timeout_seconds", 1, 600),
        prestop_sleep_seconds=r.integer("prestop_sleep_seconds", 0, 120),
        gateway_namespace=r.string("gateway_namespace", _DNS_LABEL, "a DNS label"),
        gateway_cidr=r.cidr("gateway_cidr"),
        prometheus_namespace=r.string("prometheus_namespace", _DNS_LABEL, "a DNS label"),
        dns_namespace=r.string("dns_namespace", _DNS_LABEL, "a DNS label"),
        dns_pod_labels=r.labels("dns_pod_labels"),
        oauth2_issuer=r.https_url("oauth2_issuer"),
        oauth2_audience=r.string("oauth2_audience"),
        oauth2_jwks_url=r.https_url("oauth2_jwks_url"),
        idp_jwks_cidr=r.cidr("idp_jwks_cidr"),
        idp_jwks_port=r.integer("idp_jwks_port", 1, 65535),
        postgresql_namespace=r.string("postgresql_namespace", _DNS_LABEL, "a DNS label"),
        postgresql_port=r.integer("postgresql_port", 1, 65535),
        postgresql_pod_labels=r.labels("postgresql_pod_labels"),
        k8s_version_oldest=oldest,
        k8s_version_newest=newest,
        **_edge(r, env, require_mtls),
        **_delivery(r, env, hpa_enabled),
        database=_database(r) if registry_kind == "postgresql" else None,
    )
    unknown = sorted(set(values) - r.used)
    if unknown:
        raise r.fail(unknown[0], "unknown key")
    return cfg


def _log_level(value: str) -> LogLevel:
    levels: dict[str, LogLevel] = {
        "DEBUG": "DEBUG",
        "INFO": "INFO",
        "WARNING": "WARNING",
        "ERROR": "ERROR",
    }
    return levels[value]


def _edge(r: _Reader, env: str, require_mtls: bool) -> dict[str, Any]:
    """Gateway, certificate and rate-limit keys."""
    acme = r.choice("acme_environment", ("staging", "production"))
    wanted_acme = "production" if env == "prod" else "staging"
    if acme != wanted_acme:
        raise r.fail("acme_environment", f"expected {wanted_acme} in {env}, got {acme!r}")
    ca_secret = r.optional("mtls_ca_secret", _DNS_LABEL, "a DNS label")
    if require_mtls and ca_secret is None:
        raise r.fail("mtls_ca_secret", "missing: require_mtls needs the client CA bundle")
    return {
        "gateway_class_name": r.string("gateway_class_name", _DNS_LABEL, "a DNS label"),
        "acme_environment": _acme(acme),
        "acme_email": r.string("acme_email", _EMAIL, "an email address"),
        "mtls_ca_secret": ca_secret,
        "rate_limit_requests": r.integer("rate_limit_requests", 1),
        "rate_limit_unit": _rate_unit(r.choice("rate_limit_unit", ("Second", "Minute", "Hour"))),
        "request_timeout_seconds": r.integer("request_timeout_seconds", 1, 600),
    }


def _delivery(r: _Reader, env: str, hpa_enabled: bool) -> dict[str, Any]:
    """GitOps, secrets and canary keys."""
    canary = r.boolean("canary_enabled")
    if canary and not hpa_enabled:
        raise r.fail("canary_enabled", "a canary needs hpa_enabled (several replicas)")
    return {
        "gitops": r.boolean("gitops"),
        "gitops_repo_url": r.https_url("gitops_repo_url"),
        "gitops_revision": r.string("gitops_revision", _GIT_REF, "a branch, tag or commit"),
        "kube_context": r.optional("kube_context", _CONTEXT, "a kubeconfig context name"),
        "secret_store_region": r.string("secret_store_region", _REGION, "an AWS region"),
        "secret_store_role_arn": r.string("secret_store_role_arn", _ROLE_ARN, "an IAM role ARN"),
        "secret_key_prefix": r.string("secret_key_prefix", _KEY_PREFIX, "a key path"),
        "canary_enabled": canary,
        "canary_step_pause_minutes": r.integer("canary_step_pause_minutes", 1, 120),
    }


def _database(r: _Reader) -> DatabaseConfig:
    """CloudNativePG keys, required with a PostgreSQL registry."""
    destination = r.string("postgresql_backup_destination", _S3_URL, "an s3://bucket/path URL")
    return DatabaseConfig(
        instances=r.integer("postgresql_instances", 1, 9),
        storage_size=r.string("postgresql_storage_size", _QUANTITY, "a quantity"),
        backup_destination=destination,
        backup_role_arn=r.string("postgresql_backup_role_arn", _ROLE_ARN, "an IAM role ARN"),
        backup_retention_days=r.integer("postgresql_backup_retention_days", 1, 3650),
        object_storage_cidr=r.cidr("object_storage_cidr"),
        kube_api_cidr=r.cidr("kube_api_cidr"),
    )


def _acme(value: str) -> AcmeEnvironment:
    return "production" if value == "production" else "staging"


def _rate_unit(value: str) -> RateLimitUnit:
    units: dict[str, RateLimitUnit] = {"Second": "Second", "Minute": "Minute", "Hour": "Hour"}
    return units[value]


def load_all(root: Path = REPO_ROOT) -> dict[str, EnvConfig]:
    return {env: load(env, root) for env in ENVIRONMENTS}
