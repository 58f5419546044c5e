"""Hostile and broken clients, over real TLS sockets on 127.0.0.1: the service stays available,
answers 4xx with a problem body and a request id, and its metrics and logs stay honest.

Every loop is bounded in count and in time. The verifier here has short deadlines
(``server.head_timeout`` 2 s, ``server.body_timeout`` 3 s) so that waiting for them is cheap.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import select
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_logs import request_lines

from cap_ops.devkit.service import ServiceProcess
from cap_ops.devkit.tokens import bearer
from cap_ops.poll import wait_until
from cap_verifier.domain import IR
from cap_verifier.metrics import HTTP_METHODS, OTHER_METHOD
from cap_verifier.registry import Registry
from support.metrics import scrape, value
from support.require import need

HEAD_TIMEOUT = 2.0
BODY_TIMEOUT = 3.0
SILENT_CONNECTIONS = 1000
SLACK = 3.0  # seconds of scheduling slack on top of a deadline
DEEP = 10_000


@pytest.fixture(scope="module")
def hostile(make_service: Callable[..., ServiceProcess]) -> Iterator[ServiceProcess]:
    service = make_service(
        server={"head_timeout": HEAD_TIMEOUT, "body_timeout": BODY_TIMEOUT, "workers": 1}
    )
    service.migrate()
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="module", autouse=True)
def failures_before(hostile: ServiceProcess) -> float:
    """``requests_total{result="fail"}`` before any attack."""
    with hostile.client() as client:
        return _fails(client)


def _fails(client: httpx.Client) -> float:
    return sum(
        v
        for (name, labels), v in scrape(client).items()
        if name == "cap_verifier_requests_total" and ("result", "fail") in labels
    )


def _context(service: ServiceProcess) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(service.ca_cert))


def _connect(service: ServiceProcess) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", service.port), timeout=10)
    return _context(service).wrap_socket(raw, server_hostname="127.0.0.1")


def _exchange(service: ServiceProcess, request: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes over TLS, read until the server closes or ``timeout``."""
    with _connect(service) as conn:
        conn.sendall(request)
        return _read_all(conn, timeout)


def _read_all(conn: ssl.SSLSocket, timeout: float) -> bytes:
    conn.settimeout(timeout)
    chunks = []
    try:
        while chunk := conn.recv(65536):
            chunks.append(chunk)
            if _complete(b"".join(chunks)):
                break
    except (TimeoutError, ssl.SSLError, ConnectionResetError):
        pass
    return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, field = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(field.strip())
    return False


def _problem(response: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Status, headers and the problem document of a raw response."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    assert headers["content-type"] == "application/problem+json", headers
    document = json.loads(body)
    assert document["status"] == status
    assert document["request_id"] == headers["x-request-id"]
    return status, headers, document


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


# --- connections that say nothing -----------------------------------------------------------


@pytest.mark.slow
def test_silent_tls_connections_neither_starve_clients_nor_stay_open(
    hostile: ServiceProcess, failures_before: float
) -> None:
    """1,000 connections that complete the TLS handshake and never send a byte: a normal client
    is served throughout, and the server closes each within its head deadline."""
    _raise_fd_limit(2 * SILENT_CONNECTIONS + 256)
    silent: list[ssl.SSLSocket] = []
    opened_at: list[float] = []
    try:
        with hostile.client(timeout=2) as client:
            for i in range(SILENT_CONNECTIONS):
                silent.append(_connect(hostile))
                opened_at.append(time.monotonic())
                if i % 250 == 0:  # a client with a 2 s budget is served while they pile up
                    assert client.get("/healthz").status_code == 200
            assert client.get("/healthz").status_code == 200
            closed_at = _wait_closed(silent, deadline=opened_at[-1] + HEAD_TIMEOUT + SLACK)
        # A new connection: the pooled one has idled past the head deadline by now, and the
        # server closes it then (the next test), possibly just as a request is put on it.
        with hostile.client(timeout=2) as client:
            assert client.get("/healthz").status_code == 200
    finally:
        for conn in silent:
            conn.close()
    assert len(closed_at) == SILENT_CONNECTIONS, "silent connections left open"
    late = [i for i, at in closed_at.items() if at - opened_at[i] > HEAD_TIMEOUT + SLACK]
    assert late == [], f"{len(late)} closed later than the head deadline"


def test_an_idle_keep_alive_connection_is_closed_after_the_head_deadline(
    hostile: ServiceProcess,
) -> None:
    with _connect(hostile) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: verifier\r\n\r\n")
        assert _read_all(conn, 5).startswith(b"HTTP/1.1 200")
        answered = time.monotonic()
        closed = _wait_closed([conn], deadline=answered + HEAD_TIMEOUT + SLACK)
    assert list(closed) == [0], "an idle connection stayed open past the head deadline"


def _wait_closed(conns: list[ssl.SSLSocket], deadline: float) -> dict[int, float]:
    """When each connection was seen closed by the peer (EOF), until ``deadline``."""
    by_fd = {conn.fileno(): i for i, conn in enumerate(conns)}
    closed: dict[int, float] = {}
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLHUP)
    while len(closed) < len(conns) and time.monotonic() < deadline:
        for fd, _ in poller.poll(200):
            index = by_fd[fd]
            if index not in closed and _eof(conns[index]):
                closed[index] = time.monotonic()
                poller.unregister(fd)
    return closed


