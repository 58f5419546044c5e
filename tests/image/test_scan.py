"""make scan: what it proves here and what it refuses to pretend.

pip-audit without vulnerability data must fail naming pip-audit, never report "no known
vulnerabilities"; the Debian check runs against the image's own dpkg status with the archive's
security suite and finds a fix that is pending, and a mirror it cannot reach is a failure. No
test here proves a Trivy/Grype scan (ORR 2.4-02): that runs in users' CI, with the gate of
:data:`cap_ops.image.scan.TRIVY_GATE`, which the workflow is held to below.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cap_ops.devkit.net import free_port
from cap_ops.image import rootfs, scan
from cap_ops.image.apt import AptError, Source
from cap_ops.image.build import BuiltImage
from cap_verifier.typed_yaml import read_yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
TRIVY_ACTION = "aquasecurity/trivy-action@"
SECURITY_FIXED = "libssl3"
"""A package of the image that Debian's security suite has updated (OpenSSL always has)."""


def _no_vulnerability_data() -> dict[str, str]:
    """The environment of a pip-audit that cannot reach any vulnerability service (its HTTPS
    goes to a closed loopback port), whatever this machine's network; apt's plain-HTTP mirror
    is left alone."""
    closed = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("https_proxy", "no_proxy")}
    return {**env, "HTTPS_PROXY": closed, "https_proxy": closed}


def _scan(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cap_ops.image.scan", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=ROOT,
    )


def test_pip_audit_without_vulnerability_data_fails_loudly() -> None:
    result = _scan("--lock", env=_no_vulnerability_data())
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("make scan: pip-audit: no vulnerability data")
    assert "No known vulnerabilities" not in result.stdout + result.stderr


def _status_stanza(package: str, version: str) -> str:
    return (
        f"Package: {package}\nStatus: install ok installed\nPriority: optional\n"
        f"Architecture: amd64\nVersion: {version}\n\n"
    )


def test_the_debian_check_fails_loudly_when_the_mirror_is_unreachable(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text(_status_stanza(SECURITY_FIXED, "0.0-0"))
    closed = f"http://127.0.0.1:{free_port()}"
    sources = [
        Source(f"{closed}/debian", "bookworm"),
        Source(f"{closed}/debian-security", "bookworm-security"),
    ]
    with pytest.raises(AptError) as failed:
        scan.debian_security(status, tmp_path / "apt", sources)
    message = str(failed.value)
    assert "\n" not in message
    assert "no package list" in message
    assert closed in message


def test_the_security_fixes_of_a_plan_are_those_of_a_security_suite() -> None:
    plan = "\n".join(
        [
            "Inst libssl3 [3.0.0-1] (3.0.22-1~deb12u2 Debian-Security:12/oldstable-security"
            " [amd64])",
            "Inst tzdata [2024a-0] (2025b-0+deb12u2 Debian:12.15/oldstable [all])",
            "Conf libssl3 (3.0.22-1~deb12u2 Debian-Security:12/oldstable-security [amd64])",
        ]
    )
    assert scan.security_fixes(plan) == [
        scan.Finding(
            "libssl3", "3.0.0-1", "3.0.22-1~deb12u2", "Debian-Security:12/oldstable-security"
        )
    ]


@pytest.mark.slow
def test_the_debian_check_runs_on_the_image_and_finds_a_pending_fix(
    service_image: BuiltImage, tmp_path: Path
) -> None:
    """The image's own status as it is (whatever is pending, apt planned against it), then with
    one package set back to an old version: that one must be found, from the security suite."""
    with rootfs.mounted(service_image.by_digest) as root:
        status = (root / rootfs.DPKG_STATUS).read_text()
        sources = scan.image_sources(scan.codename(root))
    as_built = tmp_path / "as-built"
    as_built.write_text(status)
    scan.debian_security(as_built, tmp_path / "apt", sources)

    stanza = re.compile(rf"(^Package: {SECURITY_FIXED}\n(?:.+\n)*?Version: )(\S+)", re.MULTILINE)
    assert stanza.search(status), f"{SECURITY_FIXED} is not in the image"
    set_back = tmp_path / "set-back"
    set_back.write_text(stanza.sub(r"\g<1>3.0.0-1", status))
    found = scan.debian_security(set_back, tmp_path / "apt", sources)
    assert [(f.package, f.installed) for f in found if f.package == SECURITY_FIXED] == [
        (SECURITY_FIXED, "3.0.0-1")
    ]
    assert all("-security" in f.origin for f in found)


@pytest.mark.slow
def test_make_scan_on_the_image_runs_both_checks_and_fails_without_data(
    service_image: BuiltImage,
) -> None:
    result = _scan(env=_no_vulnerability_data())
    assert result.returncode == 1
    failures = result.stderr.splitlines()
    assert [line for line in failures if line.startswith("make scan: pip-audit: ")] == [
        failures[-1]
    ]
    debian = [line for line in result.stdout.splitlines() + failures if "debian" in line]
    assert len(debian) == 1, result.stdout + result.stderr


def test_the_ci_scan_step_applies_the_gate() -> None:
    """The workflow's Trivy vulnerability scan uses exactly TRIVY_GATE's inputs."""
    workflow = read_yaml(WORKFLOW)
    steps = [
        step
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if str(step.get("uses", "")).startswith(TRIVY_ACTION)
        and step.get("with", {}).get("scanners") == "vuln"
    ]
    assert len(steps) == 1, "one Trivy vulnerability scan step"
    inputs = steps[0]["with"]
    assert {key: inputs.get(key) for key in scan.TRIVY_GATE} == scan.TRIVY_GATE
