"""Run the verifier under granian: TLS 1.3 minimum, optional mTLS, N workers, graceful stop.

This module must not import prometheus-client (directly or through the app): the metrics
directory is put in the environment first, so that the workers share their metrics.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from granian.constants import HTTPModes, Interfaces, Loops
from granian.http import HTTP1Settings
from granian.server import MPServer

from cap_verifier.logs import granian_log_config
from cap_verifier.settings import CONFIG_ENV, METRICS_DIR_ENV, Settings

APP_FACTORY = "cap_verifier.app:create_app_from_env"


def build_server(settings: Settings) -> MPServer:
    """A granian server for the settings; workers build the app from the same config."""
    tls = settings.tls
    ssl: dict[str, object] = {}
    if tls.enabled:
        ssl = {"ssl_cert": Path(str(tls.cert)), "ssl_key": Path(str(tls.key))}
        if tls.client_ca:
            ssl["ssl_ca"] = Path(tls.client_ca)
            ssl["ssl_client_verify"] = tls.require_mtls
    return MPServer(
        APP_FACTORY,
        factory=True,
        address=settings.server.host,
        port=settings.server.port,
        interface=Interfaces.ASGI,
        # HTTP/1.1 only: in "auto" mode the server first waits, without any time limit, for the
        # bytes that tell HTTP/1 from HTTP/2, so a silent connection would never be closed.
        http=HTTPModes.http1,
        workers=settings.server.workers,
        loop=Loops.uvloop,
        backlog=settings.server.backlog,
        # Each open connection holds one of these per worker, idle or not.
        backpressure=settings.server.max_connections,
        http1_settings=HTTP1Settings(
            header_read_timeout=round(settings.server.head_timeout * 1000),
            # Room beyond limits.max_header_bytes: the app, not the server, answers 431 there.
            max_buffer_size=max(
                HTTP1Settings.max_buffer_size, 2 * settings.limits.max_header_bytes
            ),
        ),
        log_dictconfig=granian_log_config(settings.logging.level),
        workers_kill_timeout=max(1, round(settings.server.graceful_timeout)),
        respawn_failed_workers=True,
        websockets=False,
        **ssl,  # type: ignore[arg-type]
    )


def serve(settings: Settings, config_path: str | None) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests get ``server.graceful_timeout``."""
    if config_path is not None:
        os.environ[CONFIG_ENV] = str(Path(config_path).resolve())
    metrics_dir = tempfile.mkdtemp(prefix="cap-verifier-metrics-")
    os.environ[METRICS_DIR_ENV] = metrics_dir
    try:
        build_server(settings).serve()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