def _eof(conn: ssl.SSLSocket) -> bool:
    conn.setblocking(False)
    try:
        return conn.recv(1) == b""
    except ssl.SSLWantReadError:
        return False
    except OSError:
        return True


# --- bodies that do not arrive, and clients that leave ------------------------------------------


def test_half_a_body_then_silence_is_408_within_the_body_deadline(
    hostile: ServiceProcess, token: Callable[..., str]
) -> None:
    head = (
        "POST /verify HTTP/1.1\r\nHost: verifier\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token()}\r\nContent-Length: 200\r\n\r\n"
    )
    # Nothing but the 408 ends the wait before the deadline (plus slack) is over.
    response = _exchange(hostile, head.encode() + b'{"context": {', timeout=BODY_TIMEOUT + SLACK)
    status, headers, document = _problem(response)
    assert status == 408
    assert headers["connection"] == "close"
    assert f"within {BODY_TIMEOUT:g} s" in document["detail"]


def test_a_client_hanging_up_mid_body_is_its_own_abort_not_a_server_failure(
    hostile: ServiceProcess, token: Callable[..., str]
) -> None:
    head = (
        "POST /verify HTTP/1.1\r\nHost: verifier\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token()}\r\nContent-Length: 500\r\n\r\n"
    )
    with hostile.client() as client:
        before = value(
            scrape(client),
            "cap_verifier_requests_total",
            endpoint="/verify",
            method="POST",
            code="499",
            result="warn",
        )
        with _connect(hostile) as conn:
            conn.sendall(head.encode() + b'{"context": {"supplier_hashes": [')
            time.sleep(0.3)
        wait_until(
            lambda: (
                value(
                    scrape(client),
                    "cap_verifier_requests_total",
                    endpoint="/verify",
                    method="POST",
                    code="499",
                    result="warn",
                )
                > before
            ),
            10,
            "the abort to be counted",
        )
    aborted = [
        json.loads(line)
        for line in hostile.logs().splitlines()
        if '"client aborted"' in line or '"status": 499' in line
    ]
    assert aborted, "the abort is not logged"
    assert all(entry["level"] in ("INFO", "DEBUG") for entry in aborted)
    assert not [line for line in hostile.logs().splitlines() if '"level": "ERROR"' in line]


# --- bodies the decoder must not choke on --------------------------------------------------------

JSON_ENDPOINTS = ("/verify", "/policy/compile", "/policy/v2/compile")
TOO_DEEP = {
    "arrays": b"[" * DEEP + b"]" * DEEP,
    "objects": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "inside a valid envelope": b'{"context": {"variables": {"x": '
    + b"[" * DEEP
    + b"]" * DEEP
    + b"}}}",
}


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS)
@pytest.mark.parametrize("shape", sorted(TOO_DEEP))
def test_json_nested_ten_thousand_deep_is_400(
    hostile: ServiceProcess, token: Callable[..., str], endpoint: str, shape: str
) -> None:
    scope = "verify:run" if endpoint == "/verify" else "policy:compile"
    with hostile.client() as client:
        response = client.post(
            endpoint,
            content=TOO_DEEP[shape],
            headers={**bearer(token(scope=scope)), "Content-Type": "application/json"},
        )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "nest" in response.json()["detail"]


