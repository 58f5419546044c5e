"""The verifier as a real process: ``cap-verifier serve`` on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from cap_ops.devkit.net import free_port
from cap_ops.poll import wait_until

BIN = Path(sys.executable).parent


def service_config(
    tmp: Path,
    *,
    cert: Path,
    key: Path,
    ca_cert: Path,
    jwks_url: str,
    registry_url: str | None = None,
    issuer: str,
    audience: str,
    **sections: dict[str, Any],
) -> dict[str, Any]:
    """A complete config; ``sections`` are merged over the defaults key by key."""
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": free_port(), "workers": 1, "graceful_timeout": 10},
        "tls": {"enabled": True, "cert": str(cert), "key": str(key)},
        "oauth2": {
            "issuer": issuer,
            "audience": audience,
            "jwks_url": jwks_url,
            "jwks_ca_file": str(ca_cert),
        },
        "registry": {"url": registry_url or f"sqlite:///{tmp / 'registry.db'}"},
        "logging": {"level": "INFO"},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


class ServiceProcess:
    """Start, probe and stop one verifier process; its stdout goes to ``log_path``."""

    def __init__(
        self,
        config: dict[str, Any],
        workdir: Path,
        ca_cert: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.workdir = workdir
        self.ca_cert = ca_cert
        self.config_path = workdir / f"verifier-{config['server']['port']}.yaml"
        self.log_path = workdir / f"verifier-{config['server']['port']}.log"
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.config_arg: str | None = None
        """The config path given on the command line, when the process sees another one."""
        self.command_prefix: list[str] = []
        """Run the service under this wrapper (a sandbox, for example)."""
        self.client_cert: tuple[str, str] | None = None
        """(cert, key) presented by default: set it for a service that requires mTLS."""

    @property
    def port(self) -> int:
        return int(self.config["server"]["port"])

    @property
    def tls(self) -> bool:
        return bool(self.config["tls"].get("enabled", True))

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def client(self, cert: tuple[str, str] | None = None, **kwargs: Any) -> httpx.Client:
        """A client trusting the test CA, presenting ``cert`` (or ``client_cert``) if given."""
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        cert = cert or self.client_cert
        if cert is not None:
            context.load_cert_chain(*cert)
        return httpx.Client(base_url=self.url, verify=context, **{"timeout": 10, **kwargs})

    def migrate(self) -> None:
        self.write_config()
        subprocess.run(
            [
                *self.command_prefix,
                str(BIN / "cap-verifier"),
                "migrate",
                "--config",
                self._config_arg(),
            ],
            check=True,
            capture_output=True,
            env=self._env(),
        )

    def _config_arg(self) -> str:
        return self.config_arg or str(self.config_path)

    def write_config(self) -> None:
        """JSON is YAML 1.2: the config file is written as JSON."""
        self.config_path.write_text(json.dumps(self.config, indent=2))

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAP_VERIFIER_")}
        env.update(self.env)
        return env

    def start(self, *, wait: bool = True) -> None:
        self.write_config()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                *self.command_prefix,
                str(BIN / "cap-verifier"),
                "serve",
                "--config",
                self._config_arg(),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self._env(),
            cwd=self.workdir,
        )
        log.close()
        if wait:
            wait_until(self._healthy, 30, f"the verifier on port {self.port}")

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"verifier exited early:\n{self.log_path.read_text()[-3000:]}")
        try:
            with self.client() as client:
                return client.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 30) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""
