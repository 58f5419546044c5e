"""``cap-dev-idp serve`` as a subprocess, over a real TLS 1.3 socket on 127.0.0.1."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from joserfc import jwt

from cap_ops.devkit.net import free_port
from cap_ops.poll import wait_until
from support.idp import IDP_COMMAND

if TYPE_CHECKING:
    from conftest import IdpFiles


def wait_ready(url: str, ctx: ssl.SSLContext, proc: subprocess.Popen[bytes], log: Path) -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
        return httpx.get(url, verify=ctx, timeout=1).status_code == 200

    try:
        wait_until(ready, 15, url, interval=0.1, ignore=(httpx.TransportError,))
    except TimeoutError:
        pytest.fail(f"server not ready in 15 s:\n{log.read_text()}")


@pytest.fixture
def ca(idp_files: IdpFiles) -> trustme.CA:
    """A trustme CA, and a server certificate with a PKCS#8 key in tls/."""
    authority = trustme.CA()
    leaf = authority.issue_cert("127.0.0.1", "localhost")
    tls = idp_files.root / "tls"
    tls.mkdir()
    leaf.cert_chain_pems[0].write_to_path(tls / "server.crt")
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    (tls / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return authority


def test_serve_over_tls13(
    idp_files: IdpFiles, ca: trustme.CA, decode_token: Callable[..., jwt.Token]
) -> None:
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    idp_files.write_config(issuer=base, port=port)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    log = idp_files.root / "serve.log"

    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*IDP_COMMAND, "serve", "--config", str(idp_files.config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(f"{base}/healthz", ctx, proc, log)

        # A token over TLS, verified against the JWKS served over TLS.
        response = httpx.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials", "scope": "verify:run"},
            auth=("ci-runner", idp_files.secrets["ci-runner"]),
            verify=ctx,
        )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        jwks = httpx.get(f"{base}/.well-known/jwks.json", verify=ctx).json()
        claims = decode_token(token, jwks, issuer=base).claims
        assert (claims["sub"], claims["scope"]) == ("ci-runner", "verify:run")
        discovery = httpx.get(f"{base}/.well-known/openid-configuration", verify=ctx).json()
        assert discovery["token_endpoint"] == f"{base}/oauth/token"

        # The handshake is TLS 1.3; a client capped at TLS 1.2 is refused.
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() == "TLSv1.3"
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ca.configure_trust(old)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            pytest.raises(ssl.SSLError) as refused,
        ):
            old.wrap_socket(raw, server_hostname="127.0.0.1")
        assert not isinstance(refused.value, ssl.SSLCertVerificationError)
        assert "PROTOCOL_VERSION" in str(refused.value), refused.value

        # A key rotated offline is served by the running process, without restart.
        rotated = subprocess.run(
            [*IDP_COMMAND, "rotate-key", "--config", str(idp_files.config)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        new_kid = rotated.stdout.splitlines()[0].removeprefix("current: ")
        kids = [
            k["kid"] for k in httpx.get(f"{base}/.well-known/jwks.json", verify=ctx).json()["keys"]
        ]
        assert kids == [new_kid, jwks["keys"][0]["kid"]]

        # SIGHUP respawns the worker (a full reload); the server keeps serving.
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        assert proc.poll() is None
        response = httpx.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("ci-runner", idp_files.secrets["ci-runner"]),
            verify=ctx,
        )
        assert response.status_code == 200
        jwks = httpx.get(f"{base}/.well-known/jwks.json", verify=ctx).json()
        assert decode_token(response.json()["access_token"], jwks, issuer=base).header["kid"] == (
            new_kid
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            returncode = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert returncode == 0
    text = log.read_text()
    assert "HUP signal received" in text
    assert idp_files.secrets["ci-runner"] not in text
    assert token not in text
