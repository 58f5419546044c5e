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


def _stack(tmp_path: Path, env: str, **changes: object) -> Path:
    """Copy Pulumi.<env>.yaml into tmp_path with some keys changed (None: removed)."""
    yaml = YAML(typ="safe", pure=True)
    document = yaml.load((ROOT / f"Pulumi.{env}.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            document["config"].pop(KEY + key, None)
        else:
            document["config"][KEY + key] = value
    with (tmp_path / f"Pulumi.{env}.yaml").open("w") as out:
        yaml.dump(document, out)
    return tmp_path


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_committed_stacks_load(env: str) -> None:
    cfg = load(env)
    assert cfg.env == env
    assert cfg.k8s_version_oldest == "1.29"
    assert cfg.k8s_version_newest == "1.34"


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
            {"hpa_max_replicas": 2},
            "Pulumi.prod.yaml: cap-verifier-ops:hpa_max_replicas: "
            "expected an integer >= hpa_min_replicas",
        ),
        ("prod", {"host": None}, "Pulumi.prod.yaml: cap-verifier-ops:host: missing"),
        ("prod", {"image_tag": "latest"}, "cap-verifier-ops:image_tag: not allowed in prod"),
        ("staging", {"image_digest": None}, "cap-verifier-ops:image_digest: missing"),
        ("prod", {"image_digest": "sha256:abc"}, "cap-verifier-ops:image_digest: expected"),
        ("dev", {"image_tag": None}, "cap-verifier-ops:image_tag: missing"),
        ("prod", {"replicas": "3"}, "cap-verifier-ops:replicas: expected an integer"),
        ("prod", {"hpa_enabled": "yes"}, "cap-verifier-ops:hpa_enabled: expected true or false"),
        ("prod", {"gateway_cidr": "10.0.0.1/8"}, "cap-verifier-ops:gateway_cidr: expected a CIDR"),
        ("prod", {"registry_kind": "mysql"}, "cap-verifier-ops:registry_kind: expected one of"),
        (
            "prod",
            {"registry_url": "postgresql+psycopg://u:pw@db/cap"},
            "cap-verifier-ops:registry_url: must not contain a password",
        ),
        ("dev", {"replicas": 2}, "cap-verifier-ops:replicas: sqlite registry needs exactly 1"),
        ("prod", {"pdb_min_available": 3}, "cap-verifier-ops:pdb_min_available:"),
        ("prod", {"allowed_client_sans": []}, "cap-verifier-ops:allowed_client_sans:"),
        ("prod", {"oauth2_jwks_url": "http://x"}, "cap-verifier-ops:oauth2_jwks_url:"),
        ("prod", {"idp_jwks_port": 70000}, "cap-verifier-ops:idp_jwks_port:"),
        ("prod", {"cpu_request": "0.5"}, "cap-verifier-ops:cpu_request: expected a quantity"),
        ("prod", {"k8s_version_newest": "1.28"}, "cap-verifier-ops:k8s_version_newest:"),
        ("prod", {"log_level": "TRACE"}, "cap-verifier-ops:log_level: expected one of"),
        ("prod", {"dns_pod_labels": {}}, "cap-verifier-ops:dns_pod_labels:"),
        ("prod", {"replica": 3}, "cap-verifier-ops:replica: unknown key"),
        (
            "prod",
            {"acme_environment": "staging"},
            "cap-verifier-ops:acme_environment: expected production in prod",
        ),
        (
            "dev",
            {"acme_environment": "production"},
            "cap-verifier-ops:acme_environment: expected staging in dev",
        ),
        ("prod", {"mtls_ca_secret": None}, "cap-verifier-ops:mtls_ca_secret: missing"),
        ("prod", {"acme_email": "nobody"}, "cap-verifier-ops:acme_email: expected an email"),
        ("prod", {"gateway_class_name": None}, "cap-verifier-ops:gateway_class_name: missing"),
        ("prod", {"rate_limit_requests": 0}, "cap-verifier-ops:rate_limit_requests:"),
        ("prod", {"rate_limit_unit": "Day"}, "cap-verifier-ops:rate_limit_unit: expected one"),
        ("prod", {"request_timeout_seconds": 0}, "cap-verifier-ops:request_timeout_seconds:"),
    ],
)
def test_config_error_is_one_line_naming_the_key(
    tmp_path: Path, env: str, changes: dict[str, object], expected: str
) -> None:
    root = _stack(tmp_path, env, **changes)
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
    assert str(info.value).startswith("Pulumi.prod.yaml: invalid YAML")
    assert "\n" not in str(info.value)


def test_render_reports_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for env in ENVIRONMENTS:
        shutil.copy(ROOT / f"Pulumi.{env}.yaml", tmp_path)
    _stack(tmp_path, "prod", hpa_min_replicas=0)
    with pytest.raises(ConfigError, match="hpa_min_replicas"):
        render.write(tmp_path / "out", tmp_path)
