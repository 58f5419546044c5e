"""Registry URLs (the service's ``registry.url``) as the backup tools need them.

``sqlite:///PATH`` names a file; ``postgresql+psycopg://USER:PW@HOST:PORT/DB?opts`` becomes
libpq keywords for psycopg and for ``pg_dump``/``pg_restore``: the password is kept apart,
for the ``password`` argument of psycopg and the ``PGPASSWORD`` environment of a child, never
for a command line or a message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from psycopg.conninfo import make_conninfo
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from cap_ops.backup.errors import BackupError

__all__ = ["APPLICATION_NAME", "PostgresLocation", "SqliteLocation", "parse_registry_url"]

APPLICATION_NAME: Final = "cap-ops-backup"
"""How the library's own PostgreSQL sessions show in ``pg_stat_activity``."""


@dataclass(frozen=True)
class SqliteLocation:
    """A SQLite registry: the database file."""

    path: Path


@dataclass(frozen=True)
class PostgresLocation:
    """A PostgreSQL registry: libpq keywords (no password), the password, the database name."""

    params: dict[str, str]
    dbname: str
    password: str | None = field(default=None, repr=False)

    def conninfo(self, dbname: str | None = None) -> str:
        """A libpq connection string without the password, for ``dbname`` (default: the URL's)."""
        return make_conninfo("", **{**self.params, "dbname": dbname or self.dbname})

    def child_env(self) -> dict[str, str]:
        """The environment of ``pg_dump``/``pg_restore``: ours, and ``PGPASSWORD`` if known."""
        env = dict(os.environ)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def where(self, dbname: str | None = None) -> str:
        """``database DB on HOST:PORT`` for messages (no user, no password)."""
        host = self.params.get("host", "the local socket")
        port = self.params.get("port")
        return f"database {dbname or self.dbname} on {host}{':' + port if port else ''}"


def parse_registry_url(url: str) -> SqliteLocation | PostgresLocation:
    """The location a registry URL names; a one-line BackupError (without the URL) otherwise."""
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError:
        raise BackupError("the registry URL is not a valid database URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in {"", ":memory:"} or "mode=memory" in database or parsed.query:
            raise BackupError("the registry URL must name a SQLite file: sqlite:///PATH")
        return SqliteLocation(Path(database).expanduser())
    if backend in {"postgresql", "postgres"}:
        if "+" in parsed.drivername and parsed.get_driver_name() != "psycopg":
            raise BackupError("the registry URL must use psycopg 3: postgresql+psycopg://")
        if not parsed.database:
            raise BackupError("the registry URL names no database")
        params: dict[str, str] = {}
        if parsed.host:
            params["host"] = parsed.host
        if parsed.port is not None:
            params["port"] = str(parsed.port)
        if parsed.username:
            params["user"] = parsed.username
        password = parsed.password
        for key, value in parsed.query.items():
            if not isinstance(value, str):
                raise BackupError(f"the registry URL gives the option {key} more than once")
            if key == "password":
                password = value
            else:
                params[key] = value
        return PostgresLocation(
            params, parsed.database, None if password is None else str(password)
        )
    raise BackupError(f"unsupported registry backend {backend!r} (sqlite or postgresql)")
