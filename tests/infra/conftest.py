"""Fixtures for the Kubernetes model tests: configs and models of every environment."""

from __future__ import annotations

import pytest
from infra.config import ENVIRONMENTS, EnvConfig, load


@pytest.fixture(scope="session")
def configs() -> dict[str, EnvConfig]:
    return {env: load(env) for env in ENVIRONMENTS}
