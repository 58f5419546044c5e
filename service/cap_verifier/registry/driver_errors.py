"""Driver errors (SQLAlchemy, sqlite3, psycopg) translated into registry errors.

The registry errors' messages are fixed texts that hold no SQL, parameters or URL; the driver
error stays available as ``__cause__`` for server-side logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from cap_verifier.registry.errors import RegistryError, RegistryUnavailable

__all__ = ["translate_errors"]


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Turn driver errors raised inside the block into registry errors."""
    try:
        yield
    except sa_exc.DBAPIError as exc:
        reason = _unavailable_reason(exc)
        if reason is not None:
            raise RegistryUnavailable(reason) from exc
        raise RegistryError(f"registry error during {action}") from exc
    except sa_exc.TimeoutError as exc:
        raise RegistryUnavailable("no free database connection in the pool") from exc
    except sa_exc.SQLAlchemyError as exc:
        raise RegistryError(f"registry error during {action}") from exc


def _unavailable_reason(exc: sa_exc.DBAPIError) -> str | None:
    """A fixed, SQL-free reason when ``exc`` means the database is unavailable, else None."""
    message = str(exc.orig).lower() if exc.orig is not None else ""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate == "42P01" or "no such table" in message:
        return "schema not migrated"
    if not (
        isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
        or exc.connection_invalidated
    ):
        return None
    if "locked" in message or "busy" in message:
        return "database is locked"
    if "statement timeout" in message:
        return "statement timeout"
    if "timeout" in message or "timed out" in message:
        return "connection timed out"
    if "refused" in message or "could not connect" in message or "connection failed" in message:
        return "connection refused"
    if "translate host name" in message or "name or service not known" in message:
        return "database host not found"
    if "unable to open database file" in message:
        return "cannot open the database file"
    if exc.connection_invalidated or "closed" in message or "terminat" in message:
        return "connection lost"
    return "database error"
