"""``make scan``: the vulnerability checks that can run without a vulnerability database, and
the gate of the real scanner that runs in users' CI.

Here (``python -m cap_ops.image.scan``):

- Debian: security fixes not yet in the image. apt plans a ``dist-upgrade`` against the
  image's own ``/var/lib/dpkg/status`` with the lists of the archive the image was made from
  (:data:`cap_ops.image.base.SOURCES`), fetched into a folder of the scan's own; every package
  whose newer version comes from the ``-security`` suite is a finding. A mirror that cannot be
  reached is a failure, never "nothing found".
- Python: ``pip-audit --strict`` on the image's ``/opt/venv`` (or, with ``--lock``, on the
  lock's requirements of the service). Without vulnerability data (no network to PyPI's JSON
  API or OSV) pip-audit cannot audit: that is a failure naming pip-audit, never "no known
  vulnerabilities".

Each failure is one line on stderr and a non-zero exit. The real scanner (Trivy, with its
database) runs in the delivery workflow with :data:`TRIVY_GATE`.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import msgspec

from cap_ops.image import base, containers, rootfs
from cap_ops.image.apt import Apt, AptError, Source
from cap_ops.image.build import built_image
from cap_ops.image.sbom import UV

ROOT = containers.ROOT
PIP_AUDIT = ROOT / ".venv" / "bin" / "pip-audit"
LOCK_REQUIREMENTS = (
    "export",
    "--frozen",
    "--no-dev",
    "--no-default-groups",
    "--no-emit-project",
    "--format",
    "requirements.txt",
)
"""The service's locked requirements with their hashes (what the image installs)."""

TRIVY_GATE: Final[dict[str, str | bool]] = {
    "scanners": "vuln",
    "severity": "CRITICAL",
    "ignore-unfixed": False,
    "exit-code": "1",
}
"""The users' CI gate, as inputs of the Trivy action's scan step: any finding of CRITICAL
severity (CVSS >= 9.0), with or without a fix, fails the job. tests/image/test_scan.py holds the
workflow's scan step to it."""


class ScanError(Exception):
    """One line: which scanner had no data or found what."""


class Finding(msgspec.Struct, frozen=True):
    package: str
    installed: str
    fixed: str
    origin: str

    def __str__(self) -> str:
        return f"{self.package} {self.installed} -> {self.fixed} ({self.origin})"


_INST = re.compile(r"^Inst (\S+) \[([^\]]+)\] \((\S+) (.+)\)")


def parse_source(line: str) -> Source:
    """A one-line ``deb URI SUITE COMPONENT...`` entry."""
    kind, uri, suite, *components = line.split()
    if kind != "deb" or not components:
        raise ValueError(f"not a one-line deb source: {line}")
    return Source(uri, suite, tuple(components))


def image_sources(codename: str) -> list[Source]:
    """The archive the image was made from; its Debian release must be that archive's."""
    if codename != base.SUITE:
        raise ScanError(f"the image is Debian {codename}, its base's sources are {base.SUITE}")
    return [parse_source(line) for line in base.SOURCES]


def codename(root: Path) -> str:
    release = (root / "etc" / "os-release").read_text()
    found = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", release, re.MULTILINE)
    if found is None:
        raise ScanError(f"{root}/etc/os-release names no VERSION_CODENAME")
    return found[1]


def security_fixes(plan: str) -> list[Finding]:
    """The ``Inst`` lines of ``apt-get -s`` whose new version comes from a security suite."""
    found = []
    for line in plan.splitlines():
        match = _INST.match(line)
        if match and "-security" in match[4]:
            package, installed, fixed, origin = match.groups()
            found.append(Finding(package, installed, fixed, origin.rsplit(" [", 1)[0]))
    return found


