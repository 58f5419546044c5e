"""A real Alertmanager (Debian's prometheus-alertmanager) on a free loopback port, for tests, and
a local HTTP receiver that stands in for PagerDuty, Opsgenie and Slack.

:func:`local_config` derives the config it runs from ``alerts/alertmanager.yml``: the same
routes, receivers, inhibit rules and time intervals, with every integration's URL pointed at the
recorder (nothing leaves the machine), key files written in a temporary folder, and the
maintenance window's times replaced by what the test needs (Alertmanager judges time intervals
by the real clock, which a test cannot move).
"""

from __future__ import annotations

import copy
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from ruamel.yaml import YAML

from cap_ops.devkit.net import free_port
from cap_ops.poll import wait_until

BINARY = "prometheus-alertmanager"
MAINTENANCE = "maintenance-window"
START_WITHIN = 20.0
"""Seconds for Alertmanager to answer /-/ready."""
STOP_WITHIN = 10.0
# Where each integration kind is told to send, and under which key (Alertmanager 0.25).
_URL_KEYS = {"pagerduty_configs": "url", "opsgenie_configs": "api_url"}


@dataclass(frozen=True)
class Notification:
    """One request an integration made: ``/<integration>/<receiver>/...`` and its body."""

    path: str
    body: str

    @property
    def integration(self) -> str:
        return self.path.split("/")[1]

    @property
    def receiver(self) -> str:
        return self.path.split("/")[2]


class Recorder:
    """Answers every POST with 202 and keeps it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Notification] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode("utf-8", "replace")
                with recorder._lock:
                    recorder._received.append(Notification(self.path, body))
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status": "success"}')

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def received(self) -> list[Notification]:
        with self._lock:
            return list(self._received)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def local_config(
    source: dict[str, Any], recorder: str, secrets: Path, maintenance: list[dict[str, Any]]
) -> dict[str, Any]:
    """``source`` with every integration sending to ``recorder`` under
    ``/<integration>/<receiver>``, its key files in ``secrets``, and ``maintenance`` as the
    maintenance window's time intervals. Routes, receivers and inhibit rules stay as they are."""
    config = copy.deepcopy(source)
    secrets.mkdir(parents=True, exist_ok=True)
    for receiver in config["receivers"]:
        name = receiver["name"]
        for kind, integrations in receiver.items():
            if kind == "name":
                continue
            integration = kind.removesuffix("_configs")
            target = f"{recorder}/{integration}/{name}"
            if kind not in (*_URL_KEYS, "slack_configs"):
                raise AssertionError(f"receiver {name}: {kind} has no local stand-in")
            for settings in integrations:
                if kind in _URL_KEYS:
                    settings[_URL_KEYS[kind]] = f"{target}/"
                for key in [k for k in settings if k.endswith("_file")]:
                    path = secrets / f"{name}-{integration}-{key}"
                    # No newline: Alertmanager 0.25 sends a key file's bytes as they are.
                    path.write_text(target if key == "api_url_file" else f"test-{key}")
                    settings[key] = str(path)
    (window,) = [t for t in config["time_intervals"] if t["name"] == MAINTENANCE]
    window["time_intervals"] = maintenance
    return config


class Alertmanager:
    """``prometheus-alertmanager`` with ``config``, no cluster, its data in ``workdir``."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "alertmanager.yml"
        self.log = workdir / "alertmanager.log"
        yaml = YAML(typ="safe", pure=True)
        with self.config.open("w", encoding="utf-8") as out:
            yaml.dump(config, out)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    BINARY,
                    f"--config.file={self.config}",
                    f"--storage.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",
                    "--log.level=debug",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{BINARY} exited:\n{self.log_text()[-2000:]}")
            try:
                return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, START_WITHIN, BINARY)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_WITHIN)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_WITHIN)
        self.process = None

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def post(self, alerts: list[dict[str, Any]]) -> None:
        response = httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=5)
        assert response.status_code == 200, response.text

    def alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def groups(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v2/alerts/groups", timeout=5)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found


@contextmanager
def running(workdir: Path, config: dict[str, Any]) -> Iterator[Alertmanager]:
    alertmanager = Alertmanager(workdir, config)
    try:
        alertmanager.start()
        yield alertmanager
    finally:
        alertmanager.stop()


def firing_since(
    minutes: float, labels: dict[str, str], annotations: dict[str, str]
) -> dict[str, Any]:
    """An alert as Prometheus posts it, firing for ``minutes`` (past every group_wait, so that
    Alertmanager flushes its group at once)."""
    started = datetime.now(UTC) - timedelta(minutes=minutes)
    return {
        "labels": labels,
        "annotations": annotations,
        "startsAt": started.isoformat().replace("+00:00", "Z"),
        "generatorURL": "http://127.0.0.1/graph",
    }
