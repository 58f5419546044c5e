"""The local environment's logs (issue 14): every line of a request found by its id with
`make logs`, one schema for the service and the IdP, failed authentications recorded, and no
personal data or secret in any file under .local/logs/ or in the audit table."""

from __future__ import annotations

import base64
import json
import sqlite3
import ssl
import subprocess
import uuid
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest

from cap_ops import logs
from cap_ops.localenv import supervisor
from cap_ops.localenv.layout import Layout
from cap_ops.poll import wait_until

pytestmark = pytest.mark.localenv

ROOT = Path(__file__).resolve().parents[2]
SERVICE_PROGRAMS = ("cap-verifier", "cap-dev-idp")
CORE = ("timestamp", "level", "message", "request_id")
EMAIL = "erika.mustermann@example.org"
PHONE = "+49 30 98765432"
IBAN = "DE02120300000000202051"
VERIFY_BODY = {"policy_id": "lksg.v1", "context": {"supplier_hashes": ["0x" + "22" * 32]}}


def _tls(env: dict[str, Any]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=env["ca_cert"])


def _token(env: dict[str, Any], client: str, request_id: str | None = None) -> str:
    entry = env["clients"][client]
    response = httpx.post(
        env["token_url"],
        data={"grant_type": "client_credentials"},
        auth=(entry["client_id"], entry["client_secret"]),
        headers={"X-Request-ID": request_id} if request_id else {},
        verify=_tls(env),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def make_logs(*selection: str) -> list[str]:
    """`make logs` as a person runs it; its printed lines."""
    result = subprocess.run(
        ["make", "-s", "logs", *selection], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode in (0, 1), result.stderr
    return result.stdout.splitlines()


def service_lines(layout: Layout) -> list[logs.Line]:
    files = logs.program_files(layout.logs)
    return [
        line for program in SERVICE_PROGRAMS for line in logs.read_program(program, files[program])
    ]


@pytest.mark.orr("3.4-09", "7.2-01")
def test_make_logs_finds_every_line_of_a_request_across_programs_in_time_order(
    local_env: dict[str, Any],
) -> None:
    request_id = f"orr-logs-{uuid.uuid4().hex[:12]}"
    token = _token(local_env, "verify", request_id)  # the IdP's line
    with httpx.Client(base_url=local_env["verifier_url"], verify=_tls(local_env)) as client:
        headers = {"X-Request-ID": request_id}
        refused = client.post("/verify", json=VERIFY_BODY, headers=headers)  # auth failure
        served = client.post(
            "/verify", json=VERIFY_BODY, headers={**headers, "Authorization": f"Bearer {token}"}
        )
    assert (refused.status_code, served.status_code) == (401, 200), served.text

    def found() -> list[str]:
        return make_logs(f"REQUEST_ID={request_id}")

    wait_until(lambda: len(found()) >= 4, 15, f"the lines of {request_id}", interval=0.3)
    printed = found()
    programs = [line.split(" ")[1] for line in printed]
    messages = [line.split(" ", 3)[3] for line in printed]
    assert programs == ["cap-dev-idp", "cap-verifier", "cap-verifier", "cap-verifier"], printed
    assert messages[0].startswith("token issued")
    assert messages[1].startswith("authentication failed")
    assert all(m.startswith("request ") for m in messages[2:]), messages
    stamps = [line.split(" ")[0] for line in printed]
    assert stamps == sorted(stamps)
    assert all(request_id in line for line in printed)
    assert token not in "\n".join(printed)


@pytest.mark.orr("3.4-01", "3.4-02")
def test_every_service_and_idp_line_is_json_with_the_core_fields(
    local_env: dict[str, Any], layout: Layout
) -> None:
    _token(local_env, "all")
    with httpx.Client(base_url=local_env["verifier_url"], verify=_tls(local_env)) as client:
        assert client.get("/healthz").status_code == 200
    checked = 0
    for program in SERVICE_PROGRAMS:
        # The lines of the running process (a developer's log may hold older versions' lines).
        started = supervisor.proxy(layout).supervisor.getProcessInfo(program)["start"]
        since = datetime.fromtimestamp(started - 1, UTC)
        for path in logs.program_files(layout.logs)[program]:
            for number, raw in enumerate(path.read_text().splitlines(), start=1):
                line = json.loads(raw)  # every line is one JSON object
                if logs.parse_line(program, 0, raw, since).time < since:
                    continue
                missing = [name for name in CORE if name not in line]
                assert not missing, f"{path.name}:{number} lacks {missing}"
                checked += 1
    assert checked > 0
    access = [
        line.fields
        for line in service_lines(layout)
        if line.message == "request" and line.fields.get("endpoint") and "timestamp" in line.fields
    ]
    assert {line["logger"] for line in access} >= {"cap_verifier.access", "cap_dev_idp.app"}
    for line in access:
        assert isinstance(line["duration_ms"], float), line
        assert line["duration_ms"] >= 0, line
        assert line["request_id"], line
        assert {"method", "endpoint", "status"} <= set(line), line


@pytest.mark.orr("7.2-02", "7.2-03")
def test_failed_authentications_are_recorded_with_reason_and_client_but_never_the_token(
    local_env: dict[str, Any], layout: Layout
) -> None:
    compile_only = _token(local_env, "compile")
    forged = compile_only[:-8] + ("A" * 8 if not compile_only.endswith("A" * 8) else "B" * 8)
    attempts = {
        "missing_token": {},
        "invalid_token": {"Authorization": f"Bearer {forged}"},
        "insufficient_scope": {"Authorization": f"Bearer {compile_only}"},
    }
    ids = {reason: f"orr-authfail-{uuid.uuid4().hex[:12]}" for reason in attempts}
    with httpx.Client(base_url=local_env["verifier_url"], verify=_tls(local_env)) as client:
        for reason, headers in attempts.items():
            response = client.post(
                "/verify", json=VERIFY_BODY, headers={**headers, "X-Request-ID": ids[reason]}
            )
            assert response.status_code in (401, 403), (reason, response.status_code)

    def failures() -> dict[str, dict[str, Any]]:
        return {
            str(line.request_id): line.fields
            for line in service_lines(layout)
            if line.fields.get("event") == "auth_failure" and line.request_id in ids.values()
        }

    wait_until(lambda: len(failures()) == len(ids), 15, "the auth_failure lines", interval=0.3)
    found = failures()
    compile_client = local_env["clients"]["compile"]["client_id"]
    for reason, request_id in ids.items():
        line = found[request_id]
        assert line["reason"] == reason, line
        assert line["level"] == "WARNING"
        # Known only from a token whose signature verified: the one lacking the scope.
        assert line.get("client_id") == (compile_client if reason == "insufficient_scope" else None)
    text = "\n".join(p.read_text() for p in layout.logs.iterdir() if p.is_file())
    for token in (compile_only, forged):
        assert not [part for part in token.split(".") if part in text], "a token reached the logs"


@pytest.mark.orr("3.4-03", "7.1-01", "7.1-03")
def test_personal_data_and_secrets_reach_no_local_log_and_no_audit_record(
    local_env: dict[str, Any], layout: Layout
) -> None:
    """E-mail, phone number, IBAN, bearer token and client secret in bodies, query strings and
    headers of requests to the verifier and the IdP, served and refused."""
    entry = local_env["clients"]["verify"]
    secret = entry["client_secret"]
    bearer = _token(local_env, "verify")
    carried = {"email": EMAIL, "phone": PHONE, "iban": IBAN, "client_secret": secret}
    headers = {
        "X-Contact": f"{EMAIL}; {PHONE}",
        "X-IBAN": IBAN,
        "X-Client-Secret": secret,
        "X-Forwarded-Token": bearer,
    }
    marker = f"orr-pii-{uuid.uuid4().hex[:12]}"
    basic = base64.b64encode(f"{EMAIL}:{secret}".encode()).decode()
    with httpx.Client(base_url=local_env["verifier_url"], verify=_tls(local_env)) as client:
        served = client.post(
            "/verify",
            params=carried,
            json={**VERIFY_BODY, "note": carried},
            headers={**headers, "Authorization": f"Bearer {bearer}", "X-Request-ID": marker},
        )
        refused = client.post(
            "/verify",
            params={"access_token": bearer, **carried},
            json=VERIFY_BODY,
            headers={**headers, "Authorization": f"Basic {basic}"},
        )
        unknown = client.get(f"/policy/v2/{quote(EMAIL)}", params=carried, headers=headers)
    assert served.status_code == 200, served.text
    assert refused.status_code == 401
    assert unknown.status_code in (400, 401, 404)
    idp = local_env["token_url"]
    for form in (
        {"grant_type": "client_credentials", "client_id": EMAIL, "client_secret": secret},
        {"grant_type": "client_credentials", "client_id": PHONE, "client_secret": IBAN},
    ):
        response = httpx.post(idp, data=form, headers=headers, verify=_tls(local_env))
        assert response.status_code in (400, 401)
    response = httpx.post(
        f"{idp}?{quote_plus(EMAIL)}={quote_plus(PHONE)}",
        data={"grant_type": "client_credentials", "scope": IBAN},
        auth=(entry["client_id"], secret),
        verify=_tls(local_env),
    )
    assert response.status_code in (200, 400)

    wait_until(lambda: bool(make_logs(f"REQUEST_ID={marker}")), 15, "the audited request's lines")
    forbidden = {
        "e-mail": EMAIL,
        "phone": PHONE,
        "phone (digits)": PHONE.replace(" ", ""),
        "IBAN": IBAN,
        "client secret": secret,
        "bearer token": bearer,
        **{f"token part {n}": part for n, part in enumerate(bearer.split("."))},
        "basic credentials": basic,
    }
    forbidden |= {f"{name} (URL-encoded)": quote_plus(v) for name, v in list(forbidden.items())}
    files = [p for p in layout.logs.rglob("*") if p.is_file()]
    texts = {p.name: p.read_text(errors="replace") for p in files}
    assert any(marker in text for text in texts.values()), "the requests left no line"
    leaks = [(n, file) for file, text in texts.items() for n, v in forbidden.items() if v in text]
    assert leaks == []
    audit = audit_rows(layout)
    assert marker in audit, "the served request was audited"
    assert [name for name, value in forbidden.items() if value in audit] == []


def audit_rows(layout: Layout) -> str:
    """The registry's verification audit table, read-only, as text."""
    # closing(): a sqlite3 connection's own context manager ends the transaction but leaves
    # the file open until garbage collection, and an open reader keeps the WAL (the restore
    # test then finds the registry in use).
    with closing(sqlite3.connect(f"file:{layout.registry_file}?mode=ro", uri=True)) as connection:
        rows = connection.execute("SELECT * FROM verifications").fetchall()
    return repr(rows)
