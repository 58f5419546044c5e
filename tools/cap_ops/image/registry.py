"""A local OCI registry for the tests and the make targets that push: Debian's
``docker-registry`` (distribution 2.8) on 127.0.0.1, plain HTTP on loopback only.

:func:`local_registry` starts it on a free port with its filesystem root in a given folder and
stops it, by its PID, when the block ends; the same folder serves again on the next start.
:func:`push` copies an image from the project's containers storage with ``skopeo`` and returns
the digest the registry holds it under.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from cap_ops.devkit.net import free_port
from cap_ops.image import containers
from cap_ops.poll import wait_until

START_TIMEOUT = 20.0


@dataclass(frozen=True)
class Registry:
    """A running registry: ``host`` is ``127.0.0.1:<port>``, ``root`` its storage folder."""

    host: str
    root: Path
    pid: int

    def reference(self, repository: str, digest: str) -> str:
        """``<host>/<repository>@<digest>``: what is signed and verified."""
        return f"{self.host}/{repository}@{digest}"

    def tag_reference(self, repository: str, tag: str) -> str:
        return f"{self.host}/{repository}:{tag}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def config(root: Path, port: int) -> str:
    """distribution's configuration: filesystem storage under ``root``, no access log."""
    return "\n".join(
        [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {root / 'data'}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{port}",
            f"  secret: {secrets.token_hex(16)}",
            "",
        ]
    )


def _answers(url: str) -> bool:
    return httpx.get(f"{url}/v2/", timeout=1.0).status_code == 200


@contextmanager
def local_registry(root: Path) -> Iterator[Registry]:
    """``docker-registry serve`` on a free loopback port over ``root`` (created if needed),
    until the block ends; its log is ``root/registry.log``."""
    executable = containers.program("docker-registry")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cfg = root / "config.yml"
    cfg.write_text(config(root, port))
    cfg.chmod(0o600)  # the HTTP secret
    with (root / "registry.log").open("ab") as log:
        process = subprocess.Popen(
            [executable, "serve", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    registry = Registry(host=f"127.0.0.1:{port}", root=root, pid=process.pid)
    try:
        wait_until(
            lambda: process.poll() is None and _answers(registry.url),
            START_TIMEOUT,
            f"the registry on {registry.host} (log: {root / 'registry.log'})",
            ignore=(httpx.HTTPError,),
        )
        yield registry
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def push(
    image: str,
    registry: Registry,
    repository: str,
    tag: str,
    state: Path = containers.STATE,
) -> str:
    """Copy ``image`` (a reference or ``sha256:`` ID in the containers storage at ``state``) to
    ``registry``/``repository``:``tag``; the manifest digest the registry holds it under."""
    source = image.removeprefix("sha256:")  # an image ID is written bare
    digest_file = registry.root / f".digest-{secrets.token_hex(4)}"
    destination = registry.tag_reference(repository, tag)
    try:
        containers.run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                "--digestfile",
                digest_file,
                f"containers-storage:{source}",
                f"docker://{destination}",
            ],
            step=f"skopeo copy {image} to {destination}",
            state=state,
        )
        return digest_file.read_text().strip()
    finally:
        digest_file.unlink(missing_ok=True)