def _policy_with_deep_expr(depth: int) -> bytes:
    """A compile request whose one predicate nests ``depth`` calls (written as text: the
    client's own JSON encoder would recurse too)."""
    expr = '{"func":"eq","args":[' * depth + '{"func":"lt","args":[1,2]}' + ",true]}" * depth
    policy = (
        '{"id":"deep.expr","version":"1","legal_basis":[{"directive":"LkSG"}],'
        '"inputs":{"supplier_hashes":{"type":"array","items":"hex"}},'
        '"rules":[{"id":"r","op":"eq","lhs":1,"rhs":1}],'
        f'"adaptivity":{{"predicates":[{{"id":"p","expr":{expr}}}],'
        '"activations":[{"when":"p","rules":["r"]}]}}'
    )
    return f'{{"policy":{policy}}}'.encode()


def test_a_deep_policy_expression_is_refused(
    hostile: ServiceProcess, token: Callable[..., str]
) -> None:
    """Ten thousand calls deep, as JSON and as YAML."""
    headers = bearer(token(scope="policy:compile"))
    yaml_text = (
        "id: deep.yaml\nversion: '1'\nadaptivity:\n  predicates:\n    - id: p\n      expr: "
        + "[" * DEEP
        + "]" * DEEP
        + "\n"
    )
    with hostile.client() as client:
        as_json = client.post(
            "/policy/v2/compile",
            content=_policy_with_deep_expr(DEEP),
            headers={**headers, "Content-Type": "application/json"},
        )
        as_yaml = client.post(
            "/policy/v2/compile",
            json={"policy_yaml": base64.b64encode(yaml_text.encode()).decode()},
            headers=headers,
        )
    for response in (as_json, as_yaml):
        assert response.status_code in (400, 422), response.text
        assert response.headers["content-type"] == "application/problem+json"


def test_invalid_utf8_inside_a_json_string_is_400(
    hostile: ServiceProcess, token: Callable[..., str]
) -> None:
    with hostile.client() as client:
        response = client.post(
            "/verify",
            content=b'{"context": {"supplier_hashes": ["\xff\xfe"]}}',
            headers={**bearer(token()), "Content-Type": "application/json"},
        )
    assert response.status_code == 400
    assert "UTF-8" in response.json()["detail"]


# --- framing the server itself refuses ------------------------------------------------------------


def test_an_unknown_transfer_coding_is_refused(
    hostile: ServiceProcess, token: Callable[..., str]
) -> None:
    request = (
        "POST /verify HTTP/1.1\r\nHost: verifier\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token()}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        "2\r\n{}\r\n0\r\n\r\n"
    )
    status, _, document = _problem(_exchange(hostile, request.encode()))
    assert status == 400
    assert "transfer coding" in document["detail"]


def _target(length: int) -> bytes:
    return f"GET /healthz?{'a' * length} HTTP/1.1\r\nHost: verifier\r\n\r\n".encode()


def test_a_long_target_is_414_with_a_problem_and_a_request_id(hostile: ServiceProcess) -> None:
    status, _, document = _problem(_exchange(hostile, _target(9 * 1024)))
    assert status == 414
    assert "target" in document["detail"]


def test_a_64_kib_target_gets_the_http_layers_414(hostile: ServiceProcess) -> None:
    """Beyond the HTTP layer's own limit (64 KiB) the request never reaches the application:
    a bare 414 (documented in the README)."""
    assert _exchange(hostile, _target(65536)).startswith(b"HTTP/1.1 414")


def _with_headers(count: int) -> bytes:
    fields = "".join(f"X-Filler-{i}: {i}\r\n" for i in range(count))
    return f"GET /healthz HTTP/1.1\r\nHost: verifier\r\n{fields}\r\n".encode()


def test_too_many_headers_are_431_with_a_problem_and_a_request_id(
    hostile: ServiceProcess,
) -> None:
    status, _, document = _problem(_exchange(hostile, _with_headers(80)))
    assert status == 431
    assert "header fields" in document["detail"]


def test_two_hundred_headers_get_the_http_layers_431(hostile: ServiceProcess) -> None:
    """Beyond the HTTP layer's own limit of 100 fields the request never reaches the
    application: a bare 431 (documented in the README)."""
    assert _exchange(hostile, _with_headers(200)).startswith(b"HTTP/1.1 431")


def test_a_malformed_content_length_gets_the_http_layers_answer(hostile: ServiceProcess) -> None:
    """Below the application: the HTTP layer answers a framing error with a bare 400 and closes
    the connection (documented in the README); nothing reaches the counters."""
    response = _exchange(
        hostile, b"POST /verify HTTP/1.1\r\nHost: v\r\nContent-Length: twelve\r\n\r\n"
    )
    assert response.startswith(b"HTTP/1.1 400")


# --- logs hold no personal data -------------------------------------------------------------

PHONE = "+49 170 1234567"


