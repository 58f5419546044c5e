"""No breaking API change (ORR 5.2-03): the published document against the one prod runs, by
Optic's breaking-change rules; each kind of break is caught in a deliberately broken copy, and
compatible changes pass."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from infra.config import REPO_ROOT
from ruamel.yaml import YAML

from cap_ops import contract

Change = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe", pure=True).load(REPO_ROOT / contract.DOCUMENT)
    return loaded


def _write(document: dict[str, Any], change: Change, path: Path) -> Path:
    changed = copy.deepcopy(document)
    change(changed)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    with path.open("w", encoding="utf-8") as out:
        yaml.dump(changed, out)
    return path


def _schemas(document: dict[str, Any]) -> dict[str, Any]:
    schemas: dict[str, Any] = document["components"]["schemas"]
    return schemas


def _verify_request_requires_backend(d: dict[str, Any]) -> None:
    _schemas(d)["VerifyRequest"].setdefault("required", []).append("backend")


def _new_operation(d: dict[str, Any]) -> None:
    d["paths"]["/policy/v3/{id}"] = copy.deepcopy(d["paths"]["/policy/v2/{id}"])
    d["paths"]["/policy/v3/{id}"]["get"]["operationId"] = "GetPolicyV3"


@pytest.mark.orr("5.2-03")
def test_the_contract_has_no_breaking_change_against_the_one_prod_runs() -> None:
    what, changes = contract.check(REPO_ROOT)
    assert "the commit prod runs" in what
    assert changes == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "rule"),
    [
        pytest.param(
            lambda d: d["paths"]["/verify"].pop("post"),
            "prevent operation removal",
            id="operation-removed",
        ),
        pytest.param(
            _verify_request_requires_backend,
            "prevent changing request property to required",
            id="request-property-now-required",
        ),
        pytest.param(
            lambda d: _schemas(d)["VerifyRequest"]["properties"]["backend"].update(enum=[None]),
            "request and response property enums",
            id="enum-option-removed",
        ),
        pytest.param(
            lambda d: _schemas(d)["VerifyResponse"]["properties"].pop("result"),
            "prevent removing response property",
            id="response-property-removed",
        ),
        pytest.param(
            lambda d: d["paths"]["/policy/v2/compile"]["post"]["responses"].pop("200"),
            "prevent response status code removal",
            id="status-code-removed",
        ),
    ],
)
def test_a_breaking_change_is_caught(
    document: dict[str, Any], change: Change, rule: str, tmp_path: Path
) -> None:
    base = _write(document, lambda d: None, tmp_path / "base.yaml")
    head = _write(document, change, tmp_path / "head.yaml")
    changes = contract.breaking_changes(base, head)
    assert any(line.endswith(f"[{rule}]") for line in changes), changes


@pytest.mark.slow
@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda d: _schemas(d)["VerifyRequest"]["properties"].update(trace={"type": "boolean"}),
            id="optional-request-property-added",
        ),
        pytest.param(_new_operation, id="operation-added"),
        pytest.param(lambda d: d["info"].update(description="Reworded."), id="description-changed"),
    ],
)
def test_a_compatible_change_passes(
    document: dict[str, Any], change: Change, tmp_path: Path
) -> None:
    base = _write(document, lambda d: None, tmp_path / "base.yaml")
    head = _write(document, change, tmp_path / "head.yaml")
    assert contract.breaking_changes(base, head) == []


def test_the_command_names_each_break_and_fails(
    document: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _write(document, lambda d: None, tmp_path / "base.yaml")
    head = _write(document, _verify_request_requires_backend, tmp_path / "head.yaml")
    assert contract.main(["diff", str(base), str(head)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("contract: breaking: POST /verify: cannot make a request property")
    assert err[-1] == f"contract: 1 breaking change(s) in {head} against {base}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["check", "--base", "no-such-ref"],
            "contract: openapi/openapi.yaml at no-such-ref: fatal: invalid object name",
            id="bad-ref",
        ),
        pytest.param(
            ["diff", "missing.yaml", "openapi/openapi.yaml"],
            "contract: missing.yaml: no such file",
            id="missing-file",
        ),
    ],
)
def test_the_command_refuses_bad_input_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert contract.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(message)


def test_a_missing_optic_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(contract.ContractError, match="run make optic"):
        contract.breaking_changes(tmp_path, tmp_path, optic=tmp_path / "optic")


def test_the_check_leaves_nothing_behind_even_in_ci(
    document: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With CI=true Optic would write ci-run-details.json into its working folder."""
    base = _write(document, lambda d: None, tmp_path / "base.yaml")
    head = _write(document, _verify_request_requires_backend, tmp_path / "head.yaml")
    monkeypatch.setenv("CI", "true")
    monkeypatch.chdir(tmp_path)
    assert len(contract.breaking_changes(base, head)) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["base.yaml", "head.yaml"]
