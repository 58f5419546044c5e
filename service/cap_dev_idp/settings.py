"""Configuration file of the development IdP (local and CI only), validated at start.

Example (relative paths are resolved against the configuration file's directory)::

    issuer: https://127.0.0.1:8443
    audience: cap-verifier
    token_lifetime_seconds: 300
    clients_file: clients.yaml
    keys_dir: keys
    server:
      host: 127.0.0.1
      port: 8443
      cert: tls/server.crt
      key: tls/server.key   # PKCS#8 PEM ("BEGIN PRIVATE KEY"), as granian requires

Every problem is reported as a :class:`ConfigError` naming the offending key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8443
DEFAULT_TOKEN_LIFETIME_SECONDS = 300
MAX_TOKEN_LIFETIME_SECONDS = 86_400

_TOP_KEYS = frozenset(
    {"issuer", "audience", "token_lifetime_seconds", "clients_file", "keys_dir", "server"}
)
_SERVER_KEYS = frozenset({"host", "port", "cert", "key"})


class ConfigError(Exception):
    """A bad or missing configuration value; ``key`` is its dotted path."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Where ``serve`` listens, and its TLS certificate and PKCS#8 key."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole configuration, paths already absolute."""

    issuer: str
    """``iss`` of every token; also the base URL of the endpoints (no path)."""
    audience: str
    """``aud`` of every token."""
    clients_file: Path
    """YAML file of clients (``client_id``, ``client_secret_hash``, ``scopes``)."""
    keys_dir: Path
    """Directory of the signing keys (PEM, mode 0600) and their manifest."""
    token_lifetime_seconds: int = DEFAULT_TOKEN_LIFETIME_SECONDS
    """``exp - iat`` of every token."""
    server: ServerSettings = ServerSettings()

    @property
    def token_endpoint(self) -> str:
        """Absolute URL of the token endpoint."""
        return f"{self.issuer}/oauth/token"

    @property
    def jwks_uri(self) -> str:
        """Absolute URL of the JWKS."""
        return f"{self.issuer}/.well-known/jwks.json"


def load_settings(path: Path) -> Settings:
    """Read and validate the configuration file; raise :class:`ConfigError` on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from None
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError("--config", f"invalid YAML{where} in {path}") from None
    return parse_settings(data, base_dir=path.resolve().parent)


def parse_settings(data: Any, base_dir: Path) -> Settings:
    """Validate an already parsed configuration mapping."""
    if not isinstance(data, dict):
        raise ConfigError("(top level)", "expected a mapping")
    _reject_unknown(data, _TOP_KEYS, prefix="")
    server = data.get("server", {})
    if server is None:
        server = {}
    if not isinstance(server, dict):
        raise ConfigError("server", "expected a mapping")
    _reject_unknown(server, _SERVER_KEYS, prefix="server.")
    return Settings(
        issuer=_issuer(data.get("issuer")),
        audience=_non_empty_string("audience", data.get("audience")),
        token_lifetime_seconds=_integer(
            "token_lifetime_seconds",
            data.get("token_lifetime_seconds", DEFAULT_TOKEN_LIFETIME_SECONDS),
            1,
            MAX_TOKEN_LIFETIME_SECONDS,
        ),
        clients_file=_path("clients_file", data.get("clients_file"), base_dir),
        keys_dir=_path("keys_dir", data.get("keys_dir"), base_dir),
        server=ServerSettings(
            host=_non_empty_string("server.host", server.get("host", DEFAULT_HOST)),
            port=_integer("server.port", server.get("port", DEFAULT_PORT), 1, 65_535),
            cert=_optional_path("server.cert", server.get("cert"), base_dir),
            key=_optional_path("server.key", server.get("key"), base_dir),
        ),
    )


def check_tls_files(server: ServerSettings) -> tuple[Path, Path]:
    """For ``serve``: the certificate and a PKCS#8 key must exist; return both paths."""
    if server.cert is None:
        raise ConfigError("server.cert", "required to serve (TLS only)")
    if server.key is None:
        raise ConfigError("server.key", "required to serve (TLS only)")
    try:
        cert = server.cert.read_bytes()
    except OSError as exc:
        raise ConfigError("server.cert", f"cannot read {server.cert}: {exc.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in cert:
        raise ConfigError("server.cert", "expected a PEM certificate")
    try:
        key = server.key.read_bytes()
    except OSError as exc:
        raise ConfigError("server.key", f"cannot read {server.key}: {exc.strerror}") from None
    if b"-----BEGIN PRIVATE KEY-----" not in key:
        raise ConfigError(
            "server.key", 'expected an unencrypted PKCS#8 PEM key ("BEGIN PRIVATE KEY")'
        )
    return server.cert, server.key


def _reject_unknown(data: dict[Any, Any], allowed: frozenset[str], prefix: str) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{prefix}{key}", "unknown key")


def _non_empty_string(key: str, value: Any) -> str:
    if value is None:
        raise ConfigError(key, "missing")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, "expected a non-empty string")
    return value.strip()


def _integer(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(key, f"expected an integer {low}-{high}")
    return value


def _issuer(value: Any) -> str:
    text = _non_empty_string("issuer", value)
    parts = urlsplit(text)
    try:
        _ = parts.port
    except ValueError:
        raise ConfigError("issuer", "invalid port") from None
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise ConfigError(
            "issuer", "expected an https URL with no path, e.g. https://127.0.0.1:8443"
        )
    return text.rstrip("/")


def _path(key: str, value: Any, base_dir: Path) -> Path:
    return base_dir / _non_empty_string(key, value)


def _optional_path(key: str, value: Any, base_dir: Path) -> Path | None:
    return None if value is None else _path(key, value, base_dir)
