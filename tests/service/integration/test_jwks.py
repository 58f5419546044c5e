"""JWKS caching against the real development IdP: stale-if-error and key rotation (§4)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cap_ops.devkit.pki import PKI
from cap_ops.devkit.service import ServiceProcess
from cap_ops.devkit.tokens import bearer
from cap_ops.poll import wait_until
from support.idp import IdPProcess
from support.metrics import scrape, value

PROTECTED = "/policy/v2/not-stored"  # 404 once authenticated


@pytest.fixture
def idp(tmp_path: Path, pki: PKI) -> Iterator[IdPProcess]:
    provider = IdPProcess(tmp_path, pki)
    provider.start()
    yield provider
    provider.stop()


def _verifier(
    make_service: Callable[..., ServiceProcess], idp: IdPProcess, **oauth2: float
) -> ServiceProcess:
    service = make_service(
        oauth2={
            "issuer": idp.issuer,
            "audience": "cap-verifier",
            "jwks_url": idp.jwks_url,
            **oauth2,
        }
    )
    service.migrate()
    service.start()
    return service


@pytest.mark.slow
def test_idp_stopped_tokens_keep_validating_until_max_stale(
    make_service: Callable[..., ServiceProcess], idp: IdPProcess
) -> None:
    service = _verifier(
        make_service, idp, jwks_cache_ttl=1, jwks_max_stale=5, jwks_refetch_interval=0.5
    )
    token = idp.token()
    try:
        with service.client(headers=bearer(token)) as client:
            assert client.get(PROTECTED).status_code == 404
            idp.stop()
            stopped_at = time.monotonic()
            time.sleep(1.5)  # past the cache TTL: the refetch fails, the stale keys serve
            assert client.get(PROTECTED).status_code == 404
            assert client.get("/readyz").status_code == 200
            samples = scrape(client)
            assert value(samples, "cap_verifier_jwks_refreshes_total", outcome="error") >= 1
            assert value(samples, "cap_verifier_jwks_age_seconds") >= 1
            wait_until(lambda: client.get(PROTECTED).status_code == 401, 10, "max stale to pass")
            assert time.monotonic() - stopped_at >= 3.5  # not refused before max_stale
            assert client.get("/readyz").status_code == 503
            idp.start()
            wait_until(lambda: client.get(PROTECTED).status_code == 404, 10, "keys to return")
    finally:
        service.stop()


def test_rotated_signing_key_is_accepted_after_one_refetch(
    make_service: Callable[..., ServiceProcess], idp: IdPProcess
) -> None:
    service = _verifier(make_service, idp)
    old_token = idp.token()
    try:
        with service.client() as client:
            assert client.get(PROTECTED, headers=bearer(old_token)).status_code == 404
            before = value(scrape(client), "cap_verifier_jwks_refreshes_total", outcome="success")
            idp.cli("rotate-key")
            new_token = idp.token()
            assert client.get(PROTECTED, headers=bearer(new_token)).status_code == 404
            assert client.get(PROTECTED, headers=bearer(new_token)).status_code == 404
            after = value(scrape(client), "cap_verifier_jwks_refreshes_total", outcome="success")
            assert after == before + 1
            # The previous key stays published: tokens issued before the rotation still pass.
            assert client.get(PROTECTED, headers=bearer(old_token)).status_code == 404
    finally:
        service.stop()
