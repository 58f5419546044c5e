"""The image's CycloneDX SBOM, held to the lock.

Two SBOMs are made: the lock's (``uv export --format cyclonedx1.5`` of the service's
dependencies only, no dependency group) and the image's environment (``cyclonedx-py
environment`` on ``/opt/venv`` of the image, mounted from the project's containers storage).
The image's is what gets attested (it describes what the image holds), and only after it is
shown to list exactly the lock's packages for this platform (the markers of the lock's SBOM
evaluated), the project itself included: a package the lock does not have, a missing one or
another version is a one-line :class:`SbomError`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import msgspec
from packaging.markers import Marker

from cap_ops.image import containers, rootfs

ROOT = containers.ROOT
UV = ROOT / ".tools" / "bin" / "uv"
CYCLONEDX_PY = ROOT / ".venv" / "bin" / "cyclonedx-py"
SPEC_VERSION = "1.5"
LOCK_EXPORT = (
    "export",
    "--frozen",
    "--no-dev",
    "--no-default-groups",
    "--format",
    f"cyclonedx{SPEC_VERSION}",
    "--preview-features",
    "sbom-export",
)
"""The service's locked dependencies (``[project].dependencies``), no group: what the image's
``uv sync --no-default-groups`` installs."""
MARKER_PROPERTY = "uv:package:marker"


class SbomError(Exception):
    """One line: which SBOM could not be made, or how the image differs from the lock."""


class Property(msgspec.Struct, frozen=True):
    name: str
    value: str


class Component(msgspec.Struct, frozen=True):
    name: str
    version: str = ""
    properties: tuple[Property, ...] = ()

    def marker(self) -> str | None:
        return next((p.value for p in self.properties if p.name == MARKER_PROPERTY), None)


class Metadata(msgspec.Struct, frozen=True):
    component: Component | None = None


class Bom(msgspec.Struct, frozen=True):
    """The parts of a CycloneDX document this module reads."""

    bomFormat: str  # CycloneDX's keys
    specVersion: str
    metadata: Metadata = Metadata()
    components: tuple[Component, ...] = ()


def read(data: bytes) -> Bom:
    return msgspec.json.decode(data, type=Bom)


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them (``ruamel.yaml`` is ``ruamel-yaml``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _run(args: list[str], what: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        raise SbomError(f"{what} failed: {(lines or ['no output'])[-1]}")


def lock_sbom(out: Path) -> Path:
    """The lock's SBOM of the service's dependencies, written to ``out``."""
    _run([str(UV), *LOCK_EXPORT, "--project", str(ROOT), "-o", str(out)], "uv export")
    return out


def environment_sbom(venv: Path, out: Path) -> Path:
    """``cyclonedx-py environment`` of the virtual environment ``venv``, written to ``out``."""
    _run(
        [
            str(CYCLONEDX_PY),
            "environment",
            "--sv",
            SPEC_VERSION,
            "--output-reproducible",
            "-o",
            str(out),
            str(venv),
        ],
        "cyclonedx-py environment",
    )
    return out


def installed(bom: Bom) -> dict[str, str]:
    """Name -> version of every component."""
    return {normalize(c.name): c.version for c in bom.components}


def locked_for_this_platform(lock: Bom) -> dict[str, str]:
    """Name -> version of the lock's components whose marker holds here, and the project."""
    packages = {
        normalize(c.name): c.version
        for c in lock.components
        if (marker := c.marker()) is None or Marker(marker).evaluate()
    }
    if lock.metadata.component is not None:
        root = lock.metadata.component
        packages[normalize(root.name)] = root.version
    return packages


def differences(image: dict[str, str], locked: dict[str, str]) -> list[str]:
    """How the image's packages differ from the lock's, one phrase each; empty when equal."""
    found = [
        *(f"{n}=={v} is not locked" for n, v in sorted(image.items()) if n not in locked),
        *(f"{n}=={v} is missing" for n, v in sorted(locked.items()) if n not in image),
    ]
    found += [
        f"{n} is {image[n]}, locked {v}"
        for n, v in sorted(locked.items())
        if n in image and image[n] != v
    ]
    return found


def image_sbom(image: str, out_dir: Path, state: Path = containers.STATE) -> Path:
    """The SBOM of ``image``'s environment in ``out_dir`` (with the lock's beside it), checked
    against the lock."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = read(lock_sbom(out_dir / "lock.cdx.json").read_bytes())
    with rootfs.mounted(image, state) as root:
        path = environment_sbom(root / rootfs.VENV, out_dir / "image.cdx.json")
    found = differences(installed(read(path.read_bytes())), locked_for_this_platform(lock))
    if found:
        raise SbomError(f"the image's environment differs from uv.lock: {'; '.join(found)}")
    return path
