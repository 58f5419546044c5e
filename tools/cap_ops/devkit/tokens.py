"""Signing keys and tokens for tests, including the forged ones of the attack matrix."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

ISSUER = "https://idp.cap.test"
AUDIENCE = "cap-verifier"
ALL_SCOPES = "verify:run policy:compile policy:read metrics:read"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class SigningKey:
    """An RSA test key (never used outside tests) with its RFC 7638 kid."""

    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048))

    @property
    def kid(self) -> str:
        return self.key.thumbprint()

    def public_jwk(self) -> dict[str, Any]:
        jwk = self.key.as_dict(private=False)
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return jwk


def jwks_document(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.public_jwk() for k in keys]}


def claims(
    *,
    scope: str = ALL_SCOPES,
    sub: str = "test-client",
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
    lifetime: int = 300,
    not_before_offset: int = 0,
    issued_offset: int = 0,
) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": issuer,
        "sub": sub,
        "aud": audience,
        "iat": now + issued_offset,
        "nbf": now + not_before_offset,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
        "scope": scope,
    }


def sign(key: SigningKey, payload: dict[str, Any], *, kid: str | None = None) -> str:
    header = {"alg": "RS256", "typ": "JWT", "kid": kid if kid is not None else key.kid}
    return jwt.encode(header, payload, key.key)


def mint(key: SigningKey, **overrides: Any) -> str:
    return sign(key, claims(**overrides))


def unsigned_token(payload: dict[str, Any], kid: str) -> str:
    """``alg: none``: a header, a payload and an empty signature."""
    header = {"alg": "none", "typ": "JWT", "kid": kid}
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}."


def hs256_with_public_key(key: SigningKey, payload: dict[str, Any]) -> str:
    """The algorithm-confusion attack: HMAC keyed with the RSA public key."""
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    secret = key.key.as_pem(private=False)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tamper_payload(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(changes)
    return f"{header}.{b64url(json.dumps(data).encode())}.{signature}"


def tamper_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{header}.{payload}.{b64url(bytes(raw))}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
