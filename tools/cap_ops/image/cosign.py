"""cosign: the pinned Debian package (``tools/cosign/cosign.lock``) in ``.tools/cosign/``.

``python -m cap_ops.image.cosign`` (``make cosign``) installs it: ``apt-get download`` through
the project's own apt configuration (:mod:`cap_ops.image.apt`: the lock's suite from the
machine's Debian mirror), the sha256 and size checked against the lock, ``dpkg-deb -x``. A
mismatch stops it with one line and leaves nothing installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from cap_ops.image.apt import Apt, AptError, Source, machine_mirror
from cap_verifier.typed_yaml import ConfigError, load_typed

ROOT = Path(__file__).resolve().parents[3]
LOCK = ROOT / "tools" / "cosign" / "cosign.lock"
HOME = ROOT / ".tools" / "cosign"
INSTALL_COMMAND = "make cosign"
MACHINE_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}


class CosignPin(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One Debian package version, its bytes pinned."""

    format: Literal[1]
    package: Literal["cosign"]
    version: Annotated[str, Meta(pattern=r"^[0-9][A-Za-z0-9.+~:-]*$")]
    suite: Annotated[str, Meta(pattern=r"^[a-z]+$")]
    architecture: Literal["amd64", "arm64"]
    sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, Meta(gt=0)]
    binary: Annotated[str, Meta(pattern=r"^[\w./-]+$")]

    @property
    def deb_name(self) -> str:
        """The file name ``apt-get download`` writes (an epoch's colon is written ``%3a``)."""
        version = self.version.replace(":", "%3a")
        return f"{self.package}_{version}_{self.architecture}.deb"


class CosignError(Exception):
    """One line: what is missing or does not match its pin."""


def load_pin(path: Path = LOCK) -> CosignPin:
    return load_typed(path, CosignPin)


def binary(home: Path = HOME, pin: CosignPin | None = None) -> Path:
    """``COSIGN`` (a cosign the CI installed itself), else the pinned one of ``make cosign``;
    a missing one names ``make cosign``."""
    if os.environ.get("COSIGN"):
        return Path(os.environ["COSIGN"])
    path = home / "root" / (pin or load_pin()).binary
    if not path.is_file():
        raise CosignError(f"cosign is not installed in {home}: run `{INSTALL_COMMAND}`")
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check(pin: CosignPin, deb: Path) -> None:
    """``deb`` is the pinned package, else a one-line :class:`CosignError`."""
    got = sha256(deb)
    if got != pin.sha256 or deb.stat().st_size != pin.size:
        raise CosignError(
            f"{deb.name}: sha256 mismatch: expected {pin.sha256} ({pin.size} bytes), "
            f"got {got} ({deb.stat().st_size} bytes); the pin is {LOCK.relative_to(ROOT)}"
        )


def download(pin: CosignPin, home: Path) -> Path:
    """``apt-get download`` of the pinned version into ``home``; its path."""
    apt = Apt(home / "apt", [Source(machine_mirror("archive"), pin.suite)])
    apt.update()
    apt.run(
        "apt-get",
        "-o",
        f"APT::Architecture={pin.architecture}",
        "download",
        f"{pin.package}={pin.version}",
        step=f"apt-get download {pin.package}={pin.version}",
        cwd=home,
    )
    return home / pin.deb_name


def install(home: Path = HOME, pin: CosignPin | None = None) -> Path:
    """The pinned cosign unpacked under ``home`` (downloaded unless its .deb is there); the
    path of the binary."""
    pin = pin or load_pin()
    machine = MACHINE_ARCHITECTURES.get(platform.machine(), platform.machine())
    if machine != pin.architecture:
        raise CosignError(f"{LOCK.name} pins {pin.architecture}, this machine is {machine}")
    home.mkdir(parents=True, exist_ok=True)
    deb = home / pin.deb_name
    if not deb.exists():
        deb = download(pin, home)
    try:
        check(pin, deb)
    except CosignError:
        deb.unlink()
        raise
    unpacked = home / "root"
    shutil.rmtree(unpacked, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
    return binary(home, pin)


def run(
    args: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """cosign ``args`` (captured); with ``check``, a failure is a one-line :class:`CosignError`
    with cosign's last error line."""
    result = subprocess.run(
        [str(binary()), *map(str, args)],
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
        check=False,
        cwd=cwd,
    )
    if check and result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        last = next((line for line in reversed(lines) if line.startswith("Error")), None)
        raise CosignError(f"cosign {args[0]} failed: {last or (lines or ['no output'])[-1]}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m cap_ops.image.cosign", description=__doc__).parse_args(
        argv
    )
    try:
        path = install()
    except (CosignError, AptError, ConfigError) as err:
        print(f"make cosign: {err}", file=sys.stderr)
        return 1
    print(f"cosign {load_pin().version} in {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
