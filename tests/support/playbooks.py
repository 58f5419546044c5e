"""Running the runbooks (playbooks/) from tests, and a bounded load against the local
environment while they run."""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
BIN = Path(sys.executable).parent
REPORT = re.compile(r'"msg": "(?P<line>[a-z0-9-]+ on [a-z]+: .*)"$', re.M)
OUTPUTS: list[str] = []
"""Every playbook output of the session: checked for secrets at the end."""


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def report(self) -> str:
        """The playbook's last line for the incident channel."""
        found = REPORT.findall(self.stdout)
        assert found, f"no report line in:\n{self.stdout[-3000:]}"
        return str(found[-1])

    @property
    def failure(self) -> str:
        """The message of the failed task (its one line)."""
        found = re.findall(r'"msg": "(.*?)"', self.stdout)
        return found[-1] if found else self.stdout[-2000:]


def playbook_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", **extra}


def playbook_command(name: str, *args: str, inventory: str = "local") -> list[str]:
    return [
        str(BIN / "ansible-playbook"),
        "-i",
        f"inventories/{inventory}/inventory.py",
        name,
        *args,
    ]


def run_playbook(
    name: str,
    *args: str,
    inventory: str = "local",
    env: dict[str, str] | None = None,
    cwd: Path = PLAYBOOKS,
    timeout: float = 300,
) -> Run:
    result = subprocess.run(
        playbook_command(name, *args, inventory=inventory),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env=env or playbook_env(),
    )
    OUTPUTS.append(result.stdout + result.stderr)
    return Run(result.returncode, result.stdout, result.stderr)


def extra_vars(values: dict[str, Any]) -> list[str]:
    return ["-e", json.dumps(values)]


@dataclass
class Load:
    """A bounded load on the local verifier while something else happens: reads and
    verifications with tokens fetched during the run, from the secrets env.json holds at
    each fetch. Each request counts; ``failures`` keeps what went wrong."""

    env_json: Path
    max_requests: int = 300
    max_seconds: float = 20.0
    pause: float = 0.02
    token_every: int = 25
    fresh_connections: bool = False
    policy_id: str = "lksg.v1"
    requests: int = 0
    tokens: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _settings(self) -> dict[str, Any]:
        return dict(json.loads(self.env_json.read_text()))

    def _token(self, settings: dict[str, Any], ctx: ssl.SSLContext) -> str:
        client = settings["clients"]["all"]
        response = httpx.post(
            settings["token_url"],
            data={"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"]),
            verify=ctx,
            timeout=10,
        )
        self.tokens += 1
        if response.status_code != 200:
            self.failures.append(f"token: HTTP {response.status_code}")
            return ""
        return str(response.json()["access_token"])

    def _one(self, client: httpx.Client, url: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        if self.requests % 2:
            response = client.get(f"{url}/policy/v2/{self.policy_id}", headers=headers)
        else:
            body = {"policy_id": self.policy_id, "context": {"supplier_hashes": ["0x" + "11" * 32]}}
            response = client.post(f"{url}/verify", json=body, headers=headers)
        if response.status_code != 200:
            request = response.request
            self.failures.append(f"{request.method} {request.url.path}: {response.status_code}")

    def run(self) -> None:
        settings = self._settings()
        ctx = ssl.create_default_context(cafile=settings["ca_cert"])
        url = settings["verifier_url"]
        deadline = time.monotonic() + self.max_seconds
        token = ""
        client = httpx.Client(verify=ctx, timeout=10)
        try:
            while (
                not self._stop.is_set()
                and self.requests < self.max_requests
                and time.monotonic() < deadline
            ):
                try:
                    if self.requests % self.token_every == 0 or not token:
                        token = self._token(self._settings(), ctx)
                    if self.fresh_connections:
                        client.close()
                        client = httpx.Client(verify=ctx, timeout=10)
                    self._one(client, url, token)
                except (httpx.HTTPError, OSError, ValueError) as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                self.requests += 1
                time.sleep(self.pause)
        finally:
            client.close()

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.max_seconds + 30)


def during(load: Load, name: str, *args: str, min_requests: int = 100) -> Run:
    """Run a playbook while ``load`` runs; the load goes on until ``min_requests`` were made
    (bounded by its own limits) so the rotation happens in the middle of it."""
    with load:
        result = run_playbook(name, *args)
        while load.requests < min_requests and load._thread and load._thread.is_alive():
            time.sleep(0.05)
    return result


def scan_for_secrets(texts: Sequence[str], secrets: Sequence[str]) -> list[str]:
    """The secrets (shown by their first 4 characters) found in any of ``texts``."""
    return [s[:4] + "…" for s in secrets if s and any(s in text for text in texts)]
