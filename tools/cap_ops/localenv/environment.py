"""`make up`, `make down`, `make status`: provision and run the local environment."""

from __future__ import annotations

import base64
import grp
import json
import os
import pwd
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from cap_dev_idp.clients import add_client, load_clients, rotate_secret
from cap_ops.localenv import configs, preflight, supervisor
from cap_ops.localenv.layout import HOST, Layout
from cap_ops.localenv.pki import PKIFiles, ensure_pki
from cap_ops.poll import wait_until

# name in env.json → (client_id, scopes): one development client per scope set
CLIENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "all": ("local-all", ("verify:run", "policy:compile", "policy:read", "metrics:read")),
    "verify": ("local-verify", ("verify:run",)),
    "compile": ("local-compile", ("policy:compile", "policy:read")),
    "metrics": ("local-metrics", ("metrics:read",)),
}
DEMO_POLICY = Path(__file__).with_name("lksg_v1.policy.yml")
WAIT_SECONDS = 90.0


def _say(message: str) -> None:
    print(f"[local] {message}", flush=True)


def _chown(layout: Layout, *paths: Path) -> None:
    ids = layout.uid_gid()
    if ids is None:
        return
    for path in paths:
        os.chown(path, *ids)


def ensure_service_user(layout: Layout) -> None:
    if layout.service_user is None:
        return
    try:
        pwd.getpwnam(layout.service_user)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                layout.service_user,
            ],
            check=True,
        )
        _say(f"created the system user {layout.service_user}")


def grant_traversal(layout: Layout) -> None:
    """The checkout may sit below a directory the service user cannot enter (/root is 0700):
    give that one user execute-only access (an ACL) on each such parent, nothing more."""
    ids = layout.uid_gid()
    if ids is None:
        return
    uid, gid = ids
    for directory in [layout.root, *layout.root.parents]:
        info = directory.stat()
        mode = info.st_mode
        if (
            mode & 0o001
            or (info.st_uid == uid and mode & 0o100)
            or (info.st_gid == gid and mode & 0o010)
        ):
            continue
        subprocess.run(["setfacl", "-m", f"u:{layout.service_user}:x", str(directory)], check=True)
        _say(f"granted {layout.service_user} traversal (x only) of {directory}")


def make_directories(layout: Layout) -> None:
    owned = [
        layout.local,
        layout.pki,
        layout.idp_dir,
        layout.verifier_dir,
        layout.data,
        layout.logs,
        layout.prometheus_dir,
        layout.prometheus_dir / "data",
        layout.prometheus_rules,
        layout.prometheus_extra_rules,
        layout.alertmanager_dir,
        layout.alertmanager_dir / "data",
        layout.blackbox_dir,
    ]
    for directory in owned:
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o750)
        _chown(layout, directory)
    layout.alertmanager_secrets.mkdir(exist_ok=True)
    layout.alertmanager_secrets.chmod(0o700)
    _chown(layout, layout.alertmanager_secrets)
    layout.supervisor_dir.mkdir(parents=True, exist_ok=True)
    layout.supervisor_dir.chmod(0o700)  # the control socket: the operator only
    layout.supervisor_include_dir.mkdir(exist_ok=True)


def secure_pki(layout: Layout, pki: PKIFiles) -> None:
    """Leaf keys readable by the service user only; the CA key by the operator only."""
    for key in (pki.server_key, pki.client_key):
        key.chmod(0o600)
        _chown(layout, key)
    pki.ca_key.chmod(0o600)
    for cert in (pki.ca_cert, pki.server_cert, pki.client_cert):
        cert.chmod(0o644)


# The service and the dev IdP: none of the development, infra or ops tooling.
RUNTIME_GROUPS = ("--no-default-groups", "--group", "idp")


def ensure_runtime_venv(layout: Layout) -> None:
    """As root the programs run as the service user, who cannot execute the operator's
    Python (pyenv under /root): give them a venv on Debian's python3.11, from the lock."""
    if layout.service_user is None:
        return
    uv = layout.root / ".tools" / "bin" / "uv"
    if not uv.exists():
        raise preflight.Problem(
            "no .tools/bin/uv: run `make up` (it bootstraps it), not the module"
        )
    python = shutil.which("python3.11", path="/usr/bin")
    if python is None:
        raise preflight.Problem("Debian's python3.11 is missing: run `apt-get install python3.11`")
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(layout.runtime_venv),
        "UV_LINK_MODE": "copy",
        "UV_PYTHON_DOWNLOADS": "never",
    }
    result = subprocess.run(
        [str(uv), "sync", "--frozen", *RUNTIME_GROUPS, "--python", python, "--quiet"],
        cwd=layout.root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        raise preflight.Problem(f"could not build {layout.runtime_venv}: {last}")


def _run_as_service(layout: Layout, command: list[str]) -> subprocess.CompletedProcess[str]:
    user = layout.service_user
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        user=user,
        group=grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name if user else None,
        cwd=layout.local,
        env={k: v for k, v in os.environ.items() if not k.startswith("CAP_VERIFIER_")},
    )


