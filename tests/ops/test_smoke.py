"""`python -m cap_ops.smoke` (ORR 5.1) as a process, against a real dev IdP and real verifiers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cap_ops.devkit.net import free_port
from cap_ops.devkit.pki import PKI
from cap_ops.devkit.service import ServiceProcess
from cap_verifier.registry import Registry
from support.idp import IdPProcess

SMOKE_VARS = (
    "URL",
    "TOKEN_URL",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "CA_CERT",
    "CLIENT_CERT",
    "CLIENT_KEY",
)
CHECKS = [
    "healthz",
    "readyz",
    "verify-without-token",
    "compile-without-token",
    "token",
    "compile",
    "policy-read",
    "policy-unknown",
    "verify",
]
UNAUTHENTICATED = ["healthz", "verify-without-token", "compile-without-token"]
VERIFIER_CHECKS = [name for name in CHECKS if name not in ("token", "policy-read")]


@dataclass(frozen=True)
class SmokeRun:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def results(self) -> dict[str, str]:
        """Check name → ``PASS`` or the reason of its ``FAIL``."""
        found: dict[str, str] = {}
        for line in self.stdout.splitlines():
            verdict, _, rest = line.partition(" ")
            if verdict == "PASS":
                found[rest] = "PASS"
            elif verdict == "FAIL":
                name, _, reason = rest.partition(": ")
                found[name] = reason
        return found

    def assert_clean(self, *secrets: str) -> None:
        assert "Traceback" not in self.output
        assert "eyJ" not in self.output  # no JWT (header and payload start so), no token
        for secret in secrets:
            assert secret not in self.output


def smoke(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> SmokeRun:
    environ = {k: v for k, v in os.environ.items() if k not in SMOKE_VARS}
    environ.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "cap_ops.smoke", *args],
        check=False,
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,
        timeout=60,
    )
    return SmokeRun(result.returncode, result.stdout, result.stderr)


def target_args(url: str, idp: IdPProcess, pki: PKI, secret: str | None = None) -> list[str]:
    return [
        "--url",
        url,
        "--token-url",
        f"{idp.issuer}/oauth/token",
        "--client-id",
        idp.client_id,
        f"--client-secret={secret or idp.client_secret}",  # a secret may start with "-"
        "--ca-cert",
        str(pki.ca_cert),
    ]


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory, pki: PKI) -> Iterator[IdPProcess]:
    provider = IdPProcess(tmp_path_factory.mktemp("idp"), pki)
    provider.start()
    yield provider
    provider.stop()


def _verifier(
    make_service: Callable[..., ServiceProcess], idp: IdPProcess, **sections: dict[str, Any]
) -> ServiceProcess:
    oauth2 = {"issuer": idp.issuer, "audience": "cap-verifier", "jwks_url": idp.jwks_url}
    return make_service(oauth2=oauth2, **sections)


@pytest.fixture(scope="module")
def ready_verifier(
    make_service: Callable[..., ServiceProcess], idp: IdPProcess
) -> Iterator[ServiceProcess]:
    service = _verifier(make_service, idp)
    service.migrate()
    service.start()
    yield service
    service.stop()


@pytest.mark.orr(
    "5.1-01", "5.1-02", "5.1-03", "5.1-04", "5.1-05", "5.1-06", "5.1-07", "5.1-08", "5.1-09"
)
def test_every_check_passes_against_a_ready_verifier_and_reruns_add_no_policies(
    ready_verifier: ServiceProcess, idp: IdPProcess, pki: PKI
) -> None:
    first = smoke(*target_args(ready_verifier.url, idp, pki))
    assert first.code == 0, first.output
    assert first.results() == dict.fromkeys(CHECKS, "PASS")
    assert first.stdout.splitlines()[-1] == "9 passed, 0 failed"
    first.assert_clean(idp.client_secret)

    registry = Registry(ready_verifier.config["registry"]["url"])
    try:
        before = registry.count_policies()
        # the Makefile passes the target through the environment (`make smoke URL=… …`)
        second = smoke(
            env={
                "URL": ready_verifier.url,
                "TOKEN_URL": f"{idp.issuer}/oauth/token",
                "CLIENT_ID": idp.client_id,
                "CLIENT_SECRET": idp.client_secret,
                "CA_CERT": str(pki.ca_cert),
            }
        )
        assert second.code == 0, second.output
        assert registry.count_policies() == before == {"v1": 1, "v2": 1, "blobs": 1}
        assert len(registry.list_verifications()) == 2  # one audit record per run
    finally:
        registry.close()
    second.assert_clean(idp.client_secret)


def test_local_env_json_picks_the_client_holding_every_scope(
    ready_verifier: ServiceProcess, idp: IdPProcess, pki: PKI, tmp_path: Path
) -> None:
    env_file = tmp_path / ".local" / "env.json"
    env_file.parent.mkdir()
    env_file.write_text(
        json.dumps(
            {
                "verifier_url": ready_verifier.url,
                "token_url": f"{idp.issuer}/oauth/token",
                "ca_cert": str(pki.ca_cert),
                "client_cert": None,
                "client_key": None,
                "clients": {
                    "reader": {
                        "client_id": "reader",
                        "client_secret": "not-this-one",
                        "scopes": ["policy:read"],
                    },
                    "ops": {
                        "client_id": idp.client_id,
                        "client_secret": idp.client_secret,
                        "scopes": "verify:run policy:compile policy:read metrics:read",
                    },
                },
            }
        )
    )
    run = smoke("--env", "local", "--env-file", str(env_file), cwd=tmp_path)
    assert run.code == 0, run.output
    assert run.results() == dict.fromkeys(CHECKS, "PASS")
    run.assert_clean(idp.client_secret)


def test_unready_verifier_fails_readiness_and_every_registry_check(
    make_service: Callable[..., ServiceProcess], idp: IdPProcess, pki: PKI
) -> None:
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    service = _verifier(make_service, idp, registry={"url": closed})
    service.start()
    try:
        run = smoke(*target_args(service.url, idp, pki))
    finally:
        service.stop()
    assert run.code == 1, run.output
    results = run.results()
    assert [name for name, reason in results.items() if reason == "PASS"] == [
        *UNAUTHENTICATED,
        "token",
    ]
    assert results["readyz"] == "503 DEGRADED (registry FAIL)"
    assert results["compile"].startswith("expected 200, got 503")
    assert results["policy-read"].startswith("not run: no stored policy id")
    assert results["policy-unknown"].startswith("expected 404 for an unknown id, got 503")
    assert results["verify"].startswith("storing orr.smoke answered 503")
    assert run.stdout.splitlines()[-1] == "4 passed, 5 failed"
    run.assert_clean(idp.client_secret)


def test_wrong_client_secret_fails_the_token_check_with_one_clear_reason(
    ready_verifier: ServiceProcess, idp: IdPProcess, pki: PKI
) -> None:
    wrong = "wrong-secret-" + "x" * 20
    run = smoke(*target_args(ready_verifier.url, idp, pki, secret=wrong))
    assert run.code == 1, run.output
    results = run.results()
    assert results["token"] == (
        f"the token endpoint refused client {idp.client_id!r} (401 invalid_client): "
        "check CLIENT_ID, CLIENT_SECRET and that the client holds "
        "verify:run policy:compile policy:read"
    )
    for name in ("compile", "policy-unknown", "verify"):
        assert results[name] == "not run: no access token (see the token check)"
    assert all(results[name] == "PASS" for name in ["readyz", *UNAUTHENTICATED])
    run.assert_clean(wrong, idp.client_secret)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel backlog) but never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def test_closed_port_gives_fail_lines_not_tracebacks(idp: IdPProcess, pki: PKI) -> None:
    run = smoke(*target_args(f"https://127.0.0.1:{free_port()}", idp, pki))
    assert run.code == 1, run.output
    results = run.results()
    assert results["token"] == "PASS"
    for name in VERIFIER_CHECKS:
        assert results[name].startswith("ConnectError: "), run.stdout
    run.assert_clean(idp.client_secret)


def test_a_verifier_that_never_answers_times_out_per_request(
    idp: IdPProcess, pki: PKI, silent_port: int
) -> None:
    url = f"https://127.0.0.1:{silent_port}"
    # The timeout holds for the IdP's token request too, which hashes the client secret
    # (argon2id): 1 s leaves it room on a loaded machine; the verifier never answers at all.
    run = smoke(*target_args(url, idp, pki), "--timeout", "1")
    assert run.code == 1, run.output
    results = run.results()
    for name in VERIFIER_CHECKS:
        assert results[name] == "no answer within 1 s", run.stdout
    run.assert_clean(idp.client_secret)


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        pytest.param(
            ["--env", "local", "--env-file", "{tmp}/.local/env.json"],
            {},
            "smoke: no local environment ({tmp}/.local/env.json does not exist): "
            "run `make up` first, or give URL, TOKEN_URL, CLIENT_ID and CLIENT_SECRET "
            "(options or environment)",
            id="missing-env-json",
        ),
        pytest.param(
            ["--env-file", "{tmp}"],
            {},
            "smoke: cannot read {tmp} (IsADirectoryError): run `make up` first",
            id="unreadable-env-json",
        ),
        pytest.param(
            ["--url", "https://127.0.0.1:1"],
            {"CLIENT_ID": "someone", "CLIENT_SECRET": "s3cr3t-value"},
            "smoke: missing TOKEN_URL: run `make up` first",
            id="incomplete-target",
        ),
        pytest.param(
            ["--ca-cert", "{tmp}/none.crt"],
            {
                "URL": "https://127.0.0.1:1",
                "TOKEN_URL": "https://127.0.0.1:1/oauth/token",
                "CLIENT_ID": "someone",
                "CLIENT_SECRET": "s3cr3t-value",
            },
            "smoke: cannot load the TLS files (FileNotFoundError",
            id="missing-ca-cert",
        ),
    ],
)
def test_nothing_to_check_against_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    run = smoke(*(arg.format(tmp=tmp_path) for arg in args), env=env, cwd=tmp_path)
    assert run.code == 2, run.output
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(expected.format(tmp=tmp_path))
    run.assert_clean("s3cr3t-value")
