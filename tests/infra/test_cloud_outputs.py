"""``infra/outputs/<env>.yaml``: the one home of the cloud values on the Argo CD path.

``Pulumi.<env>.yaml`` carries none of them; the file is filled from the stack's outputs; the
placeholders left (environments not provisioned yet) are listed.
"""

from __future__ import annotations

import io
import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
from infra.cloud import outputs
from infra.config import ENVIRONMENTS, ConfigError, EnvConfig
from test_cloud_config import config_of
from test_pulumi_program import mocked_cloud_outputs

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_stack_files_carry_no_cloud_value(env: str) -> None:
    text = (ROOT / f"Pulumi.{env}.yaml").read_text()
    assert "arn:aws:" not in text
    assert "s3://" not in text


@pytest.mark.parametrize("key", ["secrets.store_role_arn", "database.backup.role_arn"])
def test_a_cloud_value_in_the_stack_file_is_refused_in_one_line(key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config_of("prod", {key: "arn:aws:iam::444444444444:role/x"})
    assert str(raised.value) == (
        f"Pulumi.prod.yaml: cap-verifier-ops:{key}: comes from infra/outputs/prod.yaml"
        f" ({next(n for n, k in outputs.CLOUD_KEYS.items() if k == key)}, the cluster's stack"
        " output), not from the stack file"
    )


def test_the_config_takes_the_cloud_values_from_the_file(configs: dict[str, EnvConfig]) -> None:
    for env, cfg in configs.items():
        values = outputs.read(env)
        assert cfg.secrets.store_role_arn == values["secrets_role_arn"]
        if cfg.database is not None:
            assert cfg.database.backup.role_arn == values["backup_role_arn"]
            assert cfg.database.backup.destination == values["backup_destination"]


def test_the_placeholders_left_live_in_the_outputs_files_only() -> None:
    """Lists (as a warning) every placeholder left, and fails if one is anywhere else among
    the sources of the config."""
    left = {
        f"{outputs.FOLDER}/{env}.yaml: {key}: {value}"
        for env in ENVIRONMENTS
        if outputs.placeholders(env)
        for key, value in outputs.read(env).items()
    }
    if left:
        warnings.warn("placeholders left:\n" + "\n".join(sorted(left)), stacklevel=1)
    for env in ENVIRONMENTS:
        stack_file = (ROOT / f"Pulumi.{env}.yaml").read_text()
        assert not re.search(r"arn:aws:iam::[0-9]{12}", stack_file), env


def test_the_file_is_written_from_the_stack_outputs(
    configs: dict[str, EnvConfig], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every output but the kubeconfig (a secret); the result loads as the config's source."""
    stack_outputs: dict[str, Any] = {
        **mocked_cloud_outputs(configs["prod"]),
        "kubeconfig": "[secret]",
        "mode": "gitops",
    }
    monkeypatch.setattr(outputs, "ROOT", tmp_path)
    (tmp_path / outputs.FOLDER).mkdir(parents=True)
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(stack_outputs)))
    assert outputs.main(["prod"]) == 0
    written = outputs.read("prod", tmp_path)
    assert written == {k: v for k, v in stack_outputs.items() if k not in ("kubeconfig", "mode")}
    assert "[secret]" not in outputs.path_of("prod", tmp_path).read_text()
    assert not outputs.placeholders("prod", tmp_path)


def test_a_stack_without_the_outputs_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"mode": "direct"})))
    assert outputs.main(["dev"]) == 2


def test_the_file_knows_every_cloud_output(configs: dict[str, EnvConfig]) -> None:
    assert set(mocked_cloud_outputs(configs["prod"])) == {
        *outputs.CLOUD_KEYS,
        *outputs.INFORMATIVE,
    }