def write_alertmanager_secrets(layout: Layout) -> bool:
    """The test-fixture key files Alertmanager reads (0600, the service user's); True when one
    changed."""
    changed = False
    for name, content in configs.alertmanager_secrets(layout).items():
        path = layout.alertmanager_secrets / name
        changed |= configs.write_if_changed(path, content, 0o600)
        _chown(layout, path)
    return changed


def write_rules(layout: Layout, for_overrides: Mapping[str, str] | None = None) -> bool:
    """Prometheus' copies of the rule files (``for_overrides``: tests only, see
    :func:`configs.rule_files`), stale ones removed; True when one changed."""
    rendered = configs.rule_files(layout, for_overrides)
    changed = False
    for stale in layout.prometheus_rules.glob("*.rules.yaml"):
        if stale.name not in rendered:
            stale.unlink()
            changed = True
    for name, text in rendered.items():
        path = layout.prometheus_rules / name
        changed |= configs.write_if_changed(path, text)
        _chown(layout, path)
    return changed


def reload_prometheus(layout: Layout) -> None:
    """``POST /-/reload``: Prometheus reads its rule files again."""
    response = httpx.post(f"{layout.url('prometheus')}/-/reload", timeout=30)
    if response.status_code == 403:
        raise preflight.Problem(
            "Prometheus has no lifecycle API: run `make up` (it restarts it with reload enabled)"
        )
    if not response.is_success:
        raise preflight.Problem(f"Prometheus reload failed: HTTP {response.status_code}")


def override_for(layout: Layout, for_overrides: Mapping[str, str] | None = None) -> None:
    """Tests only: Prometheus evaluates the named alerts with a shorter ``for`` (None: the
    rule files as generated again), reloaded at once."""
    write_rules(layout, for_overrides)
    reload_prometheus(layout)


def write_configs(layout: Layout, pki: PKIFiles) -> set[str]:
    """Write every config; returns the programs whose configuration changed."""
    changed: set[str] = set()
    if write_rules(layout):
        changed.add("prometheus")
    if write_alertmanager_secrets(layout):
        changed.add("alertmanager")
    files = {
        "cap-dev-idp": (
            layout.idp_config,
            configs.dump_yaml(configs.idp_config(layout, pki)),
        ),
        "cap-verifier": (
            layout.verifier_dir / "config.yaml",
            configs.dump_yaml(configs.verifier_config(layout, pki)),
        ),
        "prometheus": (
            layout.prometheus_dir / "prometheus.yml",
            configs.dump_yaml(configs.prometheus_config(layout, pki)),
        ),
        "alertmanager": (
            layout.alertmanager_dir / "alertmanager.yml",
            configs.dump_yaml(configs.alertmanager_config(layout, pki)),
        ),
        "blackbox-exporter": (
            layout.blackbox_dir / "blackbox.yml",
            configs.dump_yaml(configs.blackbox_config(pki, configs.monitoring_table(layout))),
        ),
    }
    for program, (path, text) in files.items():
        if configs.write_if_changed(path, text):
            changed.add(program)
        _chown(layout, path)
    venv_bin = layout.runtime_venv / "bin"
    checked = _run_as_service(
        layout,
        [str(venv_bin / "cap-verifier"), "check-config", "--config", str(files["cap-verifier"][0])],
    )
    if checked.returncode != 0:
        raise preflight.Problem(checked.stderr.strip() or checked.stdout.strip())
    prom = subprocess.run(
        ["promtool", "check", "config", "--syntax-only", str(files["prometheus"][0])],
        capture_output=True,
        text=True,
        check=False,
    )
    if prom.returncode != 0:
        raise preflight.Problem(f"prometheus.yml invalid: {prom.stderr.strip().splitlines()[-1]}")
    preflight.check_alertmanager(str(files["alertmanager"][0]))
    preflight.check_blackbox(str(files["blackbox-exporter"][0]))
    if configs.write_if_changed(layout.supervisor_conf, configs.supervisord_config(layout), 0o600):
        changed.add("supervisord")
    return changed


