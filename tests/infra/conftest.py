"""Fixtures for the Kubernetes model tests: the configs of every environment, and the generated
artefacts the model embeds (read once, at this edge)."""

from __future__ import annotations

import pytest
from infra.artefacts import Artefacts
from infra.artefacts import load as load_artefacts
from infra.config import EnvConfig, load_all


@pytest.fixture(scope="session")
def configs() -> dict[str, EnvConfig]:
    return load_all()


@pytest.fixture(scope="session")
def artefacts() -> Artefacts:
    return load_artefacts()
