"""One version: the package's (pyproject.toml), the contract's and the OpenAPI document's."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from ruamel.yaml import YAML

from cap_verifier import __version__

ROOT = Path(__file__).resolve().parents[3]


def test_the_service_the_contract_and_the_openapi_document_have_one_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    contract = re.search(
        r"^Contract version \*\*(?P<version>[^*]+)\*\*",
        (ROOT / "docs" / "contract.md").read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    document = YAML(typ="safe", pure=True).load(
        (ROOT / "openapi" / "openapi.yaml").read_text(encoding="utf-8")
    )
    assert contract is not None, "docs/contract.md states no 'Contract version **x.y.z**'"
    assert __version__ == project["version"], "installed metadata is stale: run `make venv`"
    assert contract["version"] == __version__
    assert document["info"]["version"] == __version__
