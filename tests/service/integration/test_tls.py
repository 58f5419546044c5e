"""TLS 1.3 only, mTLS at the handshake, and client SANs from the forwarded header (§4)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

import httpx
import pytest

from cap_ops.devkit.pki import PKI
from cap_ops.devkit.service import ServiceProcess
from cap_ops.devkit.tokens import bearer
from support.metrics import scrape, value

ALLOWED_SAN = "client.cap.test"


def handshake(port: int, context: ssl.SSLContext) -> str:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return str(tls.version())


def client_context(pki: PKI, *, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    if maximum is not None:
        context.maximum_version = maximum
    return context


@pytest.mark.orr("2.2-01", "5.3-05")
def test_tls_1_2_is_refused(verifier: ServiceProcess, pki: PKI) -> None:
    with pytest.raises(ssl.SSLError):
        handshake(verifier.port, client_context(pki, maximum=ssl.TLSVersion.TLSv1_2))


@pytest.mark.orr("2.2-01", "5.3-07")
def test_tls_1_3_is_accepted(verifier: ServiceProcess, pki: PKI) -> None:
    assert handshake(verifier.port, client_context(pki)) == "TLSv1.3"


@pytest.fixture(scope="module")
def mtls_verifier(make_service: Callable[..., ServiceProcess], pki: PKI) -> ServiceProcess:
    service = make_service(
        tls={
            "client_ca": str(pki.ca_cert),
            "require_mtls": True,
            "allowed_client_sans": [ALLOWED_SAN, "*.partners.cap.test"],
            "trusted_proxies": ["127.0.0.1/32"],
        }
    )
    service.client_cert = (str(pki.client.cert), str(pki.client.key))
    service.migrate()
    service.start()
    return service


def _mtls_client(service: ServiceProcess, pki: PKI) -> httpx.Client:
    return service.client(cert=(str(pki.client.cert), str(pki.client.key)))


def test_mtls_without_client_certificate_is_refused(
    mtls_verifier: ServiceProcess, pki: PKI
) -> None:
    anonymous = httpx.Client(base_url=mtls_verifier.url, verify=client_context(pki))
    with pytest.raises(httpx.TransportError), anonymous as client:
        client.get("/healthz")


def test_mtls_with_certificate_from_another_ca_is_refused(
    mtls_verifier: ServiceProcess, pki: PKI
) -> None:
    foreign = (str(pki.foreign_client.cert), str(pki.foreign_client.key))
    with pytest.raises(httpx.TransportError), mtls_verifier.client(cert=foreign) as client:
        client.get("/healthz")


@pytest.mark.orr("2.2-08")
def test_mtls_with_our_certificate_is_served(
    mtls_verifier: ServiceProcess, pki: PKI, token: Callable[..., str]
) -> None:
    with _mtls_client(mtls_verifier, pki) as client:
        response = client.get("/policy/v2/unknown", headers=bearer(token()))
    assert response.status_code == 404


@pytest.mark.orr("2.2-07")
@pytest.mark.parametrize("san", ["evil.example.com", "partners.cap.test", "client.cap.test.evil"])
def test_forwarded_san_outside_allow_list_is_403(
    mtls_verifier: ServiceProcess, pki: PKI, token: Callable[..., str], san: str
) -> None:
    xfcc = f'Hash=abc;Subject="CN=x";DNS={san}'
    with _mtls_client(mtls_verifier, pki) as client:
        before = value(scrape(client), "cap_verifier_auth_failures_total", reason="client_cert")
        response = client.get(
            "/policy/v2/unknown",
            headers={**bearer(token()), "X-Forwarded-Client-Cert": xfcc},
        )
        after = value(scrape(client), "cap_verifier_auth_failures_total", reason="client_cert")
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert after == before + 1


@pytest.mark.orr("2.2-07")
@pytest.mark.parametrize("san", [ALLOWED_SAN, "api.partners.cap.test"])
def test_forwarded_allowed_san_is_served(
    mtls_verifier: ServiceProcess, pki: PKI, token: Callable[..., str], san: str
) -> None:
    xfcc = f'By=spiffe://gw;Hash=abc;Subject="CN=a, O=b";DNS=other.example;DNS={san}'
    with _mtls_client(mtls_verifier, pki) as client:
        response = client.get(
            "/policy/v2/unknown",
            headers={**bearer(token()), "X-Forwarded-Client-Cert": xfcc},
        )
    assert response.status_code == 404


def test_forwarded_header_from_untrusted_peer_is_ignored(
    make_service: Callable[..., ServiceProcess], pki: PKI, token: Callable[..., str]
) -> None:
    service = make_service(
        tls={
            "client_ca": str(pki.ca_cert),
            "require_mtls": True,
            "allowed_client_sans": [ALLOWED_SAN],
            "trusted_proxies": ["192.0.2.10/32"],
        }
    )
    service.client_cert = (str(pki.client.cert), str(pki.client.key))
    service.migrate()
    service.start()
    try:
        with _mtls_client(service, pki) as client:
            response = client.get(
                "/policy/v2/unknown",
                headers={**bearer(token()), "X-Forwarded-Client-Cert": "DNS=evil.example.com"},
            )
        assert response.status_code == 404
    finally:
        service.stop()


def test_behind_gateway_a_request_without_forwarded_certificate_is_403(
    make_service: Callable[..., ServiceProcess], token: Callable[..., str]
) -> None:
    """TLS ends at the gateway: the service demands the gateway's XFCC header."""
    service = make_service(
        tls={
            "enabled": False,
            "require_mtls": True,
            "allowed_client_sans": [ALLOWED_SAN],
            "trusted_proxies": ["127.0.0.1/32"],
        }
    )
    service.migrate()
    service.start()
    try:
        with service.client() as client:
            missing = client.get("/policy/v2/unknown", headers=bearer(token()))
            allowed = client.get(
                "/policy/v2/unknown",
                headers={**bearer(token()), "X-Forwarded-Client-Cert": f"DNS={ALLOWED_SAN}"},
            )
        assert missing.status_code == 403
        assert allowed.status_code == 404
    finally:
        service.stop()
