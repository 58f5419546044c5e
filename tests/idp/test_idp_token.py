"""Token endpoint, JWKS and discovery, in-process through Flask's test client."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import RSAKey

from cap_dev_idp.logs import LOGGER_NAME, JsonFormatter

if TYPE_CHECKING:
    from conftest import IdpFiles, TokenRequest

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth"}


def test_token_for_a_valid_client_verifies_against_the_served_jwks(
    client: FlaskClient, request_token: TokenRequest, decode_token: Callable[..., jwt.Token]
) -> None:
    response = request_token()

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    jwks = client.get("/.well-known/jwks.json").get_json()
    token = decode_token(body["access_token"], jwks)
    assert token.header["alg"] == "RS256"
    assert token.header["kid"] == jwks["keys"][0]["kid"]
    claims = token.claims
    assert claims["iss"] == "https://idp.test"
    assert claims["aud"] == "cap-verifier"
    assert claims["sub"] == "ci-runner"
    assert claims["scope"] == "verify:run policy:read"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["nbf"] == claims["iat"]
    assert len(claims["jti"]) >= 16


def test_client_secret_post_is_accepted(request_token: TokenRequest) -> None:
    response = request_token(method="post")
    assert response.status_code == 200
    assert response.get_json()["scope"] == "verify:run policy:read"


@pytest.mark.parametrize("method", ["basic", "post"])
def test_wrong_secret_is_401_invalid_client(request_token: TokenRequest, method: str) -> None:
    response = request_token(secret="not-the-secret", method=method)
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert "access_token" not in response.get_json()


def test_unknown_client_is_invalid_client(request_token: TokenRequest) -> None:
    response = request_token(client_id="nobody", secret="whatever")
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    # Without an Authorization header, RFC 6749 section 5.2 allows 400.
    response = request_token(client_id="nobody", secret="whatever", method="post")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_client"


def test_unsupported_grant_type(request_token: TokenRequest) -> None:
    response = request_token(grant_type="password")
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_grant_type"


def test_requested_scope_subset_is_granted(
    request_token: TokenRequest, client: FlaskClient, decode_token: Callable[..., jwt.Token]
) -> None:
    response = request_token(scope="policy:read")
    assert response.status_code == 200
    assert response.get_json()["scope"] == "policy:read"
    jwks = client.get("/.well-known/jwks.json").get_json()
    assert decode_token(response.get_json()["access_token"], jwks).claims["scope"] == "policy:read"


@pytest.mark.parametrize("scope", ["metrics:read", "verify:run metrics:read", "admin"])
def test_scope_outside_the_clients_scopes_is_invalid_scope(
    request_token: TokenRequest, scope: str
) -> None:
    response = request_token(scope=scope)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_scope"


def test_jwks_holds_public_keys_only(client: FlaskClient) -> None:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.get_json()["keys"]
    assert len(keys) == 1  # no rotation yet: no previous key
    for jwk in keys:
        assert not PRIVATE_MEMBERS & set(jwk)
        assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")
        assert RSAKey.import_key(jwk).thumbprint() == jwk["kid"]  # RFC 7638
        assert not RSAKey.import_key(jwk).is_private


def test_discovery_document(client: FlaskClient) -> None:
    doc = client.get("/.well-known/openid-configuration").get_json()
    assert doc == {
        "issuer": "https://idp.test",
        "token_endpoint": "https://idp.test/oauth/token",
        "jwks_uri": "https://idp.test/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["metrics:read", "policy:read", "verify:run"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }


def test_token_endpoint_refuses_get(client: FlaskClient) -> None:
    assert client.get("/oauth/token").status_code == 405


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """JSON lines the package logs during the test."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(LOGGER_NAME)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_logs_are_json_lines_without_secrets_or_tokens(
    request_token: TokenRequest, idp_files: IdpFiles, log_lines: list[str]
) -> None:
    token = request_token().get_json()["access_token"]
    request_token(secret="wrong-secret-value", method="post")

    assert log_lines
    records = [json.loads(line) for line in log_lines]
    issued = [r for r in records if r["message"] == "token issued"]
    refused = [r for r in records if r["message"] == "token refused"]
    assert issued[0]["client_id"] == "ci-runner"
    # Like the verifier's: one WARNING auth_failure line with the OAuth2 error as its reason.
    assert (refused[0]["level"], refused[0]["event"]) == ("WARNING", "auth_failure")
    assert refused[0]["reason"] == "invalid_client"
    text = "\n".join(log_lines)
    for secret in [*idp_files.secrets.values(), "wrong-secret-value", token]:
        assert secret not in text
    assert token.split(".")[2] not in text
