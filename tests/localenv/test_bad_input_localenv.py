"""`make up` refuses bad situations with one clear line and leaves nothing behind; these run
before the environment is brought up (file order), and skip when a developer's one is up."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cap_ops.localenv import supervisor
from cap_ops.localenv.configs import PROGRAM_ORDER
from cap_ops.localenv.layout import ALERTS_DIR_ENV, HOST, Layout
from support.localenv import localenv
from support.require import need

pytestmark = pytest.mark.localenv


@pytest.fixture
def down(layout: Layout) -> Iterator[None]:
    need(
        supervisor.running_pid(layout) is None,
        "a local environment is running; these checks need it stopped (make down)",
    )
    yield
    localenv("down")  # whatever happened, nothing stays running


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_port_in_use_is_one_line_naming_it(layout: Layout, down: None) -> None:
    with socket.socket() as squatter:
        squatter.bind((HOST, layout.ports.alertmanager))
        squatter.listen()
        result = localenv("up")
    assert result.returncode == 1
    line = one_line(result)
    assert f"port {layout.ports.alertmanager}" in line
    assert "in use" in line
    assert supervisor.running_pid(layout) is None


def test_broken_rule_file_is_one_line(layout: Layout, down: None, tmp_path: Path) -> None:
    for source in layout.alerts_dir.glob("*"):
        if source.is_file():
            (tmp_path / source.name).write_bytes(source.read_bytes())
    (tmp_path / "broken.rules.yaml").write_text(
        "groups:\n  - name: broken\n    rules:\n      - alert: Broken\n        expr: rate(\n"
    )
    result = localenv("up", **{ALERTS_DIR_ENV: str(tmp_path)})
    assert result.returncode == 1
    assert "alert rules do not load" in one_line(result)
    assert supervisor.running_pid(layout) is None


def test_stale_pid_file_is_cleaned(layout: Layout, down: None) -> None:
    layout.supervisor_dir.mkdir(parents=True, exist_ok=True)
    layout.supervisor_pid.write_text("999999\n")
    status = localenv("status")
    assert status.returncode == 3
    assert "not running" in status.stdout
    assert not layout.supervisor_pid.exists()
    stopped = localenv("down")
    assert stopped.returncode == 0
    assert "nothing running" in stopped.stdout


def test_down_cleans_up_everything_up_started(layout: Layout, down: None) -> None:
    started = localenv("up")
    assert started.returncode == 0, started.stderr
    pids = set(supervisor.pids(layout).values())
    assert len(pids) == len(PROGRAM_ORDER)
    stopped = localenv("down")
    assert stopped.returncode == 0, stopped.stderr
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"pid {pid} survived make down"
    for port in layout.ports.named().values():
        with socket.socket() as probe:
            assert probe.connect_ex((HOST, port)) != 0, f"port {port} still open"
    assert not layout.supervisor_pid.exists()
    assert not layout.supervisor_socket.exists()
