"""service/Dockerfile: multi-stage, pinned base, uid 1000, no secrets baked in, health check.

The image cannot be built here (no Docker engine); its read-only-root behaviour is exercised
for real by tests/service/integration/test_readonly_root.py.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

DOCKERFILE = Path(__file__).resolve().parents[3] / "service" / "Dockerfile"
SECRETISH = re.compile(r"(secret|password|passwd|token|private|api[_-]?key)", re.I)


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    # Read from a file object: setting ``content`` on a parser would write a ./Dockerfile.
    return DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))


def instructions(dockerfile: DockerfileParser, name: str) -> list[str]:
    return [i["value"] for i in dockerfile.structure if i["instruction"] == name]


def test_multi_stage_with_a_pinned_slim_base(dockerfile: DockerfileParser) -> None:
    stages = instructions(dockerfile, "FROM")
    assert len(stages) >= 2
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile.content, re.M)
    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1)), base.group(1)


@pytest.mark.orr("1.5-01", "1.5-02")
def test_runs_as_uid_1000_not_root(dockerfile: DockerfileParser) -> None:
    users = instructions(dockerfile, "USER")
    assert users, "no USER instruction"
    assert users[-1].split(":")[0] == "1000"
    assert "useradd --uid 1000" in dockerfile.content


def test_runtime_stage_copies_only_the_built_environment(dockerfile: DockerfileParser) -> None:
    runtime = dockerfile.content.split("AS runtime", 1)[1]
    copies = [line for line in runtime.splitlines() if line.startswith("COPY")]
    assert copies == ["COPY --from=build --chown=0:0 /opt/venv /opt/venv"]


def test_no_secret_baked_in(dockerfile: DockerfileParser) -> None:
    for key in dockerfile.envs:
        assert not SECRETISH.search(key), f"ENV {key} looks like a secret"
    for arg in instructions(dockerfile, "ARG"):
        assert not SECRETISH.search(arg), f"ARG {arg} looks like a secret"
    for source in instructions(dockerfile, "COPY"):
        assert not re.search(r"\.(key|pem|p12|env)\b", source), source
    assert (
        not (DOCKERFILE.parent.parent / ".dockerignore").exists()
        or ".local" in (DOCKERFILE.parent.parent / ".dockerignore").read_text()
    )


def test_health_check_and_entrypoint(dockerfile: DockerfileParser) -> None:
    assert instructions(dockerfile, "HEALTHCHECK")
    assert '"cap-verifier", "probe"' in instructions(dockerfile, "HEALTHCHECK")[0]
    assert instructions(dockerfile, "ENTRYPOINT") == ['["cap-verifier"]']
    assert instructions(dockerfile, "STOPSIGNAL") == ["SIGTERM"]


def test_writable_paths_are_tmp_and_the_data_volume(dockerfile: DockerfileParser) -> None:
    assert instructions(dockerfile, "VOLUME") == ['["/data"]']
    assert dockerfile.envs["TMPDIR"] == "/tmp"
    assert dockerfile.envs["PYTHONDONTWRITEBYTECODE"] == "1"
    assert dockerfile.envs["CAP_VERIFIER_REGISTRY__URL"] == "sqlite:////data/registry.db"
