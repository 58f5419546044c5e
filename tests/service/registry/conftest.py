"""Fixtures of the registry tests: real SQLite files and fresh PostgreSQL databases, no mocks.

``postgres_url`` (a fresh database per test) comes from ``tests/support/postgres.py`` via the
root conftest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from cap_verifier.registry import Registry


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    """The URL of a SQLite file whose parent directory does not exist yet."""
    return f"sqlite:///{os.fspath(tmp_path)}/data/registry.db"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def registry_url(request: pytest.FixtureRequest) -> str:
    """An empty database URL, once per backend."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def open_registry() -> Iterator[Callable[..., Registry]]:
    """A factory of registries, every one of them closed at teardown."""
    opened: list[Registry] = []

    def _open(url: str, **kwargs: int) -> Registry:
        registry = Registry(url, **kwargs)
        opened.append(registry)
        return registry

    yield _open
    for registry in opened:
        registry.close()


@pytest.fixture
def registry(registry_url: str, open_registry: Callable[..., Registry]) -> Registry:
    """A migrated registry on each backend."""
    reg = open_registry(registry_url)
    reg.migrate()
    return reg
