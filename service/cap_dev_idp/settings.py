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

It is read by the repository's one reader (``cap_verifier.typed_yaml``): unknown keys are
refused, and every problem is a :class:`ConfigError` of one line, ``<file>: <key>: <problem>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta, Struct

from cap_verifier.typed_yaml import ConfigError, load_typed

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8443
DEFAULT_TOKEN_LIFETIME_SECONDS = 300
MAX_TOKEN_LIFETIME_SECONDS = 86_400

NonEmpty = Annotated[str, Meta(min_length=1)]


class ServerSettings(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Where ``serve`` listens, and its TLS certificate and PKCS#8 key."""

    host: NonEmpty = DEFAULT_HOST
    port: Annotated[int, Meta(ge=1, le=65_535)] = DEFAULT_PORT
    cert: Path | None = None
    key: Path | None = None


class Settings(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The whole configuration; :func:`load_settings` makes its paths absolute."""

    issuer: str
    """``iss`` of every token; also the base URL of the endpoints (https, no path)."""
    audience: NonEmpty
    """``aud`` of every token."""
    clients_file: Path
    """YAML file of clients (``client_id``, ``client_secret_hash``, ``scopes``)."""
    keys_dir: Path
    """Directory of the signing keys (PEM, mode 0600) and their manifest."""
    token_lifetime_seconds: Annotated[int, Meta(ge=1, le=MAX_TOKEN_LIFETIME_SECONDS)] = (
        DEFAULT_TOKEN_LIFETIME_SECONDS
    )
    """``exp - iat`` of every token."""
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)

    def __post_init__(self) -> None:
        parts = urlsplit(self.issuer)
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("issuer: invalid port") from None
        if (
            parts.scheme != "https"
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise ValueError(
                "issuer: expected an https URL with no path, e.g. https://127.0.0.1:8443"
            )

    @property
    def token_endpoint(self) -> str:
        """Absolute URL of the token endpoint."""
        return f"{self.issuer}/oauth/token"

    @property
    def jwks_uri(self) -> str:
        """Absolute URL of the JWKS."""
        return f"{self.issuer}/.well-known/jwks.json"

    def anchored(self, base_dir: Path) -> Settings:
        """The settings with relative paths taken from ``base_dir`` and the issuer without a
        trailing slash."""
        server = self.server
        return msgspec.structs.replace(
            self,
            issuer=self.issuer.rstrip("/"),
            clients_file=base_dir / self.clients_file,
            keys_dir=base_dir / self.keys_dir,
            server=msgspec.structs.replace(
                server,
                cert=None if server.cert is None else base_dir / server.cert,
                key=None if server.key is None else base_dir / server.key,
            ),
        )


def load_settings(path: Path) -> Settings:
    """Read and validate the configuration file; raise :class:`ConfigError` on any problem."""
    return load_typed(path, Settings).anchored(path.resolve().parent)


def check_tls_files(server: ServerSettings) -> tuple[Path, Path]:
    """For ``serve``: the certificate and a PKCS#8 key must exist; return both paths."""
    if server.cert is None:
        raise ConfigError("server.cert: required to serve (TLS only)")
    if server.key is None:
        raise ConfigError("server.key: required to serve (TLS only)")
    try:
        cert = server.cert.read_bytes()
    except OSError as exc:
        raise ConfigError(f"server.cert: cannot read {server.cert}: {exc.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in cert:
        raise ConfigError("server.cert: expected a PEM certificate")
    try:
        key = server.key.read_bytes()
    except OSError as exc:
        raise ConfigError(f"server.key: cannot read {server.key}: {exc.strerror}") from None
    if b"-----BEGIN PRIVATE KEY-----" not in key:
        raise ConfigError(
            'server.key: expected an unencrypted PKCS#8 PEM key ("BEGIN PRIVATE KEY")'
        )
    return server.cert, server.key
