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
from psycopg import sql

from support.require import need

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
PG_ADMIN_DB = "test"


def _admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    """An AUTOCOMMIT connection to the admin database (CREATE/DROP DATABASE need it)."""
    return psycopg.connect(
        host=PG_HOST,
        port=PG_PORT,
        user=PG_USER,
        dbname=PG_ADMIN_DB,
        connect_timeout=3,
        autocommit=True,
    )


@functools.cache
def _postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it answers."""
    try:
        with _admin_connection() as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable: {exc}"
    return None


def require_postgres() -> None:
    """Skip the test when PostgreSQL is unreachable (fail instead when CI=true)."""
    reason = _postgres_unreachable()
    need(reason is None, str(reason))


def fresh_database() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped (WITH FORCE) afterwards."""
    require_postgres()
    name = f"capreg_{uuid.uuid4().hex[:16]}"
    with _admin_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with _admin_connection() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database (see :func:`fresh_database`)."""
    yield from fresh_database()


def drop_databases_like(prefix: str) -> list[str]:
    """Drop every database whose name starts with ``prefix`` (what a restore left: the
    ``<db>_before_restore_*`` copies); the names dropped."""
    with _admin_connection() as conn:
        names = [
            str(name)
            for (name,) in conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [prefix]
            ).fetchall()
        ]
        for name in names:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    return names
