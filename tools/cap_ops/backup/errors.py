"""The one error of the backup library: :class:`BackupError`, whose text is one line."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import psycopg

__all__ = ["BackupError", "guarded", "one_line"]

_MAX_LEN = 600

P = ParamSpec("P")
R = TypeVar("R")


def one_line(text: str) -> str:
    """``text`` on one line: runs of whitespace (newlines included) become one space."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_LEN else flat[: _MAX_LEN - 3] + "..."


class BackupError(Exception):
    """Why a backup, restore or housekeeping step failed; ``str(err)`` is one line.

    A failed operation leaves the data as it was (the live registry, the backups on disk):
    what it wrote before failing is removed again.
    """

    def __init__(self, message: str) -> None:
        self.message = one_line(message)
        super().__init__(self.message)


def guarded(func: Callable[P, R]) -> Callable[P, R]:
    """The public functions' safety net: an operating-system or driver error that the code
    did not turn into a :class:`BackupError` itself becomes one (one line, file named)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise BackupError(f"{where}{exc.strerror or exc}") from exc
        except (sqlite3.Error, psycopg.Error) as exc:
            raise BackupError(f"database error: {exc}") from exc

    return wrapper
