"""Flask application of the development IdP (local and CI only, never staging or prod).

Endpoints: ``POST /oauth/token`` (client-credentials grant, ``client_secret_basic`` or
``client_secret_post``), ``GET /.well-known/jwks.json``, ``GET /.well-known/openid-configuration``
and ``GET /healthz``. Access tokens are RS256 JWTs signed with joserfc.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from typing import Any, ClassVar
from urllib.parse import unquote

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from flask import Flask, Response, g, jsonify, request
from joserfc import jwt

from cap_dev_idp.clients import AUTH_METHODS, GRANT_TYPE, Client, ClientStore
from cap_dev_idp.keys import ALGORITHM, KeyStore
from cap_dev_idp.logs import REQUEST_ID_KEY, get_logger
from cap_dev_idp.settings import Settings
from cap_verifier.logs import REQUEST_ID_HEADER, accepted_request_id

TOKEN_PATH = "/oauth/token"  # noqa: S105 (a URL path, not a secret)
JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"
HEALTH_PATH = "/healthz"

_log = get_logger("app")


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    """Client credentials with both secret methods; scope must be a subset of the client's."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(AUTH_METHODS)

    def validate_requested_scope(self) -> None:
        client: Client = self.request.client
        if client.get_allowed_scope(self.request.payload.scope) is None:
            raise InvalidScopeError()


class TokenIssuer:
    """authlib token generator: signs the access token as an RS256 JWT."""

    def __init__(self, settings: Settings, keys: KeyStore) -> None:
        self._settings = settings
        self._keys = keys

    def __call__(
        self,
        *,
        grant_type: str,
        client: Client,
        user: object = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = False,
    ) -> dict[str, Any]:
        granted = client.get_allowed_scope(scope)
        if granted is None:
            raise InvalidScopeError()
        lifetime = self._settings.token_lifetime_seconds
        now = int(time.time())
        signing = self._keys.ring().current
        claims = {
            "iss": self._settings.issuer,
            "sub": client.client_id,
            "client_id": client.client_id,
            "aud": self._settings.audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "scope": granted,
        }
        header = {"alg": ALGORITHM, "kid": signing.kid, "typ": "at+jwt"}
        token = jwt.encode(header, claims, signing.key, algorithms=[ALGORITHM])
        g.token_log = {"client_id": client.client_id, "scope": granted, "kid": signing.kid}
        return {
            "token_type": "Bearer",
            "access_token": token,
            "expires_in": lifetime,
            "scope": granted,
        }


def _claimed_client_id() -> str | None:
    """The client id a request claims (for logs only, and only once known; never the
    secret)."""
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return unquote(decoded.partition(":")[0]) or None
    return request.form.get("client_id") or None


def create_app(settings: Settings) -> Flask:
    """Build the app; loads the clients and keys (creating a first key if there is none)."""
    clients = ClientStore(settings.clients_file)
    keys = KeyStore(settings.keys_dir)

    app = Flask("cap_dev_idp")
    app.config["OAUTH2_SCOPES_SUPPORTED"] = None  # checked per client, in the grant
    server = AuthorizationServer(app, query_client=clients.get, save_token=lambda *_: None)
    server.register_grant(ClientCredentialsGrant)
    server.register_token_generator(GRANT_TYPE, TokenIssuer(settings, keys))
    app.extensions["cap_dev_idp"] = {"clients": clients, "keys": keys, "settings": settings}

    @app.post(TOKEN_PATH)
    def token() -> Response:
        response: Response = server.create_token_response()
        return response

    @app.get(JWKS_PATH)
    def jwks() -> Response:
        response = jsonify(keys.ring().jwks())
        response.headers["Cache-Control"] = "public, max-age=60"
        return response

    @app.get(DISCOVERY_PATH)
    def discovery() -> Response:
        return jsonify(
            {
                "issuer": settings.issuer,
                "token_endpoint": settings.token_endpoint,
                "jwks_uri": settings.jwks_uri,
                "grant_types_supported": [GRANT_TYPE],
                "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
                "scopes_supported": clients.scopes(),
                "id_token_signing_alg_values_supported": [ALGORITHM],
            }
        )

    @app.get(HEALTH_PATH)
    def healthz() -> Response:
        keys.ring()
        return jsonify({"status": "ok"})

    @app.errorhandler(404)
    @app.errorhandler(405)
    def not_found(error: Exception) -> tuple[Response, int]:
        code = getattr(error, "code", 404)
        return jsonify({"error": "not_found" if code == 404 else "method_not_allowed"}), code

    @app.before_request
    def start_request() -> None:
        g.started = time.perf_counter()
        setattr(g, REQUEST_ID_KEY, accepted_request_id(request.headers.get(REQUEST_ID_HEADER)))

    @app.after_request
    def log_request(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.get(REQUEST_ID_KEY)
        fields: dict[str, Any] = {
            "method": request.method,
            "endpoint": request.path,  # never the query string
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - g.get("started", 0.0)) * 1000, 1),
        }
        if request.path == TOKEN_PATH:
            issued = g.get("token_log")
            if issued is not None and response.status_code == 200:
                fields.update(issued)
                _log.info("token issued", extra=fields)
                return response
            # Only a registered client id: a refused request may have put its secret, or
            # anybody's personal data, where the id belongs.
            claimed = _claimed_client_id()
            fields["client_id"] = claimed if claimed and clients.get(claimed) else None
            body = response.get_json(silent=True)
            fields["event"] = "auth_failure"
            fields["reason"] = body.get("error") if isinstance(body, dict) else None
            _log.warning("token refused", extra=fields)
            return response
        _log.info("request", extra=fields)
        return response

    return app
