"""The service on a read-only root filesystem, as in its container: it writes only to /tmp
and to the data volume. bubblewrap mounts / read-only, a fresh /tmp, the data volume at /mnt
and the configuration read-only at /srv; the network stays shared, so tests can call it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from cap_ops.devkit.pki import PKI
from cap_ops.devkit.service import ServiceProcess
from cap_ops.devkit.tokens import bearer
from cap_verifier.domain import IR
from support.require import need

REPO = Path(__file__).resolve().parents[3]
DATA_MOUNT = Path("/mnt")
CONFIG_MOUNT = Path("/srv")


def test_serves_with_a_read_only_root(
    make_service: Callable[..., ServiceProcess],
    pki: PKI,
    tmp_path: Path,
    token: Callable[..., str],
    lksg_ir: IR,
) -> None:
    bwrap = shutil.which("bwrap")
    need(bwrap is not None, "bubblewrap (Debian package bubblewrap) is not installed")
    assert bwrap is not None
    config_dir, data_dir, scratch = tmp_path / "config", tmp_path / "data", tmp_path / "tmp"
    for directory in (config_dir, data_dir, scratch):
        directory.mkdir()
    for name, source in {
        "server.crt": pki.server.cert,
        "server.key": pki.server.key,
        "ca.crt": pki.ca_cert,
    }.items():
        shutil.copy(source, config_dir / name)
    service = make_service(
        tls={"cert": str(CONFIG_MOUNT / "server.crt"), "key": str(CONFIG_MOUNT / "server.key")},
        oauth2={"jwks_ca_file": str(CONFIG_MOUNT / "ca.crt")},
        registry={"url": f"sqlite:///{DATA_MOUNT}/registry.db"},
    )
    service.config_path = config_dir / "config.yaml"
    service.command_prefix = [
        bwrap,
        "--die-with-parent",
        "--unshare-pid",
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--bind", str(scratch), "/tmp",
        "--ro-bind", str(REPO), str(REPO),  # the checkout (and .venv) may live under /tmp
        "--bind", str(data_dir), str(DATA_MOUNT),
        "--ro-bind", str(config_dir), str(CONFIG_MOUNT),
        "--chdir", str(DATA_MOUNT),
        "--",
    ]  # fmt: skip
    service.config_arg = str(CONFIG_MOUNT / "config.yaml")  # the path as the sandbox sees it
    service.migrate()
    service.start()
    try:
        with service.client(headers=bearer(token())) as client:
            verified = client.post(
                "/verify",
                json={"ir": lksg_ir.to_json(), "context": {"supplier_hashes": ["0x" + "11" * 32]}},
            )
            ready = client.get("/readyz")
        assert verified.status_code == 200, verified.text
        assert ready.status_code == 200
        assert (data_dir / "registry.db").exists()
    finally:
        service.stop()
    assert "Read-only file system" not in service.logs()
