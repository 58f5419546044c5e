"""Checks before `make up` touches anything: Debian packages, free ports, the rule files,
the Alertmanager and blackbox exporter configurations.

Every problem is one line saying what to do (:class:`Problem`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterable

from cap_ops.localenv.layout import HOST, Layout

DEBIAN_PACKAGES = {
    "prometheus": "/usr/bin/prometheus",
    "prometheus-alertmanager": "/usr/bin/prometheus-alertmanager",
    "prometheus-blackbox-exporter": "/usr/bin/prometheus-blackbox-exporter",
    "python3.11": "/usr/bin/python3.11",  # the service user's interpreter
    "acl": "/usr/bin/setfacl",  # lets the service user through the checkout's parents
    "iproute2": "/usr/bin/ss",
    "age": "/usr/bin/age",  # encrypts the configuration in backups (playbooks/backup.yml)
}
TOOLS = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}


class Problem(Exception):
    """A reason not to go on; ``str()`` is the one line for the operator."""


def missing_packages() -> list[str]:
    missing = [pkg for pkg, binary in DEBIAN_PACKAGES.items() if not os.path.exists(binary)]
    missing += [pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None]
    return sorted(set(missing))


def ensure_packages() -> None:
    """Install the Debian packages when missing and root; otherwise say what to install."""
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise Problem(f"missing Debian packages: run `sudo apt-get install {' '.join(missing)}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise Problem(f"`{' '.join(command)}` failed: {last}")
    # the packages' own services are not wanted: our supervisord runs them on loopback
    for service in ("prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter"):
        subprocess.run(["service", service, "stop"], capture_output=True, check=False)


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((HOST, port)) == 0


def listener_of(port: int) -> str:
    """A short description of who listens on ``port`` (from `ss`), or ''."""
    if shutil.which("ss") is None:
        return ""
    result = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=False
    )
    line = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
    users = line.split("users:", 1)[1] if "users:" in line else ""
    return f" by {users.strip()}" if users else ""


def check_ports_free(layout: Layout, ports: Iterable[tuple[str, int]]) -> None:
    for name, port in ports:
        if port_in_use(port):
            raise Problem(
                f"port {port} ({name}) on {HOST} is already in use{listener_of(port)}: "
                "stop that process, or run `make down` if it is a previous local environment"
            )


def check_rules(layout: Layout) -> None:
    """`promtool check rules` on every rule file: a broken file stops `make up` early."""
    files = sorted(layout.alerts_dir.glob("*.rules.yaml"))
    if not files:
        raise Problem(f"no rule files in {layout.alerts_dir}: the alerts are part of the env")
    result = subprocess.run(
        ["promtool", "check", "rules", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "FAILED" in ln or "error" in ln.lower()), lines[-1])
        raise Problem(f"alert rules do not load: {detail.strip()}")


def check_alertmanager(config_path: str) -> None:
    result = subprocess.run(
        ["amtool", "check-config", config_path], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
        raise Problem(f"Alertmanager config invalid: {lines[-1].strip() if lines else '?'}")


def check_blackbox(config_path: str) -> None:
    result = subprocess.run(
        ["/usr/bin/prometheus-blackbox-exporter", "--config.check", f"--config.file={config_path}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
        raise Problem(f"blackbox exporter config invalid: {lines[-1].strip() if lines else '?'}")
