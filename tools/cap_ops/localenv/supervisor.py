"""Talking to the local supervisord over its unix socket (XML-RPC, as supervisorctl does)."""

from __future__ import annotations

import os
import subprocess
import sys
import xmlrpc.client
from pathlib import Path
from typing import Any, cast

from supervisor.xmlrpc import SupervisorTransport

from cap_ops.localenv.layout import Layout
from cap_ops.poll import wait_until


class SupervisorError(Exception):
    """supervisord is unreachable or refused an operation."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_pid(layout: Layout) -> int | None:
    """The pid of our supervisord, or None; a stale pid file is removed."""
    try:
        pid = int(layout.supervisor_pid.read_text().strip())
    except (OSError, ValueError):
        return None
    if _pid_alive(pid) and layout.supervisor_socket.exists():
        return pid
    layout.supervisor_pid.unlink(missing_ok=True)
    layout.supervisor_socket.unlink(missing_ok=True)
    return None


def proxy(layout: Layout) -> Any:
    transport = SupervisorTransport(None, None, f"unix://{layout.supervisor_socket}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def start_daemon(layout: Layout) -> None:
    """Start supervisord (it daemonizes) and wait for its socket to answer."""
    supervisord = Path(sys.executable).parent / "supervisord"
    subprocess.run([str(supervisord), "-c", str(layout.supervisor_conf)], check=True)
    try:
        wait_until(
            lambda: proxy(layout).supervisor.getState()["statename"] == "RUNNING",
            15,
            "supervisord",
            interval=0.1,
            ignore=(OSError, xmlrpc.client.Fault),
        )
    except TimeoutError:
        log = layout.logs / "supervisord.log"
        raise SupervisorError(f"supervisord did not start; see {log}") from None


def states(layout: Layout) -> dict[str, str]:
    """Program name → state name (RUNNING, STOPPED, FATAL …)."""
    info = cast(list[dict[str, Any]], proxy(layout).supervisor.getAllProcessInfo())
    return {entry["name"]: entry["statename"] for entry in info}


def pids(layout: Layout) -> dict[str, int]:
    info = cast(list[dict[str, Any]], proxy(layout).supervisor.getAllProcessInfo())
    return {entry["name"]: entry["pid"] for entry in info if entry["pid"]}


def reload_config(layout: Layout) -> None:
    """Apply a changed supervisord.conf: add new programs, drop removed ones."""
    server = proxy(layout).supervisor
    added, changed, removed = server.reloadConfig()[0]
    for name in removed:
        server.stopProcessGroup(name)
        server.removeProcessGroup(name)
    for name in changed:
        server.stopProcessGroup(name)
        server.removeProcessGroup(name)
        server.addProcessGroup(name)
    for name in added:
        server.addProcessGroup(name)


def start(layout: Layout, name: str) -> None:
    try:
        proxy(layout).supervisor.startProcess(name, True)
    except xmlrpc.client.Fault as fault:
        if "ALREADY_STARTED" not in fault.faultString:
            log = layout.logs / f"{name}.log"
            raise SupervisorError(
                f"{name} did not start ({fault.faultString}); see {log}"
            ) from None


def restart(layout: Layout, name: str) -> None:
    server = proxy(layout).supervisor
    try:
        server.stopProcess(name, True)
    except xmlrpc.client.Fault as fault:
        if "NOT_RUNNING" not in fault.faultString:
            raise
    start(layout, name)


def shutdown(layout: Layout, timeout: float = 60) -> None:
    """Stop every program, then supervisord itself; wait until it is gone."""
    pid = running_pid(layout)
    if pid is None:
        return
    server = proxy(layout).supervisor
    server.stopAllProcesses(True)
    server.shutdown()
    try:
        wait_until(lambda: not _pid_alive(pid), timeout, f"supervisord (pid {pid}) to stop", 0.1)
    except TimeoutError as exc:
        raise SupervisorError(str(exc)) from None
    layout.supervisor_pid.unlink(missing_ok=True)
    layout.supervisor_socket.unlink(missing_ok=True)
