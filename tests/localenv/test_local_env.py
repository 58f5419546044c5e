"""testinfra checks of the running local environment (issue: `make up`)."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from cap_ops.localenv import pager_sink, supervisor
from cap_ops.localenv.configs import PROGRAM_ORDER
from cap_ops.localenv.layout import HOST, Layout
from cap_ops.poll import wait_until
from support.localenv import localenv

pytestmark = pytest.mark.localenv

SUPERVISORCTL = str(Path(sys.executable).parent / "supervisorctl")
AS_ROOT = os.geteuid() == 0


@pytest.mark.parametrize("program", PROGRAM_ORDER)
def test_every_program_is_running_under_supervisor(host: Any, layout: Layout, program: str) -> None:
    service = host.supervisor(
        program, supervisorctl_path=SUPERVISORCTL, supervisorctl_conf=str(layout.supervisor_conf)
    )
    assert service.is_running, f"{program}: {service.status}"


@pytest.mark.skipif(not AS_ROOT, reason="the dedicated user exists only when make up runs as root")
def test_programs_run_as_the_service_user_not_root(host: Any, layout: Layout) -> None:
    user = host.user("cap-verifier")
    assert user.exists
    assert user.uid != 0
    assert user.shell == "/usr/sbin/nologin"
    for program, pid in supervisor.pids(layout).items():
        if program not in PROGRAM_ORDER:
            continue  # an operator's job (the backup schedule) runs as the operator
        process = host.process.get(pid=pid)
        assert process.user == "cap-verifier", program
        assert process.euid != 0, program


def _program_pids(layout: Layout) -> set[int]:
    """The supervised programs and all their descendants (granian workers …)."""
    pids = set(supervisor.pids(layout).values())
    frontier = list(pids)
    while frontier:
        parent = frontier.pop()
        children = Path(f"/proc/{parent}/task/{parent}/children")
        if children.exists():
            for child in children.read_text().split():
                pids.add(int(child))
                frontier.append(int(child))
    return pids


def test_every_socket_listens_on_loopback_only(layout: Layout) -> None:
    pids = _program_pids(layout)
    ss = subprocess.run(["ss", "-Hltnup"], capture_output=True, text=True, check=True).stdout
    ours = [line for line in ss.splitlines() if any(f"pid={pid}," in line for pid in pids)]
    assert ours, "no listening socket found for the local environment"
    for line in ours:
        local = line.split()[4]
        address = local.rsplit(":", 1)[0]
        assert address == HOST, f"listening beyond loopback: {line}"
    ports = {int(line.split()[4].rsplit(":", 1)[1]) for line in ours}
    assert set(layout.ports.named().values()) <= ports


@pytest.mark.orr("5.3-05")
@pytest.mark.parametrize("port_name", ["cap-verifier", "cap-dev-idp"])
def test_tls_1_3_only(layout: Layout, local_env: dict[str, Any], port_name: str) -> None:
    port = layout.ports.named()[port_name]

    def handshake(maximum: ssl.TLSVersion | None) -> str:
        context = ssl.create_default_context(cafile=local_env["ca_cert"])
        if maximum is not None:
            context.maximum_version = maximum
        with (
            socket.create_connection((HOST, port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=HOST) as tls,
        ):
            return str(tls.version())

    assert handshake(None) == "TLSv1.3"
    with pytest.raises(ssl.SSLError):
        handshake(ssl.TLSVersion.TLSv1_2)


def test_key_and_secret_files_are_0600(
    host: Any, layout: Layout, local_env: dict[str, Any]
) -> None:
    secrets = [
        layout.env_json,
        layout.pki / "ca.key",
        layout.pki / "server.key",
        layout.pki / "client.key",
        layout.idp_dir / "clients.yaml",
        *sorted((layout.idp_dir / "keys").glob("*.pem")),
    ]
    assert len(secrets) >= 6  # and one signing key at least
    for path in secrets:
        assert host.file(str(path)).mode == 0o600, path
    assert host.file(str(layout.supervisor_dir)).mode == 0o700


@pytest.mark.skipif(not AS_ROOT, reason="ownership by the service user needs root")
def test_data_and_key_ownership(host: Any, layout: Layout) -> None:
    for path in (layout.data, layout.data / "registry.db", layout.pki / "server.key"):
        assert host.file(str(path)).user == "cap-verifier", path
    assert host.file(str(layout.pki / "ca.key")).user == "root"  # the service cannot issue


def test_env_json_lists_everything(layout: Layout, local_env: dict[str, Any]) -> None:
    for key in (
        "verifier_url", "idp_url", "token_url", "jwks_url", "ca_cert", "client_cert",
        "client_key", "prometheus_url", "alertmanager_url",
    ):  # fmt: skip
        assert local_env[key], key
    clients = local_env["clients"]
    scopes = {name: set(c["scopes"].split()) for name, c in clients.items()}
    full = {"verify:run", "policy:compile", "policy:read", "metrics:read"}
    assert any(s == full for s in scopes.values())
    assert any(s == {"verify:run"} for s in scopes.values())


@pytest.mark.orr("3.1-01")
def test_prometheus_scrapes_the_verifier_and_loads_every_rule_group(
    layout: Layout, local_env: dict[str, Any]
) -> None:
    base = local_env["prometheus_url"]
    targets = httpx.get(f"{base}/api/v1/targets").json()["data"]["activeTargets"]
    verifier = [t for t in targets if t["labels"]["job"] == "cap-verifier"]
    assert verifier
    assert all(t["health"] == "up" for t in verifier), verifier
    loaded = {g["name"] for g in httpx.get(f"{base}/api/v1/rules").json()["data"]["groups"]}
    from ruamel.yaml import YAML

    expected = {
        group["name"]
        for path in sorted(layout.alerts_dir.glob("*.rules.yaml"))
        for group in YAML(typ="safe").load(path.read_text())["groups"]
    }
    assert expected
    assert expected == loaded


@pytest.mark.orr("3.3-08")
def test_alertmanager_config_is_valid_and_loaded(layout: Layout, local_env: dict[str, Any]) -> None:
    config = layout.alertmanager_dir / "alertmanager.yml"
    checked = subprocess.run(
        ["amtool", "check-config", str(config)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    status = httpx.get(f"{local_env['alertmanager_url']}/api/v2/status").json()
    assert status["cluster"]["status"] == "disabled"
    assert f"{layout.url('pager-sink')}/v2/enqueue" in status["config"]["original"]


def test_an_alert_reaches_the_local_receiver(layout: Layout, local_env: dict[str, Any]) -> None:
    """A synthetic alert posted to Alertmanager reaches the pager sink (.local/pages.log)
    through the routing: without a known severity, the ticket receiver (Opsgenie and Slack)."""
    marker = f"LocalEnvDeliveryCheck{os.getpid()}"
    alert = [{"labels": {"alertname": marker, "severity": "critical", "job": "cap-verifier"}}]
    log = Path(local_env["pages_log"])
    offset = log.stat().st_size if log.exists() else 0

    def delivered() -> set[str]:
        records = pager_sink.read_records(log, offset)
        return {r["api"] for r in records if marker in pager_sink.headline(r)}

    assert httpx.post(f"{local_env['alertmanager_url']}/api/v2/alerts", json=alert).is_success
    wait_until(lambda: delivered() == {"opsgenie", "slack"}, 90, f"{marker} in {log}", interval=0.5)


@pytest.mark.orr("3.4-06")
def test_no_debug_lines_at_prod_log_level(layout: Layout, local_env: dict[str, Any]) -> None:
    with httpx.Client(verify=ssl.create_default_context(cafile=local_env["ca_cert"])) as client:
        client.get(f"{local_env['verifier_url']}/healthz")
    lines = [
        json.loads(x)
        for x in (layout.logs / "cap-verifier.log").read_text().splitlines()
        if x.startswith("{")
    ]
    assert lines
    assert not [line for line in lines if line.get("level") == "DEBUG"]


def test_make_up_is_idempotent_and_keeps_secrets(layout: Layout, local_env: dict[str, Any]) -> None:
    again = subprocess.run(
        [sys.executable, "-m", "cap_ops.localenv", "up"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(layout.env_json.read_text())["clients"] == local_env["clients"]
    status = localenv("status")
    assert status.returncode == 0, status.stdout