@pytest.mark.orr("3.4-03", "7.1-01")
def test_personal_data_in_the_request_id_is_never_logged(
    hostile: ServiceProcess, token: Callable[..., str]
) -> None:
    sent = (PHONE, "00491701234567", "jane.doe@example.com")
    with hostile.client() as client:
        for request_id in sent:
            response = client.post(
                "/verify",
                json={"context": {}},
                headers={**bearer(token()), "X-Request-ID": request_id},
            )
            assert response.status_code == 400
            assert response.headers["x-request-id"] != request_id
            assert response.json()["request_id"] == response.headers["x-request-id"]
    logs = hostile.logs()
    assert [s for s in sent if s in logs] == []


EMAIL = "jane.doe@example.com"
IBAN = "DE89370400440532013000"
CLIENT_SECRET = "s3cr3t-Client-Secret-4711"


@pytest.mark.orr("3.4-03", "7.1-01")
def test_personal_data_and_secrets_in_requests_reach_neither_logs_nor_audit_table(
    hostile: ServiceProcess, token: Callable[..., str], lksg_ir: IR
) -> None:
    """E-mail, phone, IBAN, a bearer token and a client secret in query strings, headers and
    bodies, of requests that verify (and are audited) and of requests that are refused."""
    bearer_token = token(scope="verify:run")
    carried = {"email": EMAIL, "phone": PHONE, "iban": IBAN, "client_secret": CLIENT_SECRET}
    headers = {
        **bearer(bearer_token),
        "X-Contact": f"{EMAIL}, {PHONE}",
        "X-IBAN": IBAN,
        "X-Client-Secret": CLIENT_SECRET,
    }
    body = {"ir": lksg_ir.to_json(), "context": {"supplier_hashes": ["0x" + "11" * 32]}}
    basic = base64.b64encode(f"partner:{CLIENT_SECRET}".encode()).decode()
    with hostile.client() as client:
        audited = client.post(
            "/verify",
            params=carried,
            json=body,
            headers={**headers, "X-Request-ID": "pii-audited-1"},
        )
        extra_fields = client.post(  # unknown fields are ignored, and verified
            "/verify", params=carried, json={**body, **carried, "note": carried}, headers=headers
        )
        refused_auth = client.post(
            "/verify",
            params={"access_token": bearer_token, **carried},
            json=body,
            headers={"Authorization": f"Basic {basic}", "X-Request-ID": "pii-refused-1"},
        )
    assert audited.status_code == 200, audited.text
    assert extra_fields.status_code == 200, extra_fields.text
    assert refused_auth.status_code == 401
    request_lines(hostile, "pii-refused-1")  # every line of the three is written by now
    with Registry(hostile.config["registry"]["url"]) as registry:
        audit_table = repr(registry.list_verifications(limit=10_000))
    logs = hostile.logs()
    # The searches look where the requests left their traces:
    assert "pii-audited-1" in audit_table
    assert "pii-audited-1" in logs
    forbidden = [*carried.values(), "00491701234567", bearer_token, *bearer_token.split("."), basic]
    assert [s for s in forbidden if s in logs] == []
    assert [s for s in forbidden if s in audit_table] == []


# --- metrics stay bounded and honest -----------------------------------------------------------


def test_fifty_invented_methods_add_one_label_value(hostile: ServiceProcess) -> None:
    with hostile.client() as client:
        for i in range(50):
            client.request(f"METHOD{i}X", "/verify")
        samples = scrape(client)
    methods = {
        dict(labels).get("method")
        for (name, labels) in samples
        if name == "cap_verifier_requests_total"
    }
    assert OTHER_METHOD in methods
    assert methods <= HTTP_METHODS | {OTHER_METHOD}


def test_every_label_takes_values_from_a_bounded_set(hostile: ServiceProcess) -> None:
    """After the attacks above, every label of every family has only values the service
    defines: route templates, methods, status codes, results, reasons."""
    with hostile.client() as client:
        samples = scrape(client)
    seen: dict[str, set[str]] = {}
    for _, labels in samples:
        for label, label_value in labels:
            seen.setdefault(label, set()).add(label_value)
    assert seen["endpoint"] <= {
        "unmatched",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.yaml",
        "/verify",
        "/policy/compile",
        "/policy/{policy_ref}",
        "/policy/v2/compile",
        "/policy/v2/{policy_id}",
    }
    assert seen["method"] <= HTTP_METHODS | {OTHER_METHOD}
    assert all(code.isdigit() and 100 <= int(code) <= 599 for code in seen["code"])
    assert seen["result"] <= {"ok", "warn", "fail"}


