"""The identity provider's signing keys, fetched over HTTPS and cached (contract §4).

- the key set is reused for ``jwks_cache_ttl`` seconds, then fetched again;
- a token naming an unknown ``kid`` triggers a refetch, at most once per
  ``jwks_refetch_interval`` seconds (so forged kids cannot hammer the provider);
- when the provider is unreachable the last good key set keeps serving (stale-if-error)
  until it is ``jwks_max_stale`` seconds old; after that no key is served.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from cap_verifier.metrics import Metrics
from cap_verifier.settings import OAuth2Settings

log = logging.getLogger("cap_verifier.jwks")


class JWKSError(Exception):
    """The key set could not be fetched or read."""


def parse_jwks(document: Any) -> dict[str, RSAKey]:
    """RSA signing keys of a JWKS document by ``kid``; keys without a kid are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JWKSError("JWKS document has no 'keys' list")
    keys: dict[str, RSAKey] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or "d" in entry:
            continue
        if entry.get("use", "sig") != "sig" or not isinstance(entry.get("kid"), str):
            continue
        try:
            keys[entry["kid"]] = RSAKey.import_key(entry)
        except (JoseError, ValueError, TypeError):
            log.warning("skipping an unreadable key in the JWKS", extra={"event": "jwks_bad_key"})
    if not keys:
        raise JWKSError("JWKS document holds no RSA signing key")
    return keys


class JWKSCache:
    """Keys by kid, with TTL, rate-limited refetch on unknown kid and stale-if-error."""

    def __init__(
        self,
        settings: OAuth2Settings,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._keys: dict[str, RSAKey] = {}
        self._fetched_at: float | None = None  # clock() of the last good fetch
        self._last_attempt: float | None = None
        self._last_kid_refetch: float | None = None
        self._lock = asyncio.Lock()
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            verify: ssl.SSLContext | bool = True
            if self._settings.jwks_ca_file:
                verify = ssl.create_default_context(cafile=self._settings.jwks_ca_file)
            self._client = httpx.AsyncClient(
                verify=verify,
                timeout=self._settings.jwks_timeout,
                follow_redirects=False,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def ever_loaded(self) -> bool:
        return self._fetched_at is not None

    def age(self) -> float | None:
        """Seconds since the last good fetch, or None if none succeeded."""
        return None if self._fetched_at is None else self._clock() - self._fetched_at

    def usable(self) -> bool:
        """True while the cached key set may still be used (fresh or within max stale)."""
        age = self.age()
        return age is not None and age <= self._settings.jwks_max_stale

    async def refresh(self) -> bool:
        """Fetch the key set now; True on success. Failures keep the old keys."""
        async with self._lock:
            return await self._fetch()

    async def _fetch(self) -> bool:
        self._last_attempt = self._clock()
        try:
            response = await self._http().get(self._settings.jwks_url)
            response.raise_for_status()
            keys = parse_jwks(response.json())
        except (httpx.HTTPError, ValueError, JWKSError) as exc:
            self._metrics.jwks_refreshes.labels(outcome="error").inc()
            log.warning(
                "JWKS fetch failed; keeping the last good key set",
                extra={"event": "jwks_refresh", "outcome": "error", "reason": type(exc).__name__},
            )
            return False
        self._keys = keys
        self._fetched_at = self._clock()
        self._metrics.jwks_refreshes.labels(outcome="success").inc()
        self._metrics.jwks_loaded_at.set(time.time())
        log.info("JWKS loaded", extra={"event": "jwks_refresh", "outcome": "success"})
        return True

    async def refresh_if_due(self) -> None:
        """Fetch now unless the provider was asked less than the refetch interval ago."""
        if self._may_retry():
            async with self._lock:
                if self._may_retry():
                    await self._fetch()

    def _expired(self) -> bool:
        age = self.age()
        return age is None or age >= self._settings.jwks_cache_ttl

    def _may_retry(self) -> bool:
        """Ask the provider at most once per refetch interval (it may be down)."""
        if self._last_attempt is None:
            return True
        return self._clock() - self._last_attempt >= self._settings.jwks_refetch_interval

    async def key(self, kid: str) -> RSAKey | None:
        """The key for ``kid``, fetching the key set when it is due; None when unknown."""
        if self._expired() and self._may_retry():
            async with self._lock:
                if self._expired() and self._may_retry():
                    await self._fetch()
        if kid not in self._keys and self._kid_refetch_allowed():
            async with self._lock:
                if kid not in self._keys and self._kid_refetch_allowed():
                    self._last_kid_refetch = self._clock()
                    await self._fetch()
        if not self.usable():
            return None
        return self._keys.get(kid)

    def _kid_refetch_allowed(self) -> bool:
        last = self._last_kid_refetch
        return last is None or self._clock() - last >= self._settings.jwks_refetch_interval
