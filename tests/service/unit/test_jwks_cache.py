"""JWKSCache timing rules with a controlled clock and a real HTTPS key server (§4)."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from cap_ops.devkit.jwks_server import JWKSServer
from cap_ops.devkit.pki import PKI
from cap_ops.devkit.tokens import SigningKey, jwks_document
from cap_verifier.auth.jwks import JWKSCache, JWKSError, parse_jwks
from cap_verifier.metrics import Metrics
from cap_verifier.settings import OAuth2Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server(pki: PKI, signing_key: SigningKey) -> Iterator[JWKSServer]:
    srv = JWKSServer(pki.server.cert, pki.server.key, jwks_document(signing_key))
    srv.start()
    yield srv
    srv.stop()


def make_cache(server: JWKSServer, pki: PKI, clock: Clock) -> JWKSCache:
    settings = OAuth2Settings(
        issuer="https://idp.cap.test",
        audience="cap-verifier",
        jwks_url=server.url,
        jwks_ca_file=str(pki.ca_cert),
        jwks_cache_ttl=600,
        jwks_max_stale=3600,
        jwks_refetch_interval=30,
    )
    return JWKSCache(settings, Metrics("test"), clock=clock)


@pytest.mark.orr("2.1-08")
def test_keys_are_cached_for_the_ttl(server: JWKSServer, pki: PKI, signing_key: SigningKey) -> None:
    clock = Clock()
    cache = make_cache(server, pki, clock)

    async def go() -> None:
        assert await cache.key(signing_key.kid) is not None
        clock.now += 599
        assert await cache.key(signing_key.kid) is not None
        assert server.requests == 1
        clock.now += 2
        assert await cache.key(signing_key.kid) is not None
        assert server.requests == 2
        await cache.aclose()

    anyio.run(go)


def test_unknown_kid_refetches_at_most_once_per_interval(
    server: JWKSServer, pki: PKI, signing_key: SigningKey
) -> None:
    clock = Clock()
    cache = make_cache(server, pki, clock)
    rotated = SigningKey()

    async def go() -> None:
        assert await cache.key(signing_key.kid) is not None  # fetch 1
        for _ in range(5):
            assert await cache.key("forged-kid") is None
        assert server.requests == 2  # one refetch for the unknown kid, not five
        server.document = jwks_document(signing_key, rotated)
        assert await cache.key(rotated.kid) is None  # within 30 s of the last refetch
        clock.now += 30
        assert await cache.key(rotated.kid) is not None  # one more refetch finds it
        assert server.requests == 3
        await cache.aclose()

    anyio.run(go)


def test_stale_if_error_until_max_stale(
    server: JWKSServer, pki: PKI, signing_key: SigningKey
) -> None:
    clock = Clock()
    cache = make_cache(server, pki, clock)

    async def go() -> None:
        assert await cache.key(signing_key.kid) is not None
        server.stop()
        clock.now += 601  # expired: the refetch fails, the stale set still serves
        assert await cache.key(signing_key.kid) is not None
        assert cache.usable()
        clock.now += 3000  # 3601 s old: past max stale
        assert await cache.key(signing_key.kid) is None
        assert not cache.usable()
        await cache.aclose()

    anyio.run(go)


def test_never_loaded_is_not_usable() -> None:
    settings = OAuth2Settings(
        issuer="https://i", audience="a", jwks_url="https://127.0.0.1:9/jwks", jwks_timeout=1
    )
    cache = JWKSCache(settings, Metrics("test"), clock=Clock())

    async def go() -> None:
        assert await cache.key("any") is None
        assert not cache.ever_loaded
        assert not cache.usable()
        await cache.aclose()

    anyio.run(go)


@pytest.mark.parametrize(
    "document",
    [{}, {"keys": "x"}, {"keys": []}, {"keys": [{"kty": "EC", "kid": "a"}]}, [1]],
)
def test_a_jwks_without_rsa_signing_keys_is_refused(document: object) -> None:
    with pytest.raises(JWKSError):
        parse_jwks(document)


def test_private_key_material_is_never_accepted(signing_key: SigningKey) -> None:
    private = signing_key.key.as_dict(private=True)
    private["kid"] = "p"
    with pytest.raises(JWKSError):
        parse_jwks({"keys": [private]})