def test_no_attack_counted_as_a_server_failure(
    hostile: ServiceProcess, failures_before: float
) -> None:
    """Run last in this module: every attack above was the client's, not the service's."""
    with hostile.client() as client:
        assert _fails(client) == failures_before


# --- a worker killed under load ----------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[3]
JWKS_ALERTS = ("VerifierJWKSNeverLoaded", "VerifierJWKSStale", "VerifierJWKSExpired")


def _workers(service: ServiceProcess) -> set[int]:
    assert service.process is not None
    pid = service.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in children}


@pytest.mark.slow
def test_a_killed_workers_gauges_are_forgotten(
    make_service: Callable[..., ServiceProcess],
    token: Callable[..., str],
    lksg_policy_yaml: str,
    tmp_path: Path,
) -> None:
    """SIGKILL the worker while clients send requests: once it is replaced, the live gauges are
    the new worker's (an empty cache, keys fetched after the kill), and no JWKS alert fires on
    what is exposed."""
    service = make_service(server={"workers": 1})
    service.migrate()
    service.start()
    stored = {"policy_yaml": base64.b64encode(lksg_policy_yaml.encode()).decode(), "persist": True}
    verify_body = {"policy_id": "lksg.v1", "context": {"supplier_hashes": ["0x" + "11" * 32]}}
    with service.client() as client:
        compile_headers = bearer(token(scope="policy:compile"))
        assert client.post("/policy/v2/compile", json=stored, headers=compile_headers).is_success
        assert client.post("/verify", json=verify_body, headers=bearer(token())).is_success
        assert value(scrape(client), "cap_verifier_cache_entries") == 1
        (worker,) = _workers(service)
        time.sleep(1.5)  # the worker's keys are now older than the kill will be
        stop = threading.Event()
        load = threading.Thread(target=_load, args=(service, token(), verify_body, stop))
        load.start()
        killed_at = time.time()
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: bool(_workers(service) - {worker}), 30, "a new worker", interval=0.2)
        wait_until(
            lambda: client.get("/readyz").status_code == 200,
            30,
            "readiness",
            0.2,
            ignore=(httpx.HTTPError,),
        )
        stop.set()
        load.join(10)
        samples = scrape(client)
        age = value(samples, "cap_verifier_jwks_age_seconds")
    service.stop()
    assert 0 <= age <= time.time() - killed_at, "the JWKS age is not the live worker's"
    entries = value(samples, "cap_verifier_cache_entries")
    assert entries <= 1, "the dead worker's cache entries still count"
    assert _firing_jwks_alerts(age, tmp_path) == []


def _load(
    service: ServiceProcess, bearer_token: str, body: dict[str, Any], stop: threading.Event
) -> None:
    """Clients that keep verifying until ``stop``, bounded to 200 requests; failures while the
    worker is down are expected."""
    with service.client(timeout=2) as client:
        for _ in range(200):
            if stop.is_set():
                return
            try:
                client.post("/verify", json=body, headers=bearer(bearer_token))
            except httpx.HTTPError:
                time.sleep(0.05)


def _firing_jwks_alerts(age: float, tmp_path: Path) -> list[str]:
    """The JWKS alerts of alerts/verifier_auth.rules.yaml that fire when the exposed age holds
    for 20 minutes (promtool, the rules as deployed)."""
    promtool = shutil.which("promtool")
    need(promtool is not None, "promtool is not installed (Debian prometheus)")
    assert promtool is not None
    shutil.copy(ROOT / "alerts" / "verifier_auth.rules.yaml", tmp_path)
    series = [
        {
            "series": 'cap_verifier_jwks_age_seconds{job="cap-verifier"}',
            "values": f"{age:.3f}+0x80",
        },
        {
            "series": 'cap_verifier_jwks_refreshes_total{job="cap-verifier",outcome="error"}',
            "values": "0+0x80",
        },
        {"series": 'job:cap_verifier_requests:rate5m{job="cap-verifier"}', "values": "1+0x80"},
    ]
    cases = {
        "rule_files": ["verifier_auth.rules.yaml"],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "20m", "alertname": name, "exp_alerts": []}
                    for name in JWKS_ALERTS
                ],
            }
        ],
    }
    (tmp_path / "jwks-test.yaml").write_text(json.dumps(cases))
    result = subprocess.run(
        [promtool, "test", "rules", "jwks-test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return [] if result.returncode == 0 else [result.stdout + result.stderr]
