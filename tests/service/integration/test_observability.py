"""Metrics of §6 (names, labels, several workers) and JSON logs of §7."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from service_logs import access_line, request_lines

from cap_ops.devkit.service import ServiceProcess
from cap_ops.devkit.tokens import bearer
from cap_verifier import __version__

CONTRACT_METRICS = {
    "cap_verifier_requests": ("counter", {"endpoint", "method", "code", "result"}),
    "cap_verifier_request_duration_seconds": ("histogram", {"endpoint", "method"}),
    "cap_verifier_verifications": ("counter", {"verdict"}),
    "cap_verifier_auth_failures": ("counter", {"reason"}),
    "cap_verifier_cache_hits": ("counter", set()),
    "cap_verifier_cache_misses": ("counter", set()),
    "cap_verifier_cache_entries": ("gauge", set()),
    "cap_verifier_cache_hit_ratio": ("gauge", set()),
    "cap_verifier_jwks_refreshes": ("counter", {"outcome"}),
    "cap_verifier_jwks_age_seconds": ("gauge", set()),
    "cap_verifier_build_info": ("gauge", {"version"}),
}


def families(client: httpx.Client) -> dict[str, object]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(response.text)}


@pytest.mark.orr("3.1-04", "3.1-05", "3.1-06", "3.1-07")
def test_every_contract_metric_with_its_type_and_labels(
    verifier: ServiceProcess, token: Callable[..., str]
) -> None:
    with verifier.client() as client:
        client.get("/policy/v2/lksg.none", headers=bearer(token()))
        found = families(client)
    for name, (kind, labels) in CONTRACT_METRICS.items():
        assert name in found, name
        family = found[name]
        assert family.type == kind, name  # type: ignore[attr-defined]
        for sample in family.samples:  # type: ignore[attr-defined]
            assert set(sample.labels) - {"le"} == labels, (name, sample.labels)


@pytest.mark.orr("3.1-05")
def test_histogram_buckets_and_route_templates(
    verifier: ServiceProcess, token: Callable[..., str]
) -> None:
    with verifier.client() as client:
        client.get("/policy/v2/some.policy.id", headers=bearer(token()))
        found = families(client)
    buckets = {
        float(s.labels["le"])
        for s in found["cap_verifier_request_duration_seconds"].samples  # type: ignore[attr-defined]
        if s.name.endswith("_bucket")
    }
    assert {0.005, 0.5, 1.0, 10.0} <= buckets
    endpoints = {
        s.labels["endpoint"]
        for s in found["cap_verifier_requests"].samples  # type: ignore[attr-defined]
    }
    assert "/policy/v2/{policy_id}" in endpoints
    assert not any("some.policy.id" in e for e in endpoints)
    build = found["cap_verifier_build_info"].samples  # type: ignore[attr-defined]
    assert [s.labels["version"] for s in build] == [__version__]


def _absent(service: ServiceProcess, bearer_token: str) -> int:
    with service.client() as client:
        return client.get("/policy/v2/absent", headers=bearer(bearer_token)).status_code


@pytest.mark.slow
@pytest.mark.orr("3.1-04")
def test_metrics_add_up_across_workers(
    make_service: Callable[..., ServiceProcess], token: Callable[..., str]
) -> None:
    service = make_service(server={"workers": 2})
    service.migrate()
    service.start()
    sent = 0

    def serving_pids() -> set[int]:
        return {
            line["pid"]
            for line in map(json.loads, service.logs().splitlines())
            if line.get("endpoint") == "/policy/v2/{policy_id}"
        }

    def burst() -> int:
        """Eight requests on eight connections at once: the workers race to accept them."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(pool.map(lambda _: _absent(service, token()), range(8)))
        assert codes == [404] * 8
        return len(codes)

    try:
        while len(serving_pids()) < 2 and sent < 800:
            sent += burst()
        assert len(serving_pids()) == 2, f"one worker served all {sent} requests"
        for _ in range(4):  # whichever worker answers the scrape sees every request
            with service.client() as client:
                found = families(client)
            counted = sum(
                s.value
                for s in found["cap_verifier_requests"].samples  # type: ignore[attr-defined]
                if s.name == "cap_verifier_requests_total"
                and s.labels["endpoint"] == "/policy/v2/{policy_id}"
                and s.labels["code"] == "404"
                and s.labels["result"] == "warn"
            )
            assert counted == sent
    finally:
        service.stop()


