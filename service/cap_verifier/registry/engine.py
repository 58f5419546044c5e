"""The registry's database engine: a URL becomes a SQLAlchemy engine for one of two backends.

- SQLite (``sqlite:///path``): the parent directory is created; every connection sets WAL,
  ``synchronous=NORMAL``, a busy timeout and foreign keys. ``sqlite://`` (in memory, tests
  only) is one shared connection.
- PostgreSQL through psycopg 3 (``postgresql+psycopg://``; ``postgresql://`` is read as
  psycopg): a small pre-pinged pool with connect and statement timeouts.

Creating an engine does not connect.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, StaticPool

__all__ = ["Backend", "Database", "open_database"]

Backend = Literal["sqlite", "postgresql"]

_WAL_RETRY_INTERVAL_S: Final = 0.02


@dataclass(frozen=True)
class Database:
    """An engine with what the registry needs to know about it."""

    backend: Backend
    url: URL
    engine: Engine
    in_memory: bool
    """SQLite in memory: one connection shared by every caller."""
    busy_timeout_ms: int

    def sqlite_migration_engine(self) -> Engine:
        """A one-connection SQLite engine whose transactions are ``BEGIN IMMEDIATE``.

        A migration then holds the write lock from its first statement (the version check)
        to its commit, so two processes migrating at once run one after the other.
        """
        engine = create_engine(self.url, poolclass=NullPool)
        busy_timeout_ms = self.busy_timeout_ms

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
            _sqlite_pragmas(dbapi_connection, busy_timeout_ms)
            dbapi_connection.isolation_level = None  # the driver no longer BEGINs on its own

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine


def open_database(
    url: str,
    *,
    pool_size: int,
    connect_timeout_s: int,
    busy_timeout_ms: int,
    statement_timeout_ms: int,
) -> Database:
    """The engine for ``url``; ``ValueError`` for an unsupported or invalid URL."""
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError:
        raise ValueError("registry URL is not a valid database URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        in_memory = _is_sqlite_memory(parsed)
        engine = _sqlite_engine(parsed, in_memory, busy_timeout_ms)
        return Database("sqlite", parsed, engine, in_memory, busy_timeout_ms)
    if backend in {"postgresql", "postgres"}:
        driver = parsed.get_driver_name()
        if "+" in parsed.drivername and driver != "psycopg":
            raise ValueError("the registry supports PostgreSQL through psycopg 3 only")
        psycopg_url = parsed.set(drivername="postgresql+psycopg")
        engine = _postgresql_engine(psycopg_url, pool_size, connect_timeout_s, statement_timeout_ms)
        return Database("postgresql", psycopg_url, engine, False, busy_timeout_ms)
    raise ValueError(f"unsupported registry backend {backend!r} (sqlite or postgresql)")


def _sqlite_engine(url: URL, in_memory: bool, busy_timeout_ms: int) -> Engine:
    """A pooled SQLite engine with WAL, synchronous=NORMAL, busy_timeout, foreign keys."""
    if in_memory:
        engine = create_engine(
            url,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
        )
    else:
        database = url.database
        if database and not url.query.get("uri"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        _sqlite_pragmas(dbapi_connection, busy_timeout_ms)

    return engine


def _postgresql_engine(
    url: URL, pool_size: int, connect_timeout_s: int, statement_timeout_ms: int
) -> Engine:
    """A small pre-pinged psycopg pool with connect and statement timeouts."""
    connect_args: dict[str, Any] = {
        "connect_timeout": max(2, connect_timeout_s),
        "application_name": "cap-verifier",
    }
    if "options" not in url.query:
        connect_args["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=10,
        pool_recycle=1800,
        connect_args=connect_args,
    )


def _is_sqlite_memory(url: URL) -> bool:
    """Whether a SQLite URL names an in-memory database (tests only: one shared connection)."""
    database = url.database or ""
    return database in {"", ":memory:"} or "mode=memory" in database


def _sqlite_pragmas(dbapi_connection: Any, busy_timeout_ms: int) -> None:
    """Set the per-connection SQLite pragmas: busy timeout, WAL, synchronous, foreign keys."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        _sqlite_enable_wal(cursor, busy_timeout_ms)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_enable_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """Switch the database to WAL (persistent), retrying while another connection locks it.

    Switching the journal mode needs the database to itself and SQLite answers "database is
    locked" at once instead of calling the busy handler: so retry until the busy timeout.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            (mode,) = cursor.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            transient = "locked" in str(exc) or "busy" in str(exc)
            if not transient or time.monotonic() >= deadline:
                raise
            time.sleep(_WAL_RETRY_INTERVAL_S)
