"""The dev IdP's log never holds what a refused client put where its id belongs."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cap_ops.devkit.pki import PKI
from support.idp import IdPProcess

EMAIL = "jane.doe@example.com"


@pytest.fixture
def idp(tmp_path: Path, pki: PKI) -> Iterator[IdPProcess]:
    process = IdPProcess(tmp_path, pki)
    process.start()
    yield process
    process.stop()


def _token_request(idp: IdPProcess, client_id: str, secret: str, *, basic: bool) -> int:
    data = {"grant_type": "client_credentials"}
    auth = None
    if basic:
        auth = (client_id, secret)
    else:
        data.update(client_id=client_id, client_secret=secret)
    response = httpx.post(
        f"{idp.issuer}/oauth/token",
        data=data,
        auth=auth,
        verify=ssl.create_default_context(cafile=str(idp.pki.ca_cert)),
    )
    return response.status_code


@pytest.mark.orr("3.4-03", "7.1-01")
@pytest.mark.parametrize("basic", [True, False], ids=["basic-auth", "form"])
def test_a_refused_request_logs_no_secret_and_no_personal_data(
    idp: IdPProcess, basic: bool
) -> None:
    # The secret sent as the id (swapped fields), an e-mail address as the id, and a known id
    # with a wrong secret: all refused.
    for client_id, secret in (
        (idp.client_secret, idp.client_id),
        (EMAIL, "whatever-secret"),
        (idp.client_id, "wrong-secret"),
    ):
        assert _token_request(idp, client_id, secret, basic=basic) in (400, 401)
    lines = [json.loads(line) for line in idp.log.read_text().splitlines() if line.startswith("{")]
    refused = [line for line in lines if line.get("message") == "token refused"]
    assert len(refused) == 3
    text = idp.log.read_text()
    assert idp.client_secret not in text
    assert EMAIL not in text
    # A known client's id is kept: it says who was refused.
    assert [line["client_id"] for line in refused] == [None, None, idp.client_id]


@pytest.mark.orr("3.4-01", "3.4-02")
def test_every_line_has_the_verifiers_schema_and_the_callers_request_id(idp: IdPProcess) -> None:
    verify = ssl.create_default_context(cafile=str(idp.pki.ca_cert))
    request_id = "idp-schema-check-0001"
    response = httpx.get(
        f"{idp.issuer}/.well-known/jwks.json", headers={"X-Request-ID": request_id}, verify=verify
    )
    assert response.headers["X-Request-ID"] == request_id
    # A request id that is an e-mail address is replaced by one of the IdP's own.
    response = httpx.get(
        f"{idp.issuer}/.well-known/jwks.json", headers={"X-Request-ID": EMAIL}, verify=verify
    )
    own = response.headers["X-Request-ID"]
    assert own != EMAIL
    lines = [json.loads(line) for line in idp.log.read_text().splitlines()]
    assert lines, "the IdP logged nothing"
    for line in lines:
        assert {"timestamp", "level", "logger", "message", "request_id"} <= set(line), line
        assert line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), line
    served = [line for line in lines if line.get("endpoint") == "/.well-known/jwks.json"]
    # The last two: starting the IdP polled the same endpoint.
    assert [line["request_id"] for line in served[-2:]] == [request_id, own]
    assert all(isinstance(line["duration_ms"], float) for line in served)
    assert EMAIL not in idp.log.read_text()
