"""The contract through the HTTP API: golden vectors, ETags, and every 4xx row of §1."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from cap_ops.devkit.service import ServiceProcess
from cap_ops.devkit.tokens import bearer
from cap_verifier import __version__
from cap_verifier.registry import Registry
from support.vectors import (
    LKSG_IR_HASH,
    LKSG_JSON,
    LKSG_POLICY_HASH,
    PROOF_HASH,
    V1_HASH,
    V1_POLICY,
    VERIFY_CONTEXT,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def api(verifier: ServiceProcess, token: Callable[..., str]) -> Iterator[httpx.Client]:
    client = verifier.client(headers=bearer(token()))
    yield client
    client.close()


@pytest.fixture
def stored_v2(api: httpx.Client, lksg_policy_yaml: str) -> dict[str, Any]:
    response = api.post(
        "/policy/v2/compile", json={"policy_yaml": b64(lksg_policy_yaml), "persist": True}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = dict(response.json())
    assert body["status"] == status
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


# --- golden vectors ---------------------------------------------------------------------


@pytest.mark.orr("5.1-07")
def test_v1_compile_golden_hash_and_idempotence(api: httpx.Client) -> None:
    first = api.post("/policy/compile", json={"policy": V1_POLICY})
    second = api.post("/policy/compile", json={"policy": V1_POLICY})
    assert first.status_code == second.status_code == 200
    body = first.json()
    assert body["policy_hash"] == V1_HASH
    assert body["status"] == "compiled"
    assert body["metadata"]["hash"] == V1_HASH
    assert body["metadata"]["status"] == "active"
    assert second.json()["policy_id"] == body["policy_id"]


@pytest.mark.orr("5.1-09")
def test_v1_get_by_id_and_by_hash(api: httpx.Client) -> None:
    policy_id = api.post("/policy/compile", json={"policy": V1_POLICY}).json()["policy_id"]
    by_id = api.get(f"/policy/{policy_id}")
    by_hash = api.get(f"/policy/{V1_HASH.upper().replace('0X', '0x')}")
    assert by_id.status_code == by_hash.status_code == 200
    assert by_id.json() == by_hash.json()
    assert by_id.json()["policy"]["name"] == V1_POLICY["name"]
    assert by_id.json()["metadata"]["id"] == policy_id


def test_v2_compile_golden_hashes_yaml_and_json(api: httpx.Client, lksg_policy_yaml: str) -> None:
    from_yaml = api.post("/policy/v2/compile", json={"policy_yaml": b64(lksg_policy_yaml)})
    from_json = api.post("/policy/v2/compile", json={"policy": LKSG_JSON})
    for response in (from_yaml, from_json):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["policy_hash"] == LKSG_POLICY_HASH
        assert body["ir_hash"] == LKSG_IR_HASH
        assert body["lints"] == []
        assert body["stored"] is False
        assert body["etag"] == f'"ir:{LKSG_IR_HASH}"'
        assert response.headers["etag"] == body["etag"]
    assert from_yaml.json()["ir"] == from_json.json()["ir"]


def test_v2_get_etag_and_conditional_requests(api: httpx.Client, stored_v2: dict[str, Any]) -> None:
    response = api.get("/policy/v2/lksg.v1")
    assert response.status_code == 200
    etag = response.headers["etag"]
    assert etag == f'"ir:{LKSG_IR_HASH}"'
    assert response.headers["cache-control"] == "private, max-age=3600"
    assert response.json()["ir"] == stored_v2["ir"]
    for header in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        conditional = api.get("/policy/v2/lksg.v1", headers={"If-None-Match": header})
        assert conditional.status_code == 304, header
        assert conditional.headers["etag"] == etag
    assert api.get("/policy/v2/lksg.v1", headers={"If-None-Match": '"ir:x"'}).status_code == 200


def test_verify_golden_proof_hash_by_policy_id_and_embedded(
    api: httpx.Client, stored_v2: dict[str, Any]
) -> None:
    by_id = api.post("/verify", json={"policy_id": "lksg.v1", "context": VERIFY_CONTEXT})
    embedded = api.post("/verify", json={"ir": stored_v2["ir"], "context": VERIFY_CONTEXT})
    for response, mode in ((by_id, "policy_id"), (embedded, "embedded_ir")):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["proof_hash"] == PROOF_HASH
        assert body["result"] == "WARN"  # the sanctions list is not disclosed
        assert body["trace"]["mode"] == mode
        assert body["report"]["ir_hash"] == LKSG_IR_HASH
        assert body["report"]["rules"][0]["status"] == "unknown"


@pytest.mark.usefixtures("stored_v2")
def test_verify_fail_and_ok_with_disclosed_list(api: httpx.Client) -> None:
    from blake3 import blake3

    listed = ["0x" + "11" * 32, "0x" + "44" * 32]
    root = "0x" + blake3("".join(listed).encode()).hexdigest()
    clean = ["0x" + "55" * 32]
    clean_root = "0x" + blake3("".join(clean).encode()).hexdigest()
    fail = api.post(
        "/verify",
        json={
            "policy_id": "lksg.v1",
            "context": {**VERIFY_CONTEXT, "sanctions_root": root, "lists": {root: listed}},
        },
    )
    ok = api.post(
        "/verify",
        json={
            "policy_id": "lksg.v1",
            "context": {
                **VERIFY_CONTEXT,
                "sanctions_root": clean_root,
                "lists": {clean_root: clean},
            },
        },
    )
    assert fail.json()["result"] == "FAIL"
    assert ok.json()["result"] == "OK"
    assert ok.json()["report"]["checks_passed"] == 1


@pytest.mark.orr("7.1-03")
@pytest.mark.usefixtures("stored_v2")
def test_verification_is_audited_without_context(
    verifier: ServiceProcess, api: httpx.Client
) -> None:
    response = api.post(
        "/verify",
        json={"policy_id": "lksg.v1", "context": VERIFY_CONTEXT},
        headers={"X-Request-ID": "audit-check-1"},
    )
    assert response.headers["x-request-id"] == "audit-check-1"
    registry = Registry(verifier.config["registry"]["url"])
    try:
        records = [r for r in registry.list_verifications(100) if r.request_id == "audit-check-1"]
    finally:
        registry.close()
    assert len(records) == 1
    record = records[0]
    assert record.client_id == "test-client"
    assert record.verdict == "WARN"
    assert record.proof_hash == PROOF_HASH
    assert "11" * 32 not in repr(record)  # hashes of the result only, never the context


@pytest.mark.parametrize(
    "sent",
    ["abc-123-xyz", "4a1c9e0f-7b7d-4f53-9d7e-2b6c1a0c9f11", "trace.2026-11-30_a"],
)
def test_a_sane_request_id_is_echoed(verifier: ServiceProcess, sent: str) -> None:
    with verifier.client() as client:
        echoed = client.get("/healthz", headers={"X-Request-ID": sent})
    assert echoed.headers["x-request-id"] == sent


@pytest.mark.parametrize(
    "sent",
    [
        "x" * 65,  # too long
        "abc12",  # too short
        "+49 170 1234567",  # a phone number
        "004917012345678",  # a phone number without punctuation: no letter
        "jane.doe@example.com",  # an e-mail address
        "id/with:colons",
    ],
)
def test_any_other_request_id_is_replaced(verifier: ServiceProcess, sent: str) -> None:
    with verifier.client() as client:
        replaced = client.get("/healthz", headers={"X-Request-ID": sent})
        unknown_route = client.get("/nope")
    generated = replaced.headers["x-request-id"]
    assert generated != sent
    assert uuid.UUID(generated).version == 4
    assert unknown_route.headers["x-request-id"]
    assert_problem(unknown_route, 404)


@pytest.mark.orr("5.1-01", "5.1-02", "5.1-03")
def test_health_and_readiness(verifier: ServiceProcess) -> None:
    with verifier.client() as client:
        health = client.get("/healthz").json()
        ready = client.get("/readyz")
    assert health["status"] == "OK"
    assert health["version"] == __version__
    assert "build" in health
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "OK",
        "checks": [{"name": "registry", "status": "OK"}, {"name": "jwks", "status": "OK"}],
    }


# --- every 4xx row of the status table ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/policy/v2/compile", {"policy_yaml": "!!not base64!!"}),
        ("/policy/v2/compile", {"policy_yaml": b64("id: [unclosed")}),
        ("/policy/v2/compile", {"policy_yaml": b64("id: x"), "policy": {"id": "x"}}),
        ("/verify", {"policy_id": "lksg.v1", "context": {"supplier_hashes": ["0x1234"]}}),
        (
            "/verify",
            {"policy_id": "lksg.v1", "context": {"company_commitment_root": "sha3-256:zz"}},
        ),
        ("/verify", {"context": {"supplier_hashes": ["0x" + "11" * 32]}}),
        ("/verify", {"policy_id": "lksg.v1", "ir": {}, "context": {"supplier_hashes": []}}),
        ("/verify", {"policy_id": "lksg.v1", "context": {}}),
        (
            "/verify",
            {
                "policy_id": "lksg.v1",
                "context": {
                    "supplier_hashes": ["0x" + "11" * 32],
                    "lists": {"0x" + "ab" * 32: ["0x" + "11" * 32]},
                },
            },
        ),
    ],
    ids=[
        "bad base64",
        "unparsable YAML",
        "both policy_yaml and policy",
        "short hex",
        "bad sha3 ref",
        "neither policy_id nor ir",
        "both policy_id and ir",
        "no company input",
        "disclosed list root mismatch",
    ],
)
@pytest.mark.usefixtures("stored_v2")  # the policy exists: a 400 is the bad value's doing
def test_400_rows(api: httpx.Client, path: str, body: dict[str, Any]) -> None:
    assert_problem(api.post(path, json=body), 400)


def test_400_malformed_json(api: httpx.Client) -> None:
    response = api.post(
        "/verify", content=b'{"context": ', headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400)


def test_400_embedded_ir_hash_mismatch(api: httpx.Client, stored_v2: dict[str, Any]) -> None:
    ir = dict(stored_v2["ir"])
    ir["rules"] = [dict(ir["rules"][0], op="eq")]
    response = api.post("/verify", json={"ir": ir, "context": VERIFY_CONTEXT})
    assert_problem(response, 400)


def test_400_malformed_policy_hash_in_path(api: httpx.Client) -> None:
    assert_problem(api.get("/policy/0x1234"), 400)


@pytest.mark.orr("5.1-08")
@pytest.mark.parametrize(
    "path",
    [
        "/policy/00000000-0000-4000-8000-000000000000",
        "/policy/0x" + "ab" * 32,
        "/policy/not-a-uuid",
        "/policy/v2/unknown.policy",
    ],
)
def test_404_unknown_policy(api: httpx.Client, path: str) -> None:
    assert_problem(api.get(path), 404)


def test_404_verify_unknown_policy_id(api: httpx.Client) -> None:
    response = api.post("/verify", json={"policy_id": "nope", "context": VERIFY_CONTEXT})
    assert_problem(response, 404)


@pytest.mark.usefixtures("stored_v2")
def test_409_persist_same_id_other_hash_keeps_the_stored_policy(
    api: httpx.Client, lksg_policy_yaml: str
) -> None:
    changed = lksg_policy_yaml.replace("Minimal LkSG supplier check", "Changed description")
    response = api.post("/policy/v2/compile", json={"policy_yaml": b64(changed), "persist": True})
    assert_problem(response, 409)
    assert api.get("/policy/v2/lksg.v1").json()["policy_hash"] == LKSG_POLICY_HASH


def test_413_body_too_large(api: httpx.Client) -> None:
    big = {"policy": {"name": "x" * (1024 * 1024 + 10)}}
    assert_problem(api.post("/policy/compile", json=big), 413)


def test_415_not_json(api: httpx.Client) -> None:
    response = api.post("/verify", content=b"hello", headers={"Content-Type": "text/plain"})
    assert_problem(response, 415)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/verify", {"policy_id": "lksg.v1", "context": []}),
        ("/verify", {"policy_id": "lksg.v1", "context": {"supplier_hashes": "0x11"}}),
        ("/verify", {"policy_id": "lksg.v1", "context": VERIFY_CONTEXT, "backend": "zk"}),
        ("/policy/compile", {"policy": {**V1_POLICY, "version": "v1"}}),
        ("/policy/compile", {"policy": {k: v for k, v in V1_POLICY.items() if k != "name"}}),
        ("/policy/compile", [1, 2]),
        ("/policy/v2/compile", {"policy": {"id": "Bad Id!"}}),
    ],
    ids=[
        "context array",
        "hash list a string",
        "unknown backend",
        "v1 bad version",
        "v1 no name",
        "array body",
        "v2 bad id",
    ],
)
def test_422_wrong_shape(api: httpx.Client, path: str, body: Any) -> None:
    assert_problem(api.post(path, json=body), 422)


def test_422_lint_errors_return_the_compile_body_and_store_nothing(
    api: httpx.Client, lksg_policy_yaml: str
) -> None:
    broken = lksg_policy_yaml.replace("id: lksg.v1", "id: lksg.broken").replace(
        "op: non_membership", "op: subset"
    )
    response = api.post("/policy/v2/compile", json={"policy_yaml": b64(broken), "persist": True})
    body = assert_problem(response, 422)
    assert [lint["code"] for lint in body["lints"]] == ["E2001"]
    assert body["stored"] is False
    assert api.get("/policy/v2/lksg.broken").status_code == 404


def test_200_with_warnings_only(api: httpx.Client, lksg_policy_yaml: str) -> None:
    warned = lksg_policy_yaml.replace(
        'description: "Minimal LkSG supplier check"', 'description: ""'
    )
    response = api.post("/policy/v2/compile", json={"policy_yaml": b64(warned)})
    assert response.status_code == 200
    assert [lint["code"] for lint in response.json()["lints"]] == ["W1002"]


def test_429_rate_limit_with_retry_after(
    make_service: Callable[..., ServiceProcess], token: Callable[..., str]
) -> None:
    service = make_service(limits={"rate_limit": {"requests": 3, "per": "minute"}})
    service.migrate()
    service.start()
    try:
        with service.client(headers=bearer(token())) as client:
            statuses = [client.get("/policy/v2/unknown").status_code for _ in range(4)]
            limited = client.get("/policy/v2/unknown")
            health = client.get("/healthz")
        assert statuses[:3] == [404, 404, 404]
        assert_problem(limited, 429)
        assert int(limited.headers["retry-after"]) >= 0
        assert health.status_code == 200  # probes are never rate limited
    finally:
        service.stop()


def test_options_lists_methods_without_a_token(verifier: ServiceProcess) -> None:
    with verifier.client() as client:
        response = client.options("/verify")
    assert response.status_code in (200, 204)
    assert "POST" in response.headers["allow"]
