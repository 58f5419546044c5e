"""Unavailability and bad configuration: RegistryUnavailable fast, no SQL in messages."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from registry_samples import v1_args, v2_args

from cap_verifier.registry import Registry, RegistryUnavailable


def _closed_port() -> int:
    """A local TCP port nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _assert_clean(exc: RegistryUnavailable) -> None:
    message = str(exc).upper()
    for leak in ("SELECT", "INSERT", "SQL:", "S3CRET", "127.0.0.1", "POLICIES_V"):
        assert leak not in message


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda r: r.ping(), id="ping"),
        pytest.param(lambda r: r.migrate(), id="migrate"),
        pytest.param(lambda r: r.current_revision(), id="current_revision"),
        pytest.param(lambda r: r.put_policy_v1(**v1_args()), id="put_policy_v1"),
        pytest.param(lambda r: r.put_policy_v2(**v2_args()), id="put_policy_v2"),
        pytest.param(lambda r: r.get_policy_v2("lksg.v1"), id="get_policy_v2"),
        pytest.param(lambda r: r.list_verifications(), id="list_verifications"),
    ],
)
def test_unreachable_postgres_is_unavailable_quickly(
    call: Callable[[Registry], object], open_registry: Callable[..., Registry]
) -> None:
    registry = open_registry(f"postgresql+psycopg://postgres:s3cret@127.0.0.1:{_closed_port()}/x")
    started = time.monotonic()

    with pytest.raises(RegistryUnavailable) as excinfo:
        call(registry)

    assert time.monotonic() - started < 5
    assert excinfo.value.reason == "connection refused"
    _assert_clean(excinfo.value)
    assert "s3cret" not in repr(registry)


def test_sqlite_locked_beyond_busy_timeout_is_unavailable(
    tmp_path: Path, open_registry: Callable[..., Registry]
) -> None:
    path = tmp_path / "registry.db"
    registry = open_registry(f"sqlite:///{path}", busy_timeout_ms=200)
    registry.migrate()
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable) as excinfo:
            registry.put_policy_v1(**v1_args())
        assert 0.15 < time.monotonic() - started < 3
        assert excinfo.value.reason == "database is locked"
        _assert_clean(excinfo.value)
    finally:
        blocker.rollback()
        blocker.close()

    assert registry.put_policy_v1(**v1_args())[1] is True  # the lock is gone: works again


def test_unmigrated_database_is_unavailable(
    registry_url: str, open_registry: Callable[..., Registry]
) -> None:
    registry = open_registry(registry_url)
    registry.ping()

    with pytest.raises(RegistryUnavailable) as excinfo:
        registry.get_policy_v2("lksg.v1")

    assert excinfo.value.reason == "schema not migrated"
    _assert_clean(excinfo.value)


def test_unopenable_sqlite_file_is_unavailable(
    tmp_path: Path, open_registry: Callable[..., Registry]
) -> None:
    directory = tmp_path / "a-directory.db"
    directory.mkdir()
    registry = open_registry(f"sqlite:///{directory}")

    with pytest.raises(RegistryUnavailable):
        registry.ping()


@pytest.mark.parametrize(
    "url",
    ["mysql://root@localhost/db", "postgresql+psycopg2://u@h/db", "not a url", ""],
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="registry"):
        Registry(url)


def test_plain_postgresql_url_means_psycopg(open_registry: Callable[..., Registry]) -> None:
    registry = open_registry("postgresql://postgres@127.0.0.1/x")

    assert registry.backend == "postgresql"
    assert "postgresql+psycopg://" in repr(registry)
