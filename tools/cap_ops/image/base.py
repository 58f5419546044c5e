"""The image's two bases, made without a registry: Debian root filesystems from the archive.

``mmdebstrap`` builds each from ``SUITE`` with ``SOURCE_DATE_EPOCH`` fixed, so the same archive
state gives the same tarball byte for byte; ``podman import`` (the tarball's mtime set to the
same epoch) then gives the same image id. snapshot.debian.org is not reachable from these
machines: to pin the archive state as well, point ``SOURCES`` at a snapshot URL.

- build: Debian's Python 3.11 and pip (to install uv); never shipped.
- runtime: the ``essential`` variant plus Python 3, the CA bundle and ``passwd`` (the
  Dockerfile's ``useradd``), then purged with dpkg of what the service never runs (perl,
  debconf, init helpers, openssl's CLI, ...) so that ``/var/lib/dpkg/status`` stays true for
  the scanner, and finally without dpkg's own programs (no package manager is left) and
  without set-user-ID or set-group-ID bits.

Each base is tagged with a hash of its definition: editing it here makes the next build
rebuild it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import msgspec
from msgspec import Struct

from cap_ops.image.containers import ROOT, STATE, ContainerError, image_exists, run

SUITE = "bookworm"
SOURCE_DATE_EPOCH = 1764460800  # 2025-11-30T00:00:00Z: every file's mtime in the bases
SOURCES = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")
WORK = ROOT / ".local" / "image" / "bases"


class BaseImage(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    """Image name in local storage: ``localhost/<name>:<SUITE>-<hash of the definition>``."""
    variant: Literal["essential", "minbase"]
    include: tuple[str, ...]
    dpkg_options: tuple[str, ...] = ()
    purge: tuple[tuple[str, ...], ...] = ()
    """``dpkg --purge`` batches, in order (a package's removal script may need the next one's
    programs)."""
    remove: tuple[str, ...] = ()
    """Paths (shell globs) removed last, relative to the root."""
    drop_setid: bool = False
    """Clear every set-user-ID and set-group-ID bit (su, passwd, ...: nothing to gain root by)."""

    @property
    def reference(self) -> str:
        definition = msgspec.json.encode((self, SUITE, SOURCE_DATE_EPOCH, SOURCES, ENV))
        return f"localhost/{self.name}:{SUITE}-{hashlib.sha256(definition).hexdigest()[:12]}"

    def customize_hook(self) -> str | None:
        """The shell of mmdebstrap's ``--customize-hook`` (``$1`` is the root), if any."""
        steps = [
            'chroot "$1" dpkg --purge --force-remove-essential --force-depends '
            + " ".join(map(shlex.quote, batch))
            for batch in self.purge
        ]
        if self.remove:
            steps.append('cd "$1" && rm -rf -- ' + " ".join(self.remove))
        if self.drop_setid:
            steps.append('find "$1" -xdev -type f -perm /6000 -exec chmod ug-s {} +')
        return " && ".join(steps) or None


BUILD = BaseImage(
    name="cap-verifier-build-base",
    variant="minbase",
    include=("python3.11", "python3-pip", "ca-certificates"),
    remove=("usr/lib/python3*/EXTERNALLY-MANAGED",),  # pip installs uv system-wide
)

RUNTIME = BaseImage(
    name="cap-verifier-runtime-base",
    variant="essential",
    include=("python3", "ca-certificates", "passwd"),
    dpkg_options=(
        "path-exclude=/usr/share/man/*",
        "path-exclude=/usr/share/doc/*",
        "path-include=/usr/share/doc/*/copyright",  # the licences stay
        "path-exclude=/usr/share/locale/*",
        "path-exclude=/usr/share/info/*",
    ),
    purge=(
        ("util-linux-extra",),  # its removal script needs init-system-helpers
        (
            "usrmerge",
            "perl",
            "perl-modules-5.36",
            "libperl5.36",
            "libfile-find-rule-perl",
            "libnumber-compare-perl",
            "libtext-glob-perl",
            "sysvinit-utils",
            "init-system-helpers",
            "openssl",  # the CLI; libssl3 stays for Python's ssl
            "ncurses-bin",
            "hostname",
        ),
        ("debconf", "perl-base"),
    ),
    remove=(
        "usr/bin/dpkg*",
        "usr/sbin/dpkg*",
        "usr/bin/update-alternatives",
        "usr/share/dpkg",
        "usr/libexec/dpkg",
        "etc/dpkg",
        "var/cache/debconf",
    ),
    drop_setid=True,
)


def build_base(base: BaseImage, *, state: Path = STATE, force: bool = False) -> str:
    """Make ``base`` unless local storage has it (or ``force``); its reference."""
    reference = base.reference
    if image_exists(reference, state) and not force:
        return reference
    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WORK) as work:
        tarball = Path(work) / f"{base.name}.tar"
        hook = base.customize_hook()
        run(
            [
                "mmdebstrap",
                "--quiet",
                f"--variant={base.variant}",
                f"--include={','.join(base.include)}",
                *(f"--dpkgopt={option}" for option in base.dpkg_options),
                *([f"--customize-hook={hook}"] if hook else []),
                SUITE,
                tarball,
                *SOURCES,
            ],
            step=f"mmdebstrap of {reference}",
            state=state,
            env={"SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH)},
        )
        os.utime(tarball, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH))  # podman import's "created"
        run(
            ["podman", "import", *(f"--change=ENV {e}" for e in ENV), tarball, reference],
            step=f"podman import of {reference}",
            state=state,
        )
    return reference


def build_bases(*, state: Path = STATE, force: bool = False) -> tuple[str, str]:
    """(build base, runtime base) references, made if missing."""
    build = build_base(BUILD, state=state, force=force)
    return build, build_base(RUNTIME, state=state, force=force)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cap_ops.image base", description=__doc__)
    parser.add_argument("--force", action="store_true", help="rebuild even if present")
    args = parser.parse_args(argv)
    try:
        for reference in build_bases(force=args.force):
            print(reference)
    except ContainerError as exc:
        print(f"image base: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
