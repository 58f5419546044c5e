"""Scratch PostgreSQL databases for tests and benchmarks: the server at 127.0.0.1:5432, user
postgres, trust auth (the build machines' setup), maintenance database ``test``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
PG_ADMIN_DB = "test"


def admin_connection(timeout: int = 3) -> psycopg.Connection[tuple[object, ...]]:
    """An AUTOCOMMIT connection to the admin database (CREATE/DROP DATABASE need it)."""
    return psycopg.connect(
        host=PG_HOST,
        port=PG_PORT,
        user=PG_USER,
        dbname=PG_ADMIN_DB,
        connect_timeout=timeout,
        autocommit=True,
    )


def url_of(name: str) -> str:
    """The registry URL of database ``name``."""
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def drop_databases_like(prefix: str) -> list[str]:
    """Drop every database whose name starts with ``prefix`` (what a restore left: the
    ``<db>_before_restore_*`` copies); the names dropped."""
    with admin_connection() as conn:
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


@contextmanager
def scratch_database(name: str) -> Iterator[str]:
    """A new, empty database ``name`` (its URL); on exit it and every ``<name>_*`` (what a
    restore leaves) are dropped."""
    with admin_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url_of(name)
    finally:
        drop_databases_like(name)
