"""Fixtures for the development IdP tests: files in tmp_path, the app, token helpers."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet, KeySetSerialization
from joserfc.jwt import JWTClaimsRegistry
from werkzeug.test import TestResponse

from cap_dev_idp.app import create_app
from cap_dev_idp.settings import Settings, load_settings

ISSUER = "https://idp.test"
AUDIENCE = "cap-verifier"
CLIENTS = {
    "ci-runner": ("ci-runner-secret-0123456789", ["verify:run", "policy:read"]),
    "metrics-scraper": ("metrics-secret-0123456789", ["metrics:read"]),
}
# Cheap argon2id parameters keep the tests fast; the CLI hashes with the library defaults.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass
class IdpFiles:
    """The files of one IdP instance under tmp_path."""

    root: Path
    config: Path
    clients_file: Path
    keys_dir: Path
    secrets: dict[str, str] = field(default_factory=dict)

    def write_config(self, text: str | None = None, **kwargs: Any) -> Path:
        """Write ``text``, or a valid configuration built by :func:`config_text`."""
        self.config.write_text(config_text(**kwargs) if text is None else text, encoding="utf-8")
        return self.config


def config_text(issuer: str = ISSUER, port: int = 8443) -> str:
    """A valid configuration; paths relative to the configuration file."""
    return (
        f"issuer: {issuer}\n"
        f"audience: {AUDIENCE}\n"
        "token_lifetime_seconds: 300\n"
        "clients_file: clients.yaml\n"
        "keys_dir: keys\n"
        "server:\n"
        "  host: 127.0.0.1\n"
        f"  port: {port}\n"
        "  cert: tls/server.crt\n"
        "  key: tls/server.key\n"
    )


def write_clients(path: Path) -> dict[str, str]:
    """Write the clients file with argon2id hashes; return client_id -> clear secret."""
    lines = ["clients:"]
    for client_id, (secret, scopes) in CLIENTS.items():
        lines += [
            f"  - client_id: {client_id}",
            f"    client_secret_hash: '{FAST_HASHER.hash(secret)}'",
            f"    scopes: [{', '.join(scopes)}]",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {client_id: secret for client_id, (secret, _) in CLIENTS.items()}


@pytest.fixture
def idp_files(tmp_path: Path) -> IdpFiles:
    files = IdpFiles(
        root=tmp_path,
        config=tmp_path / "idp.yaml",
        clients_file=tmp_path / "clients.yaml",
        keys_dir=tmp_path / "keys",
    )
    files.write_config()
    files.secrets = write_clients(files.clients_file)
    return files


@pytest.fixture
def settings(idp_files: IdpFiles) -> Settings:
    return load_settings(idp_files.config)


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def basic(client_id: str, secret: str) -> dict[str, str]:
    """An HTTP Basic Authorization header."""
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


TokenRequest = Callable[..., TestResponse]


@pytest.fixture
def request_token(client: FlaskClient, idp_files: IdpFiles) -> TokenRequest:
    """POST /oauth/token with client_secret_basic (default) or client_secret_post."""

    def post(
        client_id: str = "ci-runner",
        secret: str | None = None,
        scope: str | None = None,
        grant_type: str = "client_credentials",
        method: str = "basic",
    ) -> TestResponse:
        secret = idp_files.secrets[client_id] if secret is None else secret
        form = {"grant_type": grant_type}
        if scope is not None:
            form["scope"] = scope
        if method == "basic":
            return client.post("/oauth/token", data=form, headers=basic(client_id, secret))
        form |= {"client_id": client_id, "client_secret": secret}
        return client.post("/oauth/token", data=form)

    return post


def _decode_token(token: str, jwks: KeySetSerialization, issuer: str = ISSUER) -> jwt.Token:
    """Verify an access token as the verifier does: RS256 only, iss, aud, exp, nbf, iat."""
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256"])
    JWTClaimsRegistry(
        leeway=30,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": AUDIENCE},
        sub={"essential": True},
        exp={"essential": True},
        nbf={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
    ).validate(decoded.claims)
    return decoded


@pytest.fixture
def decode_token() -> Callable[..., jwt.Token]:
    """``decode_token(token, jwks, issuer=ISSUER)``: verify and return the decoded token."""
    return _decode_token
