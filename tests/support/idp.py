"""``cap-dev-idp serve`` as a real process on a free loopback port, for service tests."""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx

from cap_ops.devkit.net import free_port
from cap_ops.devkit.pki import PKI
from cap_ops.poll import wait_until

IDP_COMMAND = (sys.executable, "-m", "cap_dev_idp")
AUDIENCE = "cap-verifier"


class IdPProcess:
    """A development IdP with one client holding every scope."""

    def __init__(self, workdir: Path, pki: PKI) -> None:
        self.workdir = workdir
        self.pki = pki
        self.port = free_port()
        self.config = workdir / "idp.yaml"
        self.log = workdir / "idp.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.config.write_text(
            f"issuer: {self.issuer}\n"
            f"audience: {AUDIENCE}\n"
            "token_lifetime_seconds: 300\n"
            "clients_file: clients.yaml\n"
            "keys_dir: keys\n"
            "server:\n"
            "  host: 127.0.0.1\n"
            f"  port: {self.port}\n"
            f"  cert: {pki.server.cert}\n"
            f"  key: {pki.server.key}\n"
        )
        (workdir / "clients.yaml").write_text("clients: []\n")
        self.client_id = "all-scopes"
        self.client_secret = self.cli(
            "add-client",
            "--client-id",
            self.client_id,
            "--scopes",
            "verify:run policy:compile policy:read metrics:read",
        ).strip()

    @property
    def issuer(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/.well-known/jwks.json"

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [*IDP_COMMAND, args[0], "--config", str(self.config), *args[1:]],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki.ca_cert))

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*IDP_COMMAND, "serve", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"cap-dev-idp exited:\n{self.log.read_text()[-2000:]}")
            try:
                return httpx.get(self.jwks_url, verify=self._context(), timeout=1).is_success
            except httpx.TransportError:
                return False

        wait_until(ready, 20, "cap-dev-idp")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=15)
        self.process = None

    def token_response(self, secret: str | None = None, scope: str | None = None) -> httpx.Response:
        """POST /oauth/token as the client (client_secret_basic), with ``secret`` (default:
        :attr:`client_secret`)."""
        data = {"grant_type": "client_credentials"}
        if scope:
            data["scope"] = scope
        return httpx.post(
            f"{self.issuer}/oauth/token",
            data=data,
            auth=(self.client_id, self.client_secret if secret is None else secret),
            verify=self._context(),
        )

    def token(self, scope: str | None = None) -> str:
        response = self.token_response(scope=scope)
        response.raise_for_status()
        return str(response.json()["access_token"])
