"""Serve the development IdP over TLS 1.3 with granian (local and CI only).

The Flask app runs under granian's WSGI interface. Workers build it through the factory
:func:`app_factory`, which reads the configuration file named by ``CAP_DEV_IDP_CONFIG``
(set by :func:`serve`). SIGHUP to the serve process makes granian respawn its worker, which
reloads everything; changes to the clients file and key directory are also picked up on
the next request without any signal. SIGTERM or SIGINT stops the server.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask
from granian.constants import Interfaces, SSLProtocols
from granian.server import Server

from cap_dev_idp import logs
from cap_dev_idp.app import create_app
from cap_dev_idp.clients import load_clients
from cap_dev_idp.keys import ensure_keys
from cap_dev_idp.settings import Settings, check_tls_files, load_settings

CONFIG_ENV = "CAP_DEV_IDP_CONFIG"
TARGET = "cap_dev_idp.server:app_factory"

_log = logs.get_logger("server")


def app_factory() -> Flask:
    """granian factory target: the app for the configuration in ``CAP_DEV_IDP_CONFIG``."""
    config = os.environ.get(CONFIG_ENV)
    if not config:
        raise RuntimeError(f"{CONFIG_ENV} is not set: start the server with `cap-dev-idp serve`")
    return create_app(load_settings(Path(config)))


def preflight(settings: Settings) -> tuple[Path, Path]:
    """Check everything ``serve`` needs before binding; raise ``ConfigError`` on a problem."""
    cert, key = check_tls_files(settings.server)
    load_clients(settings.clients_file)
    ensure_keys(settings.keys_dir)
    return cert, key


def serve(settings: Settings, config_file: Path) -> None:
    """Run granian in the foreground until SIGTERM or SIGINT."""
    cert, key = preflight(settings)
    os.environ[CONFIG_ENV] = str(config_file.resolve())
    server = Server(
        TARGET,
        address=settings.server.host,
        port=settings.server.port,
        interface=Interfaces.WSGI,
        factory=True,
        workers=1,
        blocking_threads=min(8, 2 * (os.cpu_count() or 1) + 1),
        ssl_cert=cert,
        ssl_key=key,
        ssl_protocol_min=SSLProtocols.tls13,
        log_dictconfig=logs.logging_config(),
        log_access=False,  # our app logs requests itself, without query strings
        respawn_interval=1.0,
    )
    _log.info(
        "starting",
        extra={
            "issuer": settings.issuer,
            "host": settings.server.host,
            "port": settings.server.port,
        },
    )
    server.serve()
