"""docs/deployment-guide.md (ORR 4.3-02, 6.1): its parts, every name it gives exists, and its
configuration table is the typed stack config's, covering every key the stack files use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from infra.config import ENVIRONMENTS, KEY_PREFIX
from runbook_checks import ROOT, load_yaml, reference_problems, sections

from infra import config_reference

GUIDE = ROOT / "docs" / "deployment-guide.md"
PARTS = (
    "Prerequisites",
    "Stand up an environment",
    "Change an environment",
    "Upgrade Kubernetes",
    "Tear down",
    "Troubleshooting",
    "Configuration",
)


def guide_text() -> str:
    return GUIDE.read_text(encoding="utf-8")


def leaf_keys(value: Any, prefix: str) -> Iterator[str]:
    """The dotted keys of a stack file's value down to its scalars; maps of labels stop at the
    key that holds them (their own keys are data, not config keys)."""
    yield prefix
    if isinstance(value, dict) and not prefix.endswith(("labels", "pod_labels")):
        for key, inner in value.items():
            yield from leaf_keys(inner, f"{prefix}.{key}")


def stack_keys(env: str) -> set[str]:
    config = load_yaml(ROOT / f"Pulumi.{env}.yaml")["config"]
    return {
        key
        for name, value in config.items()
        if name.startswith(KEY_PREFIX)
        for key in leaf_keys(value, name.removeprefix(KEY_PREFIX))
    }


@pytest.mark.orr("6.1-01", "6.1-02", "6.1-05")
def test_the_guide_has_its_parts() -> None:
    assert [part for part in PARTS if part not in sections(guide_text())] == []


@pytest.mark.orr("4.3-02", "6.1-03")
def test_it_deploys_each_environment_with_commands_that_exist() -> None:
    stand_up = sections(guide_text())["Stand up an environment"]
    assert "pulumi up --stack <env>" in stand_up
    assert "kubectl apply -k deploy/<env>/bootstrap" in stand_up
    assert all((ROOT / "deploy" / env / "bootstrap").is_dir() for env in ENVIRONMENTS)
    # The generated table holds patterns, not commands: the hand-written part is checked.
    written = guide_text().partition("## Configuration")[0]
    assert reference_problems("deployment-guide.md", GUIDE, written) == []


@pytest.mark.orr("6.1-04")
def test_the_configuration_table_is_current() -> None:
    assert config_reference.guide() == {GUIDE.name: guide_text()}, "run make generate"


def undescribed(struct: msgspec.inspect.StructType) -> list[str]:
    """The keys under ``struct`` whose table row has no meaning (no docstring on the field)."""
    return [key for key, _, _, meaning in config_reference.rows(struct) if not meaning]


@pytest.mark.orr("6.1-04")
def test_every_key_is_described() -> None:
    assert undescribed(config_reference.env_config_info()) == []


def unlisted(keys: set[str]) -> set[str]:
    """Those of ``keys`` that the guide's configuration table has no row for."""
    return keys - {row[0] for row in config_reference.rows(config_reference.env_config_info())}


@pytest.mark.orr("6.1-04")
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_key_a_stack_file_uses_is_in_the_table(env: str) -> None:
    assert unlisted(stack_keys(env)) == set()


def test_a_stale_table_and_an_unlisted_key_are_caught(tmp_path: Path) -> None:
    stale = tmp_path / GUIDE.name
    stale.write_text(guide_text().replace("| `namespace` |", "| `name_space` |"), "utf-8")
    assert config_reference.guide(stale) != {GUIDE.name: stale.read_text("utf-8")}

    class Extra(msgspec.Struct, frozen=True):
        known: int
        """A key with a meaning."""
        bare: int

    info = msgspec.inspect.type_info(Extra)
    assert isinstance(info, msgspec.inspect.StructType)
    rows = list(config_reference.rows(info))
    assert [(key, meaning) for key, _, _, meaning in rows] == [
        ("known", "A key with a meaning."),
        ("bare", ""),
    ]
    assert undescribed(info) == ["bare"]
    assert unlisted(stack_keys("prod") | {"edge.no_such_key"}) == {"edge.no_such_key"}