def ensure_clients(layout: Layout) -> dict[str, dict[str, Any]]:
    """One client per scope set; secrets kept from env.json while they still match."""
    clients_file = layout.idp_dir / "clients.yaml"
    if not clients_file.exists():
        configs.write_if_changed(clients_file, "clients: []\n", 0o600)
    known: dict[str, Any] = {}
    if layout.env_json.exists():
        known = json.loads(layout.env_json.read_text()).get("clients", {})
    stored = load_clients(clients_file)
    result: dict[str, dict[str, Any]] = {}
    for name, (client_id, scopes) in CLIENTS.items():
        secret = known.get(name, {}).get("client_secret")
        client = stored.get(client_id)
        if client is None:
            secret = add_client(clients_file, client_id, scopes)
        elif not (isinstance(secret, str) and client.check_client_secret(secret)):
            secret = rotate_secret(clients_file, client_id)
        result[name] = {"client_id": client_id, "client_secret": secret, "scopes": " ".join(scopes)}
    clients_file.chmod(0o600)
    _chown(layout, clients_file)
    return result


def write_env_json(layout: Layout, pki: PKIFiles, clients: dict[str, dict[str, Any]]) -> None:
    idp = layout.url("cap-dev-idp")
    env = {
        "verifier_url": layout.url("cap-verifier"),
        "idp_url": idp,
        "token_url": f"{idp}/oauth/token",
        "jwks_url": f"{idp}/.well-known/jwks.json",
        "ca_cert": str(pki.ca_cert),
        "client_cert": str(pki.client_cert),
        "client_key": str(pki.client_key),
        "prometheus_url": layout.url("prometheus"),
        "alertmanager_url": layout.url("alertmanager"),
        "blackbox_url": layout.url("blackbox-exporter"),
        "pager_sink_url": layout.url("pager-sink"),
        "pages_log": str(layout.pages_log),
        "clients": clients,
    }
    configs.write_if_changed(layout.env_json, json.dumps(env, indent=2) + "\n", 0o600)


def _context(pki: PKIFiles) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca_cert))


def wait_for(
    what: str, check: Callable[[], bool], log: Path, timeout: float = WAIT_SECONDS
) -> None:
    try:
        wait_until(
            check, timeout, what, 0.2, ignore=(httpx.HTTPError, OSError, ValueError, KeyError)
        )
    except TimeoutError:
        raise preflight.Problem(f"{what} not ready after {timeout:.0f} s; see {log}") from None


def health_checks(layout: Layout, pki: PKIFiles) -> dict[str, Callable[[], bool]]:
    ctx = _context(pki)
    return {
        "pager-sink": lambda: (
            httpx.get(f"{layout.url('pager-sink')}/healthz", verify=ctx).is_success
        ),
        "alertmanager": lambda: httpx.get(f"{layout.url('alertmanager')}/-/ready").is_success,
        "blackbox-exporter": lambda: (
            httpx.get(f"{layout.url('blackbox-exporter')}/-/healthy").is_success
        ),
        "prometheus": lambda: httpx.get(f"{layout.url('prometheus')}/-/ready").is_success,
        "cap-dev-idp": lambda: (
            httpx.get(f"{layout.url('cap-dev-idp')}/.well-known/jwks.json", verify=ctx).is_success
        ),
        "cap-verifier": lambda: (
            httpx.get(f"{layout.url('cap-verifier')}/readyz", verify=ctx).status_code == 200
        ),
    }


def seed_demo_policy(layout: Layout, pki: PKIFiles, client: dict[str, Any]) -> None:
    """Store the contract's lksg.v1 PolicyV2 so the printed example works (idempotent)."""
    ctx = _context(pki)
    token = httpx.post(
        f"{layout.url('cap-dev-idp')}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
        verify=ctx,
    ).json()["access_token"]
    body = {"policy_yaml": base64.b64encode(DEMO_POLICY.read_bytes()).decode(), "persist": True}
    response = httpx.post(
        f"{layout.url('cap-verifier')}/policy/v2/compile",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        verify=ctx,
    )
    if response.status_code != 200:
        raise preflight.Problem(f"seeding the demo policy failed: HTTP {response.status_code}")


def prometheus_sees_everything(layout: Layout) -> bool:
    base = layout.url("prometheus")
    targets = httpx.get(f"{base}/api/v1/targets").json()["data"]["activeTargets"]
    up = any(t["labels"].get("job") == "cap-verifier" and t["health"] == "up" for t in targets)
    groups = httpx.get(f"{base}/api/v1/rules").json()["data"]["groups"]
    return up and bool(groups)


