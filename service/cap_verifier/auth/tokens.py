"""Bearer token validation: RS256 JWTs from the configured issuer (contract §4)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from cachetools import TTLCache
from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    JoseError,
)

from cap_verifier.auth.jwks import JWKSCache
from cap_verifier.settings import OAuth2Settings

ALGORITHM = "RS256"
MAX_TOKEN_LENGTH = 8192
VERIFIED_TOKENS_MAX = 10_000
VERIFIED_TOKENS_TTL = 60.0
"""A verified token is trusted again without a signature check for at most this long."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller a valid token speaks for."""

    client_id: str
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    not_before: float
    expires: float


class AuthError(Exception):
    """A refused request: ``reason`` is the metric label, ``status`` 401 or 403.

    ``client_id`` is the token's subject when its signature verified (expired, not yet valid,
    another issuer or audience, too few scopes), else None: an unverified claim names nobody.
    """

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        status: int = 401,
        scope: str = "",
        client_id: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.status = status
        self.scope = scope
        self.client_id = client_id

    @property
    def www_authenticate(self) -> str | None:
        if self.reason == "client_cert":
            return None
        if self.status == 403:
            return f'Bearer error="insufficient_scope", scope="{self.scope}"'
        if self.reason == "missing_token":
            return "Bearer"
        return 'Bearer error="invalid_token"'


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header, or AuthError(missing_token)."""
    if not authorization:
        raise AuthError("missing_token", "an Authorization: Bearer token is required")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("missing_token", "the Authorization header must be 'Bearer <token>'")
    return token


class TokenValidator:
    """Checks signature (JWKS), algorithm, kid, iss, aud, exp, nbf and iat of a token."""

    def __init__(self, settings: OAuth2Settings, jwks: JWKSCache) -> None:
        self._settings = settings
        self._jwks = jwks
        # Clients reuse a token for its lifetime: a signature checked once is not checked
        # again for a minute. Time claims are still checked on every request.
        self._verified: TTLCache[str, _Verified] = TTLCache(
            maxsize=VERIFIED_TOKENS_MAX, ttl=min(VERIFIED_TOKENS_TTL, settings.jwks_cache_ttl)
        )
        self._verified_lock = threading.Lock()
        self._claims = jwt.JWTClaimsRegistry(
            leeway=int(settings.leeway),
            iss={"essential": True, "value": settings.issuer},
            aud={"essential": True, "value": settings.audience},
            exp={"essential": True},
            sub={"essential": True},
        )

    async def validate(self, token: str) -> Principal:
        with self._verified_lock:
            known = self._verified.get(token)
        if known is not None:
            now = time.time()
            client_id = known.principal.client_id
            if now > known.expires + self._settings.leeway:
                raise AuthError("expired", "the token has expired", client_id=client_id)
            if now < known.not_before - self._settings.leeway:
                raise AuthError(
                    "invalid_token", "the token is not valid yet (nbf)", client_id=client_id
                )
            return known.principal
        principal, not_before, expires = await self._check(token)
        with self._verified_lock:
            self._verified[token] = _Verified(principal, not_before, expires)
        return principal

    async def _check(self, token: str) -> tuple[Principal, float, float]:
        """Full validation; returns the principal with the token's nbf and exp."""
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise AuthError("invalid_token", "the bearer token is not a JWS compact JWT")
        try:
            header = jws.extract_compact(token.encode("ascii")).protected
        except (JoseError, ValueError, UnicodeError):
            raise AuthError("invalid_token", "the bearer token is not a readable JWT") from None
        if header.get("alg") != ALGORITHM:
            raise AuthError("invalid_token", "only RS256-signed tokens are accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("invalid_token", "the token header names no key (kid)")
        key = await self._jwks.key(kid)
        if key is None:
            raise AuthError("unknown_kid", "the token is signed by a key the issuer does not list")
        try:
            decoded = jwt.decode(token, key, algorithms=[ALGORITHM])
        except BadSignatureError:
            raise AuthError("invalid_token", "the token signature does not verify") from None
        except (JoseError, ValueError):
            raise AuthError("invalid_token", "the token is not a valid JWT") from None
        claims = decoded.claims
        # The signature verified: from here on the subject names the caller.
        subject = claims.get("sub")
        client_id = subject if isinstance(subject, str) and subject else None
        try:
            self._claims.validate(claims)
        except ExpiredTokenError:
            raise AuthError("expired", "the token has expired", client_id=client_id) from None
        except ClaimError as exc:
            raise _claim_error(exc, client_id) from None
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise AuthError(
                "invalid_token", "the token's scope claim must be a string", client_id=client_id
            )
        principal = Principal(client_id=str(claims["sub"]), scopes=frozenset(scope.split()))
        nbf = claims.get("nbf")
        not_before = float(nbf) if isinstance(nbf, int | float) else 0.0
        return principal, not_before, float(claims["exp"])


def _claim_error(exc: ClaimError, client_id: str | None) -> AuthError:
    reason, detail = "invalid_token", f"the token's {exc.claim} claim is missing or invalid"
    if exc.claim == "iss":
        reason, detail = "issuer", "the token was issued by an untrusted issuer"
    elif exc.claim == "aud":
        reason, detail = "audience", "the token is meant for another audience"
    elif exc.claim == "nbf":
        detail = "the token is not valid yet (nbf)"
    elif exc.claim == "iat":
        detail = "the token was issued in the future (iat)"
    return AuthError(reason, detail, client_id=client_id)
