"""Fresh PostgreSQL databases for tests: the server at 127.0.0.1:5432, user postgres, trust auth.

Each test gets a database of its own, dropped afterwards. When the server cannot be reached
the PostgreSQL tests are skipped, unless ``CI=true``: then they fail.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from cap_ops.devkit.postgres import (
    PG_ADMIN_DB,
    PG_HOST,
    PG_PORT,
    PG_USER,
    admin_connection,
    drop_databases_like,
    scratch_database,
)
from support.require import need

__all__ = [
    "PG_ADMIN_DB",
    "PG_HOST",
    "PG_PORT",
    "PG_USER",
    "drop_databases_like",
    "fresh_database",
    "postgres_url",
    "require_postgres",
]


@functools.cache
def _postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it answers."""
    try:
        with admin_connection() as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable: {exc}"
    return None


def require_postgres() -> None:
    """Skip the test when PostgreSQL is unreachable (fail instead when CI=true)."""
    reason = _postgres_unreachable()
    need(reason is None, str(reason))


def fresh_database() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped (WITH FORCE) afterwards with
    every ``<name>_*`` database a restore into it left."""
    require_postgres()
    with scratch_database(f"capreg_{uuid.uuid4().hex[:16]}") as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database (see :func:`fresh_database`)."""
    yield from fresh_database()
