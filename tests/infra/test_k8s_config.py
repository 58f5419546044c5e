"""Pulumi.<env>.yaml -> EnvConfig: every error is one line naming the file and the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from infra.config import ENVIRONMENTS, ConfigError, load
from ruamel.yaml import YAML

from infra import render

ROOT = Path(__file__).resolve().parents[2]
KEY = "cap-verifier-ops:"


def _stack(tmp_path: Path, env: str, changes: dict[str, object]) -> Path:
    """Copy Pulumi.<env>.yaml into tmp_path with some dotted keys changed (None: removed)."""
    yaml = YAML(typ="safe", pure=True)
    document = yaml.load((ROOT / f"Pulumi.{env}.yaml").read_text())
    for key, value in changes.items():
        section, *path = key.split(".")
        parent, last = document["config"], KEY + section
        for name in path:
            parent, last = parent[last], name
        if value is None:
            parent.pop(last, None)
        else:
            parent[last] = value
    with (tmp_path / f"Pulumi.{env}.yaml").open("w") as out:
        yaml.dump(document, out)
    return tmp_path


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_committed_stacks_load(env: str) -> None:
    cfg = load(env)
    assert cfg.env == env
    assert cfg.cluster.k8s_version_oldest == "1.29"
    assert cfg.cluster.k8s_version_newest == "1.34"


def test_stack_project_file() -> None:
    project = YAML(typ="safe", pure=True).load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "cap-verifier-ops"
    assert project["runtime"]["name"] == "python"
    assert project["main"] == "infra/"


@pytest.mark.parametrize(
    ("env", "changes", "expected"),
    [
        (
            "prod",
            {"scaling.hpa.max_replicas": 2},
            "cap-verifier-ops:scaling.hpa.max_replicas: expected an integer >= min_replicas",
        ),
        (
            "prod",
            {"scaling.hpa.max_replicas": 31},
            "cap-verifier-ops:scaling.quota_pods: a rollout runs up to 62 pods, more than the"
            " quota of 60",
        ),
        (
            "staging",
            {"scaling.quota_pods": 6},
            "cap-verifier-ops:scaling.quota_pods: a rollout runs up to 7 pods",
        ),
        ("dev", {"scaling.quota_pods": 0}, "cap-verifier-ops:scaling.quota_pods: Expected `int`"),
        ("prod", {"edge.host": None}, "cap-verifier-ops:edge.host: required key is missing"),
        ("prod", {"image.tag": "latest"}, "cap-verifier-ops:image.tag: not allowed in prod"),
        ("staging", {"image.digest": None}, "cap-verifier-ops:image.tag: missing"),
        ("prod", {"image.digest": "sha256:abc"}, "cap-verifier-ops:image.digest: Expected `str`"),
        ("dev", {"image.tag": None}, "cap-verifier-ops:image.tag: missing"),
        ("prod", {"scaling.replicas": "3"}, "cap-verifier-ops:scaling.replicas: Expected `int`"),
        ("prod", {"scaling.hpa.enabled": "yes"}, "cap-verifier-ops:scaling.hpa.enabled: Expected"),
        (
            "prod",
            {"edge.gateway_cidr": "10.0.0.1/8"},
            "cap-verifier-ops:edge.gateway_cidr: expected a CIDR",
        ),
        (
            "prod",
            {"registry.kind": "mysql"},
            "cap-verifier-ops:registry.kind: Invalid enum value 'mysql'",
        ),
        (
            "prod",
            {"registry.url": "postgresql+psycopg://u:pw@db/cap"},
            "cap-verifier-ops:registry.url: must not contain a password",
        ),
        ("dev", {"scaling.replicas": 2}, "cap-verifier-ops:scaling.replicas: a sqlite registry"),
        ("prod", {"scaling.pdb_min_available": 3}, "cap-verifier-ops:scaling.pdb_min_available:"),
        ("prod", {"edge.allowed_client_sans": []}, "cap-verifier-ops:edge.allowed_client_sans:"),
        ("prod", {"oauth2.jwks_url": "http://x"}, "cap-verifier-ops:oauth2.jwks_url:"),
        ("prod", {"oauth2.jwks_port": 70000}, "cap-verifier-ops:oauth2.jwks_port:"),
        (
            "prod",
            {"service.resources.cpu_request": "0.5"},
            "cap-verifier-ops:service.resources.cpu_request: Expected `str` matching",
        ),
        ("prod", {"cluster.k8s_version_newest": "1.28"}, "cluster.k8s_version_newest:"),
        (
            "prod",
            {"service.log_level": "TRACE"},
            "cap-verifier-ops:service.log_level: Invalid enum value",
        ),
        ("prod", {"cluster.dns_pod_labels": {}}, "cap-verifier-ops:cluster.dns_pod_labels:"),
        ("prod", {"scaling.replica": 3}, "cap-verifier-ops:scaling.replica: unknown key"),
        ("prod", {"replicas": 3}, "cap-verifier-ops:replicas: unknown key"),
        (
            "prod",
            {"edge.acme_environment": "staging"},
            "cap-verifier-ops:edge.acme_environment: expected production in prod",
        ),
        (
            "dev",
            {"edge.acme_environment": "production"},
            "cap-verifier-ops:edge.acme_environment: expected staging in dev",
        ),
        ("prod", {"edge.mtls_ca_secret": None}, "cap-verifier-ops:edge.mtls_ca_secret: missing"),
        ("prod", {"edge.acme_email": "nobody"}, "cap-verifier-ops:edge.acme_email: Expected"),
        ("prod", {"database": None}, "cap-verifier-ops:database: missing"),
        ("dev", {"registry.storage_size": None}, "cap-verifier-ops:registry.storage_size:"),
        ("prod", {"edge.gateway_class_name": None}, "edge.gateway_class_name: required key"),
        ("prod", {"edge.rate_limit.requests": 0}, "cap-verifier-ops:edge.rate_limit.requests:"),
        ("prod", {"edge.rate_limit.unit": "Day"}, "cap-verifier-ops:edge.rate_limit.unit:"),
        ("prod", {"edge.request_timeout_seconds": 0}, "edge.request_timeout_seconds:"),
        (
            "prod",
            {"delivery.canary.enabled": True, "scaling.hpa.enabled": False},
            "cap-verifier-ops:",
        ),
    ],
)
def test_config_error_is_one_line_naming_the_key(
    tmp_path: Path, env: str, changes: dict[str, object], expected: str
) -> None:
    root = _stack(tmp_path, env, changes)
    with pytest.raises(ConfigError) as info:
        load(env, root)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"Pulumi.{env}.yaml: ")
    assert expected in message


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^Pulumi\.prod\.yaml: cannot read"):
        load("prod", tmp_path)
    (tmp_path / "Pulumi.prod.yaml").write_text("config: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load("prod", tmp_path)
    assert str(info.value).startswith("Pulumi.prod.yaml: not valid YAML")
    assert "\n" not in str(info.value)


def test_render_reports_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for env in ENVIRONMENTS:
        shutil.copy(ROOT / f"Pulumi.{env}.yaml", tmp_path)
    _stack(tmp_path, "prod", {"scaling.hpa.min_replicas": 0})
    with pytest.raises(ConfigError, match=r"scaling\.hpa\.min_replicas"):
        render.write(tmp_path / "out", tmp_path)