ACCESS_FIELDS = {"timestamp", "request_id", "client_id", "endpoint", "method", "status"}
CLIENT_SAN = "client.partners.cap.test"
# What Envoy forwards: the subject may name a person, so only the DNS SANs may be logged.
XFCC = f'Hash=abc;Subject="emailAddress=jane.doe@example.com,CN=x";DNS={CLIENT_SAN}'


def _get_with_certificate(client: httpx.Client, bearer_token: str, request_id: str) -> None:
    """An authenticated GET of an absent policy, with a forwarded client certificate (XFCC)."""
    client.get(
        "/policy/v2/absent",
        headers={
            **bearer(bearer_token),
            "X-Request-ID": request_id,
            "X-Forwarded-Client-Cert": XFCC,
        },
    )


@pytest.mark.orr("3.4-01", "3.4-02", "3.4-03", "7.1-01", "7.2-01")
def test_logs_are_json_with_request_ids_and_no_secrets(
    make_service: Callable[..., ServiceProcess], token: Callable[..., str]
) -> None:
    service = make_service(logging={"level": "INFO"}, tls={"trusted_proxies": ["127.0.0.1/32"]})
    service.migrate()
    service.start()
    secret_token = token()
    try:
        with service.client() as client:
            _get_with_certificate(client, secret_token, "log-test-1")
            client.post(
                "/verify",
                json={"policy_id": "absent", "context": {"supplier_hashes": ["0x" + "ab" * 32]}},
                headers={**bearer(secret_token), "X-Request-ID": "log-test-2"},
            )
            client.get("/healthz")
    finally:
        service.stop()
    lines = [json.loads(line) for line in service.logs().splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert {"timestamp", "level", "message", "request_id"} <= set(line)
        assert line["timestamp"].endswith("+00:00")
        assert line["level"] != "DEBUG"
    access = {line["request_id"]: line for line in lines if line.get("message") == "request"}
    for request_id in ("log-test-1", "log-test-2"):
        assert set(access[request_id]) >= ACCESS_FIELDS, access[request_id]
        assert access[request_id]["level"] == "INFO"  # the audit record of every API request
        assert isinstance(access[request_id]["duration_ms"], float)
    assert access["log-test-1"]["endpoint"] == "/policy/v2/{policy_id}"
    assert access["log-test-1"]["method"] == "GET"
    assert access["log-test-1"]["status"] == 404
    assert access["log-test-1"]["client_id"] == "test-client"
    assert access["log-test-1"]["client_san"] == CLIENT_SAN  # forwarded by a trusted proxy
    assert "client_san" not in access["log-test-2"]  # no certificate forwarded
    assert access["log-test-2"]["method"] == "POST"
    assert [line["outcome"] for line in lines if line.get("event") == "jwks_refresh"] == ["success"]
    text = service.logs()
    assert secret_token not in text
    assert secret_token.split(".")[2] not in text
    assert "ab" * 32 not in text
    assert "jane.doe@example.com" not in text  # the certificate subject of the XFCC header


@pytest.mark.orr("7.2-01")
def test_a_forwarded_certificate_from_an_untrusted_peer_is_not_logged(
    verifier: ServiceProcess, token: Callable[..., str]
) -> None:
    """The shared verifier trusts no proxy: anybody could send the header."""
    with verifier.client() as client:
        _get_with_certificate(client, token(), "untrusted-xfcc-1")
    line = access_line(request_lines(verifier, "untrusted-xfcc-1"))
    assert line["client_id"] == "test-client"
    assert "client_san" not in line
    assert CLIENT_SAN not in verifier.logs()
