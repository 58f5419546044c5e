"""Service configuration: one YAML file plus ``CAP_VERIFIER_<SECTION>__<KEY>`` overrides.

Settings are typed msgspec structs, validated once at start-up. An invalid value raises
:class:`ConfigError` whose message is one line naming the key, for example
``config error: server.port: Expected `int` <= 65535``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from cap_verifier.typed_yaml import describe

ENV_PREFIX = "CAP_VERIFIER_"
CONFIG_ENV = "CAP_VERIFIER_CONFIG"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Set by ``serve`` before prometheus-client is imported, so that workers share metrics."""

Port = Annotated[int, Meta(ge=1, le=65535)]
PositiveInt = Annotated[int, Meta(gt=0)]
Seconds = Annotated[float, Meta(gt=0)]


class ConfigError(Exception):
    """An invalid configuration; ``str(err)`` is the one-line message for the operator."""


class _Section(Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    pass


class ServerSettings(_Section, frozen=True):
    host: str = "127.0.0.1"
    """Address to bind; 127.0.0.1 locally, 0.0.0.0 only inside a pod."""
    port: Port = 8443
    workers: Annotated[int, Meta(ge=1, le=64)] = 1
    graceful_timeout: Annotated[float, Meta(gt=0, le=600)] = 30.0
    """Seconds granted to in-flight requests after SIGTERM."""
    backlog: Annotated[int, Meta(ge=16, le=65535)] = 1024
    head_timeout: Annotated[float, Meta(ge=0.5, le=60)] = 5.0
    """Seconds a connection may take, from accepting it or from its last response, to send a
    complete request head: a connection that stays silent (or idle between requests) longer is
    closed. TLS handshakes have their own 10 s limit in the server."""
    body_timeout: Annotated[float, Meta(gt=0, le=600)] = 10.0
    """Seconds to receive a whole request body; a slower body is answered 408."""
    max_connections: Annotated[int, Meta(ge=16, le=65535)] = 4096
    """Open connections per worker; more wait in the listen backlog."""


class TLSSettings(_Section, frozen=True):
    enabled: bool = True
    """False only where TLS ends at a gateway in front of the pod."""
    cert: str | None = None
    key: str | None = None
    """PKCS#8 PEM private key."""
    min_version: Literal["1.3"] = "1.3"
    client_ca: str | None = None
    require_mtls: bool = False
    allowed_client_sans: tuple[str, ...] = ()
    """DNS SANs allowed for client certificates: exact names or ``*.suffix``."""
    trusted_proxies: tuple[str, ...] = ()
    """Peers (IP or CIDR) whose ``X-Forwarded-Client-Cert`` header is believed."""

    def __post_init__(self) -> None:
        if self.enabled and not (self.cert and self.key):
            raise ValueError("tls.cert and tls.key are required when tls.enabled is true")
        if self.require_mtls and not self.client_ca and not self.trusted_proxies:
            raise ValueError("tls.require_mtls needs tls.client_ca or tls.trusted_proxies")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"tls.trusted_proxies: {proxy!r} is not an IP or CIDR") from None
        for san in self.allowed_client_sans:
            if not san or " " in san or ("*" in san and not san.startswith("*.")):
                raise ValueError(f"tls.allowed_client_sans: {san!r} is not a DNS name or *.suffix")


class ScopeSettings(_Section, frozen=True):
    verify: str = "verify:run"
    policy_compile: str = "policy:compile"
    policy_read: str = "policy:read"
    metrics: str = "metrics:read"


class OAuth2Settings(_Section, frozen=True):
    issuer: str
    audience: str
    jwks_url: str
    jwks_ca_file: str | None = None
    """CA bundle to verify the JWKS endpoint; the system store when unset."""
    jwks_cache_ttl: Seconds = 600.0
    jwks_max_stale: Seconds = 3600.0
    jwks_refetch_interval: Seconds = 30.0
    """Least time between two refetches caused by an unknown ``kid``."""
    jwks_timeout: Seconds = 5.0
    leeway: Annotated[float, Meta(ge=0, le=300)] = 30.0
    scopes: ScopeSettings = msgspec.field(default_factory=ScopeSettings)

    def __post_init__(self) -> None:
        if not self.jwks_url.startswith("https://"):
            raise ValueError("oauth2.jwks_url must be an https:// URL")
        if not self.issuer.strip() or not self.audience.strip():
            raise ValueError("oauth2.issuer and oauth2.audience must not be blank")


class CacheSettings(_Section, frozen=True):
    enabled: bool = True
    max_entries: PositiveInt = 5000
    ttl_seconds: Seconds = 3600.0


_REGISTRY_SCHEMES = ("sqlite:///", "postgresql+psycopg://", "postgresql://")
AUDIT_RETENTION_DAYS = 7 * 365 + 2
"""Seven years in days, leap days included (LkSG §10(1))."""


