"""``cluster.provider: existing``: the program refuses a server outside the supported range in
one line, before any resource exists; the version is read through a small adapter."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from infra.__main__ import main
from infra.cloud import existing
from infra.config import PROJECT, ConfigError, EnvConfig
from pulumi_mocks import install, pulumi_test, uninstall
from test_pulumi_program import cli_config


@pytest.mark.parametrize(
    ("git_version", "version"),
    [("v1.30.4-eks-a737599", "1.30"), ("v1.29.0+k3s1", "1.29"), ("1.34.1", "1.34")],
)
def test_parse_version(git_version: str, version: str) -> None:
    assert existing.parse_version(git_version) == version


@pytest.mark.parametrize("version", ["v1.28.9", "v1.35.0"])
def test_a_server_outside_the_range_is_refused_in_one_line(
    configs: dict[str, EnvConfig], version: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        existing.check_version(configs["dev"], version)
    message = str(raised.value)
    assert message.startswith(
        "Pulumi.dev.yaml: cap-verifier-ops:cluster.kube_context: kind-cap-verifier-dev runs"
        f" Kubernetes {version[1:5]}, outside the supported range 1.29..1.34"
    ), message
    assert "\n" not in message


@pytest.mark.parametrize("version", ["v1.29.0", "v1.34.2"])
def test_the_range_ends_are_supported(configs: dict[str, EnvConfig], version: str) -> None:
    existing.check_version(configs["dev"], version)


@pytest.fixture
def dev_stack() -> Iterator[Any]:
    yield install("dev", PROJECT, cli_config("dev"))
    uninstall()


@pulumi_test
def test_the_program_refuses_an_old_server_before_any_resource(
    dev_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    contexts: list[str | None] = []

    def old_server(context: str | None) -> str:
        contexts.append(context)
        return "v1.27.3"

    monkeypatch.setattr(existing, "server_version", old_server)
    with pytest.raises(ConfigError, match=r"runs Kubernetes 1\.27, outside"):
        main()
    assert contexts == ["kind-cap-verifier-dev"]
    assert dev_stack.constructed == []


def test_the_adapter_reads_kubectl_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """``kubectl version --output=json --context=<ctx>``, its ``serverVersion.gitVersion``."""
    calls: list[list[str]] = []

    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        out = json.dumps({"serverVersion": {"gitVersion": "v1.31.1"}})
        return subprocess.CompletedProcess(argv, 0, out, "")

    monkeypatch.setattr("shutil.which", lambda name: f"/bin/{name}")
    monkeypatch.setattr("subprocess.run", run)
    assert existing.ADAPTER("ctx") == "v1.31.1"
    assert calls == [["/bin/kubectl", "version", "--output=json", "--context=ctx"]]


def test_the_adapter_fails_in_one_line_without_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 1, "{}", "error one\nconnection refused\n")

    monkeypatch.setattr("shutil.which", lambda name: f"/bin/{name}")
    monkeypatch.setattr("subprocess.run", run)
    with pytest.raises(ConfigError, match=r"^kubectl version --context=ctx: connection refused$"):
        existing.ADAPTER("ctx")
