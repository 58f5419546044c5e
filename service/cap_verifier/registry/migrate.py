"""Schema migrations of the registry: the Alembic scripts shipped in ``migrations/``, run in code.

``upgrade`` is safe when several processes run it at once: on PostgreSQL it holds an advisory
transaction lock, on a SQLite file one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, text

from cap_verifier.registry.driver_errors import translate_errors
from cap_verifier.registry.engine import Database
from cap_verifier.registry.errors import RegistryError

__all__ = ["MIGRATIONS_DIR", "alembic_config", "current_revision", "head_revision", "upgrade"]

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
"""The Alembic script location (``env.py``, ``versions/``), shipped inside the package."""

# Key of the PostgreSQL advisory lock that serialises concurrent `upgrade()` calls
# (the first 8 bytes of sha256("cap-verifier registry migrate"), as a signed bigint).
_MIGRATION_LOCK_KEY: Final = int.from_bytes(
    hashlib.sha256(b"cap-verifier registry migrate").digest()[:8], "big", signed=True
)
_MIGRATION_STATEMENT_TIMEOUT: Final = "120s"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration built in code (no ``alembic.ini``).

    ``url`` sets ``sqlalchemy.url`` for ``env.py``; leave it out and put an open connection in
    ``config.attributes["connection"]`` instead (what :func:`upgrade` does).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation: a literal "%" (URL-encoded password) must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _upgrade_on(conn: Connection) -> None:
    """Run every pending migration on ``conn`` (inside the caller's transaction)."""
    config = alembic_config()
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


def upgrade(database: Database) -> None:
    """Upgrade the schema to the newest revision; a no-op at head."""
    try:
        with translate_errors("migrate"):
            if database.backend == "postgresql":
                with database.engine.connect() as conn, conn.begin():
                    conn.execute(
                        text(f"SET LOCAL statement_timeout = '{_MIGRATION_STATEMENT_TIMEOUT}'")
                    )
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                    )
                    _upgrade_on(conn)
            elif database.in_memory:
                with database.engine.connect() as conn, conn.begin():
                    _upgrade_on(conn)
            else:
                engine = database.sqlite_migration_engine()
                try:
                    with engine.connect() as conn, conn.begin():
                        _upgrade_on(conn)
                finally:
                    engine.dispose()
    except CommandError as exc:
        raise RegistryError(f"cannot migrate the registry schema: {exc}") from exc


def current_revision(database: Database) -> str | None:
    """The schema revision stored in the database (None before the first migration)."""
    with translate_errors("current_revision"), database.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest schema revision this build knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
