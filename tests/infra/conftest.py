"""Fixtures for the Kubernetes model tests: the configs of every environment, and the generated
artefacts the model embeds (read once, at this edge)."""

from __future__ import annotations

import pytest
from infra.artefacts import Artefacts
from infra.artefacts import load as load_artefacts
from infra.cloud import existing
from infra.config import EnvConfig, load_all


@pytest.fixture(scope="session")
def configs() -> dict[str, EnvConfig]:
    return load_all()


@pytest.fixture(scope="session")
def artefacts() -> Artefacts:
    return load_artefacts()


SERVER_VERSION = "v1.31.2"
"""What the fake adapter reports for every existing cluster (within every stack's range)."""


@pytest.fixture(autouse=True)
def fake_server_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """No kubectl in tests: the program's version read answers :data:`SERVER_VERSION`."""
    monkeypatch.setattr(existing, "server_version", lambda context: SERVER_VERSION)