def debian_security(status: Path, work: Path, sources: Sequence[Source]) -> list[Finding]:
    """Security fixes from ``sources`` not applied in the dpkg ``status``; AptError (one line)
    when a list cannot be fetched."""
    apt = Apt(work, sources, status=status)
    apt.update()
    # -f: the runtime base purged packages that others depend on (perl-base, debconf) on purpose;
    # apt plans their reinstallation too (new installs, not findings) instead of refusing.
    plan = apt.run(
        "apt-get", "-s", "-q", "-f", "dist-upgrade", step="apt-get -s dist-upgrade on the image"
    )
    return security_fixes(plan)


def pip_audit(target: Sequence[str], env: dict[str, str] | None = None) -> str:
    """``pip-audit --strict`` on ``target`` (its arguments naming what to audit); its summary.
    ScanError when it found vulnerabilities or could not get data for every package."""
    with tempfile.TemporaryDirectory() as work:
        report = Path(work) / "report.json"
        result = subprocess.run(
            [
                str(PIP_AUDIT),
                "--strict",
                "--progress-spinner=off",
                "--format=json",
                "--output",
                str(report),
                *target,
            ],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        if result.returncode == 0:
            audited = msgspec.json.decode(report.read_bytes())["dependencies"]
            return f"pip-audit: {len(audited)} packages audited, no known vulnerability"
        if report.exists():
            vulnerable = [
                f"{d['name']} {d['version']} ({', '.join(v['id'] for v in d['vulns'])})"
                for d in msgspec.json.decode(report.read_bytes())["dependencies"]
                if d.get("vulns")
            ]
            if vulnerable:
                raise ScanError(f"known vulnerabilities: {'; '.join(vulnerable)}")
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    reason = (lines or [f"exit status {result.returncode}"])[-1].removeprefix(
        "ERROR:pip_audit._cli:"
    )
    raise ScanError(f"no vulnerability data (a scan without data is no pass): {reason}")


def lock_target(work: Path) -> list[str]:
    """pip-audit's arguments for the lock's requirements of the service."""
    requirements = work / "requirements.txt"
    subprocess.run(
        [str(UV), *LOCK_REQUIREMENTS, "--project", str(ROOT), "-o", str(requirements)],
        check=True,
        capture_output=True,
    )
    return ["--requirement", str(requirements), "--no-deps", "--disable-pip", "--require-hashes"]


def venv_target(root: Path) -> list[str]:
    """pip-audit's arguments for the environment under an image's root."""
    site = sorted((root / rootfs.VENV / "lib").glob("python3*/site-packages"))
    if len(site) != 1:
        raise ScanError(f"no single site-packages under {root / rootfs.VENV}")
    return ["--path", str(site[0])]


def debian_check(root: Path, work: Path) -> str:
    """The Debian check on the image mounted at ``root``: its summary line, or ScanError."""
    fixes = debian_security(root / rootfs.DPKG_STATUS, work, image_sources(codename(root)))
    if fixes:
        raise ScanError(f"security fixes not in the image: {'; '.join(map(str, fixes))}")
    return f"debian: no security fix of {base.SUITE}-security pending in the image"


def run_checks(checks: dict[str, Callable[[], str]]) -> int:
    """Every check, each one line (a failure on stderr, naming its scanner); failures count."""
    failed = 0
    for scanner, check in checks.items():
        try:
            print(check())
        except (ScanError, AptError, containers.ContainerError) as err:
            print(f"make scan: {scanner}: {err}", file=sys.stderr)
            failed += 1
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cap_ops.image.scan", description=__doc__)
    parser.add_argument(
        "--lock", action="store_true", help="only pip-audit, on the lock's requirements"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        if args.lock:
            return min(1, run_checks({"pip-audit": lambda: pip_audit(lock_target(Path(work)))}))
        try:
            image = built_image().by_digest
        except containers.ContainerError as err:
            print(f"make scan: {err}", file=sys.stderr)
            return 1
        with rootfs.mounted(image) as root:
            checks = {
                "debian": lambda: debian_check(root, Path(work) / "apt"),
                "pip-audit": lambda: pip_audit(venv_target(root)),
            }
            return min(1, run_checks(checks))


if __name__ == "__main__":
    sys.exit(main())