class RegistrySettings(_Section, frozen=True):
    url: str = "sqlite:///data/registry.db"
    url_file: str | None = None
    """A file holding the URL (with its password), e.g. a mounted Secret; wins over ``url``."""
    audit_retention_days: Annotated[int, Meta(ge=30, le=36500)] = AUDIT_RETENTION_DAYS
    """Days a verification audit record is kept; older ones are pruned. The default is seven
    years (LkSG §10(1) keeps due-diligence documentation that long): 7 * 365 days plus the two
    leap days seven years can hold. At least 30, so a value meant in years fails loudly."""
    audit_prune_interval_hours: Annotated[float, Meta(ge=0, le=8760)] = 24.0
    """Hours between the service's own prunes of a SQLite registry, the first at start-up
    (0: never). Only SQLite: its one writer is the service. A PostgreSQL registry, shared by
    the replicas, is pruned by ``cap-verifier audit prune`` (a Kubernetes CronJob)."""

    def __post_init__(self) -> None:
        if not self.url.startswith(_REGISTRY_SCHEMES):
            raise ValueError(
                "registry.url must be sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
            )


class RateLimitSettings(_Section, frozen=True):
    requests: PositiveInt
    per: Literal["second", "minute", "hour"] = "second"


class LimitsSettings(_Section, frozen=True):
    max_body_bytes: Annotated[int, Meta(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    max_target_bytes: Annotated[int, Meta(ge=256, le=65536)] = 8192
    """Longest request target (path and query); longer is 414."""
    max_header_bytes: Annotated[int, Meta(ge=1024, le=262144)] = 16384
    """Largest request header section (names and values); larger is 431."""
    max_headers: Annotated[int, Meta(ge=8, le=99)] = 64
    """Most request header fields; more is 431. The HTTP layer itself refuses more than 100
    with a bare 431, before the application sees the request."""
    max_json_depth: Annotated[int, Meta(ge=4, le=512)] = 64
    """Deepest nesting of arrays and objects in a JSON body; deeper is 400."""
    rate_limit: RateLimitSettings | None = None


class LoggingSettings(_Section, frozen=True):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class MetricsSettings(_Section, frozen=True):
    require_auth: bool = False
    """Ask for the ``metrics:read`` scope on ``/metrics`` (where the port is exposed)."""


class Settings(_Section, frozen=True):
    oauth2: OAuth2Settings
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    tls: TLSSettings = msgspec.field(default_factory=TLSSettings)
    cache: CacheSettings = msgspec.field(default_factory=CacheSettings)
    registry: RegistrySettings = msgspec.field(default_factory=RegistrySettings)
    limits: LimitsSettings = msgspec.field(default_factory=LimitsSettings)
    logging: LoggingSettings = msgspec.field(default_factory=LoggingSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)


def _yaml() -> YAML:
    yaml = YAML(typ="safe", pure=True)
    return yaml


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Collect ``CAP_VERIFIER_SECTION__KEY=value``; values are read as YAML scalars/flow."""
    overrides: dict[str, dict[str, Any]] = {}
    yaml = _yaml()
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if not section or not key or "__" in key:
            raise ConfigError(f"config error: {name}: expected CAP_VERIFIER_<SECTION>__<KEY>")
        try:
            value = yaml.load(raw) if raw.strip() else None
        except YAMLError:
            raise ConfigError(
                f"config error: {section}.{key}: unreadable value in {name}"
            ) from None
        overrides.setdefault(section, {})[key] = value
    return overrides


def _friendly(err: msgspec.ValidationError) -> str:
    return f"config error: {describe(err)}"


def _file_keys(settings: Settings) -> dict[str, str | None]:
    tls = settings.tls
    files: dict[str, str | None] = {
        "oauth2.jwks_ca_file": settings.oauth2.jwks_ca_file,
        "registry.url_file": settings.registry.url_file,
    }
    if tls.enabled:
        files |= {"tls.cert": tls.cert, "tls.key": tls.key, "tls.client_ca": tls.client_ca}
    return files


def check_files(settings: Settings) -> None:
    """Every file the settings name must exist and be readable."""
    for key, name in _file_keys(settings).items():
        if name is not None and not os.access(name, os.R_OK):
            problem = "does not exist" if not os.path.exists(name) else "is not readable"
            raise ConfigError(f"config error: {key}: {name} {problem}")


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the YAML file (if any), apply environment overrides, validate everything."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"config error: cannot read {path}: {exc.strerror}") from None
        try:
            loaded = _yaml().load(text)
        except YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            where = f" (line {line + 1})" if line is not None else ""
            raise ConfigError(f"config error: {path} is not valid YAML{where}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config error: {path} must hold a mapping of sections")
        data = dict(loaded or {})
    for section, values in _env_overrides(environ).items():
        current = data.get(section)
        if current is not None and not isinstance(current, dict):
            raise ConfigError(f"config error: {section}: expected a mapping")
        data[section] = {**(current or {}), **values}
    try:
        settings = msgspec.convert(data, Settings)
    except msgspec.ValidationError as err:
        raise ConfigError(_friendly(err)) from None
    check_files(settings)
    return _with_registry_url_file(settings)


def _with_registry_url_file(settings: Settings) -> Settings:
    """Read ``registry.url_file`` into ``registry.url``; an error never shows the file's text."""
    name = settings.registry.url_file
    if name is None:
        return settings
    url = Path(name).read_text(encoding="utf-8").strip()
    if not url.startswith(_REGISTRY_SCHEMES) or "\n" in url:
        raise ConfigError(
            f"config error: registry.url_file: {name} does not hold one sqlite:/// or "
            "postgresql+psycopg:// URL"
        )
    registry = msgspec.structs.replace(settings.registry, url=url)
    return msgspec.structs.replace(settings, registry=registry)