def up() -> None:
    started = time.monotonic()
    layout = Layout.default()
    preflight.ensure_packages()
    running = supervisor.running_pid(layout) is not None
    if not running:
        preflight.check_ports_free(layout, layout.ports.named().items())
    ensure_service_user(layout)
    grant_traversal(layout)
    make_directories(layout)
    pki = ensure_pki(layout.pki)
    secure_pki(layout, pki)
    ensure_runtime_venv(layout)
    preflight.check_rules(layout)
    changed = write_configs(layout, pki)
    clients = ensure_clients(layout)
    write_env_json(layout, pki, clients)
    migrated = _run_as_service(
        layout,
        [
            str(layout.runtime_venv / "bin" / "cap-verifier"),
            "migrate",
            "--config",
            str(layout.verifier_dir / "config.yaml"),
        ],
    )
    if migrated.returncode != 0:
        raise preflight.Problem(f"migrations failed: {migrated.stderr.strip().splitlines()[-1]}")
    if running:
        if "supervisord" in changed:
            supervisor.reload_config(layout)
    else:
        # Alertmanager's notification log: a page of an earlier run that never resolved (the
        # environment stopped first) would hold back the same alert's page for repeat_interval.
        (layout.alertmanager_dir / "data" / "nflog").unlink(missing_ok=True)
        supervisor.start_daemon(layout)
    checks = health_checks(layout, pki)
    current = supervisor.states(layout)
    for name in configs.PROGRAM_ORDER:
        if current.get(name) == "RUNNING" and name in changed:
            supervisor.restart(layout, name)
        else:
            supervisor.start(layout, name)
        wait_for(name, checks[name], layout.logs / f"{name}.log")
    seed_demo_policy(layout, pki, clients["all"])
    wait_for(
        "Prometheus target cap-verifier",
        lambda: prometheus_sees_everything(layout),
        layout.logs / "prometheus.log",
    )
    print_summary(layout, time.monotonic() - started)


def print_summary(layout: Layout, seconds: float) -> None:
    root = layout.root
    env = layout.env_json.relative_to(root)
    ca = layout.ca_cert.relative_to(root)
    read_secret = f'json.load(open("{env}"))["clients"]["all"]["client_secret"]'
    secret = f"$(python3 -c 'import json; print({read_secret})')"
    extract = 'json.load(sys.stdin)["access_token"]'
    body = json.dumps({"policy_id": "lksg.v1", "context": {"supplier_hashes": ["0x" + "11" * 32]}})
    idp, verifier = layout.url("cap-dev-idp"), layout.url("cap-verifier")
    lines = [
        "",
        f"local environment up in {seconds:.1f} s (details and client secrets: {env}, mode 0600)",
        f"  verifier      {verifier}   (TLS 1.3; /healthz /readyz /metrics /openapi.yaml)",
        f"  dev IdP       {idp}   (token: /oauth/token)",
        f"  prometheus    {layout.url('prometheus')}",
        f"  alertmanager  {layout.url('alertmanager')}   (routing of alerts/alertmanager.yml)",
        f"  pager sink    {layout.url('pager-sink')}  "
        f"(PagerDuty/Opsgenie/Slack calls: {layout.pages_log.relative_to(root)}; make test-page)",
        f"  blackbox      {layout.url('blackbox-exporter')}   "
        f"(probes {configs.probe_target(layout)})",
        f"  logs          {layout.logs.relative_to(root)}/   stop: make down   status: make status",
        "",
        "try it:",
        f"  TOKEN=$(curl -s --cacert {ca} -u local-all:{secret} \\",
        f"      -d grant_type=client_credentials {idp}/oauth/token \\",
        f"      | python3 -c 'import json,sys; print({extract})')",
        f'  curl -s --cacert {ca} -H "Authorization: Bearer $TOKEN" \\',
        f"      -H 'Content-Type: application/json' -d '{body}' {verifier}/verify",
        "",
    ]
    print("\n".join(lines), flush=True)


def down() -> None:
    layout = Layout.default()
    if supervisor.running_pid(layout) is None:
        _say("nothing running (no supervisord); stale pid and socket files, if any, removed")
        return
    supervisor.shutdown(layout)
    _say("stopped every program and supervisord; data stays in .local/ (remove it to reset)")


def status() -> int:
    layout = Layout.default()
    if supervisor.running_pid(layout) is None:
        _say("not running: `make up` starts it")
        return 3
    states = supervisor.states(layout)
    width = max(map(len, configs.PROGRAM_ORDER))
    for name in configs.PROGRAM_ORDER:
        port = layout.ports.named()[name]
        print(f"  {name:<{width}} {states.get(name, 'MISSING'):<9} {HOST}:{port}")
    return 0 if all(states.get(n) == "RUNNING" for n in configs.PROGRAM_ORDER) else 1
