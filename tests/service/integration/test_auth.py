"""The token attack matrix over a real TLS socket (contract §1, §4, §6)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from service_logs import access_line, request_lines

from cap_ops.devkit.service import ServiceProcess
from cap_ops.devkit.tokens import (
    SigningKey,
    bearer,
    claims,
    hs256_with_public_key,
    mint,
    sign,
    tamper_payload,
    tamper_signature,
    unsigned_token,
)
from cap_verifier.domain import IR
from support.metrics import scrape, value

PROTECTED = [
    ("POST", "/verify", "verify:run"),
    ("POST", "/policy/compile", "policy:compile"),
    ("POST", "/policy/v2/compile", "policy:compile"),
    ("GET", "/policy/00000000-0000-4000-8000-000000000000", "policy:read"),
    ("GET", "/policy/v2/unknown.policy", "policy:read"),
]


def forged_tokens(key: SigningKey) -> dict[str, tuple[str | None, str]]:
    """name → (Authorization header value or None, expected failure reason)."""
    good = mint(key)
    other_key = SigningKey()
    return {
        "no token": (None, "missing_token"),
        "not bearer": (f"Basic {good}", "missing_token"),
        "not a JWT": ("Bearer not.a-jwt", "invalid_token"),
        "garbage": ("Bearer abc", "invalid_token"),
        "expired": (f"Bearer {mint(key, lifetime=-120)}", "expired"),
        "nbf in the future": (f"Bearer {mint(key, not_before_offset=600)}", "invalid_token"),
        "wrong iss": (f"Bearer {mint(key, issuer='https://evil.test')}", "issuer"),
        "wrong aud": (f"Bearer {mint(key, audience='someone-else')}", "audience"),
        "unknown kid": (f"Bearer {sign(other_key, claims())}", "unknown_kid"),
        "alg none": (f"Bearer {unsigned_token(claims(), key.kid)}", "invalid_token"),
        "HS256 with the public key": (
            f"Bearer {hs256_with_public_key(key, claims())}",
            "invalid_token",
        ),
        "tampered payload": (
            f"Bearer {tamper_payload(good, scope='verify:run policy:compile policy:read')}",
            "invalid_token",
        ),
        "tampered signature": (f"Bearer {tamper_signature(good)}", "invalid_token"),
        "signed by another key under our kid": (
            f"Bearer {sign(other_key, claims(), kid=key.kid)}",
            "invalid_token",
        ),
    }


FORGED_CASES = [
    "no token",
    "not bearer",
    "not a JWT",
    "garbage",
    "expired",
    "nbf in the future",
    "wrong iss",
    "wrong aud",
    "unknown kid",
    "alg none",
    "HS256 with the public key",
    "tampered payload",
    "tampered signature",
    "signed by another key under our kid",
]


# The checklist lines a forged token proves when it is refused with 401.
FORGED_CASE_ORR = {
    "no token": ("5.1-04",),
    "not a JWT": ("5.3-01",),
    "garbage": ("5.3-01",),
    "expired": ("5.3-02",),
    "wrong iss": ("2.1-05",),
    "wrong aud": ("2.1-06",),
    "alg none": ("2.1-07",),
    "HS256 with the public key": ("2.1-07",),
    "tampered payload": ("5.3-04",),
    "tampered signature": ("5.3-04",),
    "signed by another key under our kid": ("5.3-04",),
}


def test_forged_case_list_is_complete(signing_key: SigningKey) -> None:
    assert sorted(forged_tokens(signing_key)) == sorted(FORGED_CASES)


@pytest.mark.orr("3.1-06")
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, marks=[pytest.mark.orr(*FORGED_CASE_ORR[case])])
        if case in FORGED_CASE_ORR
        else case
        for case in FORGED_CASES
    ],
)
def test_forged_or_missing_token_is_401_and_counted(
    verifier: ServiceProcess, signing_key: SigningKey, case: str
) -> None:
    header, reason = forged_tokens(signing_key)[case]
    headers = {"Authorization": header} if header else {}
    with verifier.client() as client:
        before = value(scrape(client), "cap_verifier_auth_failures_total", reason=reason)
        response = client.post("/verify", json={"policy_id": "x", "context": {}}, headers=headers)
        after = value(scrape(client), "cap_verifier_auth_failures_total", reason=reason)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    challenge = response.headers["www-authenticate"]
    if reason == "missing_token":
        assert challenge == "Bearer"
    else:
        assert challenge == 'Bearer error="invalid_token"'
    problem = response.json()
    assert problem["status"] == 401
    assert problem["request_id"] == response.headers["x-request-id"]
    assert after == before + 1, f"{case} not counted under reason={reason}"


@pytest.mark.orr("2.1-10", "2.1-11", "5.3-03")
@pytest.mark.parametrize(("method", "path", "scope"), PROTECTED)
def test_valid_token_without_the_scope_is_403(
    verifier: ServiceProcess, token: Callable[..., str], method: str, path: str, scope: str
) -> None:
    others = " ".join(
        s for s in ("verify:run", "policy:compile", "policy:read", "metrics:read") if s != scope
    )
    with verifier.client() as client:
        before = value(
            scrape(client), "cap_verifier_auth_failures_total", reason="insufficient_scope"
        )
        response = client.request(method, path, json={}, headers=bearer(token(scope=others)))
        after = value(
            scrape(client), "cap_verifier_auth_failures_total", reason="insufficient_scope"
        )
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        f'Bearer error="insufficient_scope", scope="{scope}"'
    )
    assert after == before + 1


@pytest.mark.orr("2.1-10")
@pytest.mark.parametrize(("method", "path", "scope"), PROTECTED)
def test_valid_token_with_the_scope_passes_auth(
    verifier: ServiceProcess, token: Callable[..., str], method: str, path: str, scope: str
) -> None:
    with verifier.client() as client:
        response = client.request(method, path, json={}, headers=bearer(token(scope=scope)))
    # Past authentication the request is judged on its content: never 401/403.
    assert response.status_code not in (401, 403), response.text


@pytest.mark.orr("5.1-05")
def test_valid_token_verifies_200(
    verifier: ServiceProcess, token: Callable[..., str], lksg_ir: IR
) -> None:
    body = {"ir": lksg_ir.to_json(), "context": {"supplier_hashes": ["0x" + "11" * 32]}}
    with verifier.client() as client:
        response = client.post("/verify", json=body, headers=bearer(token(scope="verify:run")))
    assert response.status_code == 200, response.text
    assert response.json()["result"] in ("OK", "WARN", "FAIL")


def test_token_lifetime_leeway(verifier: ServiceProcess, token: Callable[..., str]) -> None:
    """Within the 30 s leeway a just-expired token still passes; beyond it, it does not."""
    with verifier.client() as client:
        recent = client.get("/policy/v2/none", headers=bearer(token(lifetime=-10)))
        old = client.get("/policy/v2/none", headers=bearer(token(lifetime=-60)))
    assert recent.status_code == 404
    assert old.status_code == 401


# --- one log line per refusal (ORR 7.2) ----------------------------------------------------------

AUDITED_CLIENT = "audited-client"


def failure_cases(key: SigningKey) -> dict[str, tuple[str | None, str, str | None]]:
    """name → (bearer token or None, reason, client id the line must name or None).

    Each token names ``AUDITED_CLIENT`` as its subject: the line may name it only when the
    signature verified.
    """
    return {
        "no token": (None, "missing_token", None),
        "bad signature": (
            tamper_signature(mint(key, sub=AUDITED_CLIENT)),
            "invalid_token",
            None,
        ),
        "expired, signature verified": (
            mint(key, sub=AUDITED_CLIENT, lifetime=-120),
            "expired",
            AUDITED_CLIENT,
        ),
        "wrong scope": (
            mint(key, sub=AUDITED_CLIENT, scope="policy:read"),
            "insufficient_scope",
            AUDITED_CLIENT,
        ),
    }


@pytest.mark.orr("7.2-02", "7.2-03")
@pytest.mark.parametrize(
    "case", ["no token", "bad signature", "expired, signature verified", "wrong scope"]
)
def test_each_refusal_is_one_auth_failure_line_without_the_token(
    verifier: ServiceProcess, signing_key: SigningKey, case: str
) -> None:
    bearer_token, reason, client_id = failure_cases(signing_key)[case]
    request_id = f"auth-failure-{uuid.uuid4().hex}"
    headers = {"X-Request-ID": request_id} | (bearer(bearer_token) if bearer_token else {})
    with verifier.client() as client:
        response = client.post("/verify", json={"policy_id": "x", "context": {}}, headers=headers)
    assert response.status_code in (401, 403)

    lines = request_lines(verifier, request_id)
    (failure,) = [line for line in lines if line.get("event") == "auth_failure"]
    assert failure["level"] == "WARNING"
    assert failure["reason"] == reason
    assert failure.get("client_id") == client_id
    assert failure["endpoint"] == "/verify"
    assert access_line(lines).get("client_id") == client_id
    if client_id is None:  # an unverified subject is nobody's: it appears nowhere
        assert AUDITED_CLIENT not in json.dumps(lines)
    if bearer_token is not None:
        logs = verifier.logs()
        for part in (bearer_token, *bearer_token.split(".")):
            assert part not in logs
