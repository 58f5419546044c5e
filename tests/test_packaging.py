"""What the image installs: the service's wheel and its locked dependencies, nothing else.

``service/Dockerfile`` runs ``uv sync --frozen --no-default-groups --no-editable``: the wheel of
this project plus ``[project].dependencies``. Neither may bring the dev IdP, the ops tooling,
the Pulumi program or a test tool.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = ROOT / ".tools" / "bin" / "uv"
NOT_IN_THE_IMAGE = ("cap_dev_idp", "cap_ops", "infra", "alerts", "dashboards", "tests")
NOT_INSTALLED = ("flask", "authlib", "argon2-cffi", "pulumi", "supervisor", "pytest", "ruff")


def _uv(*args: str) -> str:
    assert UV.exists(), "no .tools/bin/uv: run `make venv`"
    return subprocess.run(
        [str(UV), *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300
    ).stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    _uv("build", "--wheel", "--quiet", "--out-dir", str(out))
    (path,) = out.glob("*.whl")
    return zipfile.ZipFile(path)


def _normal(requirement: str) -> str:
    """PEP 503 name normalisation (``ruamel.yaml`` and ``ruamel-yaml`` are one package)."""
    name, rest = re.match(r"^([A-Za-z0-9._-]+)(.*)$", requirement).groups()  # type: ignore[union-attr]
    return re.sub(r"[-_.]+", "-", name).lower() + rest


def _metadata(wheel: zipfile.ZipFile, name: str) -> str:
    (member,) = [n for n in wheel.namelist() if n.endswith(f".dist-info/{name}")]
    return wheel.read(member).decode()


def test_the_wheel_holds_the_service_only(wheel: zipfile.ZipFile) -> None:
    top = {name.split("/")[0] for name in wheel.namelist()}
    assert {t for t in top if not t.endswith(".dist-info")} == {"cap_verifier"}
    assert "cap_verifier/openapi.yaml" in wheel.namelist()
    assert not [n for n in wheel.namelist() if n.split("/")[0] in NOT_IN_THE_IMAGE]


def test_the_wheel_requires_the_service_dependencies_only(wheel: zipfile.ZipFile) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = re.findall(r"^Requires-Dist: (.+)$", _metadata(wheel, "METADATA"), re.M)
    assert sorted(map(_normal, required)) == sorted(map(_normal, project["dependencies"]))
    entry_points = _metadata(wheel, "entry_points.txt")
    assert re.findall(r"^(\S+) = ", entry_points, re.M) == ["cap-verifier"]


def test_the_locked_image_environment_has_no_tooling() -> None:
    """The packages ``uv sync --no-default-groups`` installs, as the lock resolves them."""
    exported = _uv("export", "--frozen", "--no-default-groups", "--no-hashes", "--no-emit-project")
    names = {
        re.split(r"[=<>\[ ;]", line, maxsplit=1)[0].lower()
        for line in exported.splitlines()
        if line and not line.startswith((" ", "#"))
    }
    assert "litestar" in names
    assert "granian" in names
    assert names.isdisjoint(NOT_INSTALLED), sorted(names & set(NOT_INSTALLED))
