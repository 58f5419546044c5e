"""PostgreSQL: snapshot with ``pg_dump`` at an exported snapshot, restore by database rename.

Snapshot: one REPEATABLE READ, READ ONLY transaction exports its snapshot
(``pg_export_snapshot()``), reads the row counts and ``alembic_version``, and stays open while
``pg_dump -Fc --no-owner --no-privileges --snapshot=<id>`` dumps that same snapshot: the dump
and the counts are one point in time, whatever the service writes meanwhile.

Restore: ``pg_restore`` into a new database on the same server, checked like the SQLite copy
(counts, revision, every stored hash); then, in one transaction, the other sessions of the
target are terminated, the target is renamed ``<db>_before_restore_<stamp>`` and the scratch
database ``<db>``. The old database is kept; the caller decides when to drop it.

The password never reaches a command line: psycopg gets it as an argument, the tools as
``PGPASSWORD`` in their environment.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg import sql

from cap_ops.backup.content import (
    check_counts,
    count_rows,
    read_revision,
    verify_policies,
)
from cap_ops.backup.errors import BackupError
from cap_ops.backup.fsutil import create_private, hash_file, remove_quietly
from cap_ops.backup.manifest import REGISTRY_FILES, FileEntry, Manifest
from cap_ops.backup.urls import APPLICATION_NAME, PostgresLocation

__all__ = [
    "PG_DUMP",
    "PG_RESTORE",
    "PostgresSnapshot",
    "restore_postgres",
    "snapshot_postgres",
]

PG_DUMP: Final = Path("/usr/bin/pg_dump")
PG_RESTORE: Final = Path("/usr/bin/pg_restore")
SNAPSHOT_FILE: Final = REGISTRY_FILES["postgresql"]
CONNECT_TIMEOUT_S: Final = 10
LOCK_WAIT_TIMEOUT_MS: Final = 60_000
TERMINATE_WAIT_MS: Final = 5_000
SWAP_ATTEMPTS: Final = 10
SWAP_RETRY_S: Final = 0.3
MAX_NAME_BYTES: Final = 63  # PostgreSQL's NAMEDATALEN - 1

_TABLES_SQL: Final = (
    "SELECT tablename FROM pg_catalog.pg_tables "
    "WHERE schemaname = current_schema() ORDER BY tablename"
)


@dataclass(frozen=True)
class PostgresSnapshot:
    """What a dump holds: its entry, the revision and the row counts at its snapshot."""

    entry: FileEntry
    schema_revision: str
    tables: dict[str, int]


@contextmanager
def _connect(
    location: PostgresLocation, dbname: str | None = None, *, autocommit: bool = True
) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A psycopg connection to ``dbname`` (default: the URL's) on the URL's server."""
    try:
        conn = psycopg.connect(
            location.conninfo(dbname),
            password=location.password,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name=APPLICATION_NAME,
            autocommit=autocommit,
        )
    except psycopg.Error as exc:
        raise BackupError(f"cannot connect to {location.where(dbname)}: {exc}") from None
    try:
        yield conn
    finally:
        conn.close()


def _run(argv: list[str], location: PostgresLocation, timeout_s: float, **kwargs: Any) -> None:
    """Run a PostgreSQL client tool (the password in its environment); one line on failure."""
    tool = Path(argv[0]).name
    try:
        done = subprocess.run(
            argv,
            env=location.child_env(),
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout_s,
            check=False,
            **kwargs,
        )
    except FileNotFoundError:
        raise BackupError(f"{argv[0]}: not installed (the PostgreSQL client tools)") from None
    except subprocess.TimeoutExpired:
        raise BackupError(f"{tool} did not finish within {timeout_s:g}s") from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = lines[-1] if lines else "no message"
        raise BackupError(f"{tool} failed (exit {done.returncode}): {why}")


def snapshot_postgres(
    location: PostgresLocation,
    directory: Path,
    *,
    pg_dump: Path,
    pg_restore: Path,
    timeout_s: float,
) -> PostgresSnapshot:
    """Dump the registry into ``directory/registry.dump`` (0600) with the row counts and the
    revision of the same snapshot. On failure what was written is removed again."""
    target = directory / SNAPSHOT_FILE
    try:
        with _connect(location, autocommit=False) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            try:
                snapshot_id, revision, counts = _export_snapshot(conn)
                _dump(location, snapshot_id, target, pg_dump=pg_dump, timeout_s=timeout_s)
            finally:
                conn.rollback()  # read only: nothing to keep; the exported snapshot ends here
        # The archive must be readable by the tool that will restore it.
        _run(
            [str(pg_restore), "--list", str(target)],
            location,
            timeout_s,
            stdout=subprocess.DEVNULL,
        )
        sha256, size = hash_file(target)
    except psycopg.Error as exc:
        remove_quietly(target)
        raise BackupError(f"cannot snapshot {location.where()}: {exc}") from None
    except BaseException:
        remove_quietly(target)
        raise
    return PostgresSnapshot(FileEntry(sha256=sha256, size=size), revision, counts)


def _export_snapshot(conn: psycopg.Connection[tuple[Any, ...]]) -> tuple[str, str, dict[str, int]]:
    """Export the transaction's snapshot (its first statement); its id, revision and counts."""
    row = conn.execute("SELECT pg_export_snapshot()").fetchone()
    if row is None:  # pragma: no cover - the function always returns a row
        raise BackupError("pg_export_snapshot() returned nothing")
    # The transaction idles while pg_dump runs: a server-wide idle timeout must not end it.
    conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
    tables = [str(name) for (name,) in conn.execute(_TABLES_SQL)]
    return str(row[0]), read_revision(conn.execute), count_rows(conn.execute, tables)


def _dump(
    location: PostgresLocation, snapshot_id: str, target: Path, *, pg_dump: Path, timeout_s: float
) -> None:
    """``pg_dump -Fc`` of the exported snapshot into the new file ``target`` (0600)."""
    fd = create_private(target)
    try:
        _run(
            [
                str(pg_dump),
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                "--no-password",
                f"--snapshot={snapshot_id}",
                f"--lock-wait-timeout={LOCK_WAIT_TIMEOUT_MS}",
                f"--dbname={location.conninfo()}",
            ],
            location,
            timeout_s,
            stdout=fd,
        )
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_name(name: str, what: str) -> None:
    """A database name PostgreSQL keeps whole (at most 63 bytes)."""
    if not name or len(name.encode()) > MAX_NAME_BYTES:
        raise BackupError(f"{what} database name {name!r} is longer than {MAX_NAME_BYTES} bytes")


def _database_exists(admin: psycopg.Connection[tuple[Any, ...]], name: str) -> bool:
    return (
        admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None
    )


def _create_scratch(
    admin: psycopg.Connection[tuple[Any, ...]], scratch: str, target: str, owner: str | None
) -> None:
    """Create the empty scratch database: template0, the target's encoding and locale."""
    parts = [sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(scratch))]
    like = admin.execute(
        "SELECT pg_encoding_to_char(encoding), datcollate, datctype "
        "FROM pg_database WHERE datname = %s",
        [target],
    ).fetchone()
    if like is not None:
        encoding, collate, ctype = like
        parts.append(
            sql.SQL("ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
                sql.Literal(encoding), sql.Literal(collate), sql.Literal(ctype)
            )
        )
    if owner is not None:
        parts.append(sql.SQL("OWNER {}").format(sql.Identifier(owner)))
    admin.execute(sql.SQL(" ").join(parts))


def _drop(admin: psycopg.Connection[tuple[Any, ...]], name: str) -> None:
    """Drop a database this restore created (its sessions are ended)."""
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _verify_scratch(location: PostgresLocation, scratch: str, manifest: Manifest) -> dict[str, int]:
    """Check the restored database against the manifest and the service's hashes."""
    what = f"restored copy ({location.where(scratch)})"
    try:
        with _connect(location, scratch) as conn:
            revision = read_revision(conn.execute)
            if revision != manifest.schema_revision:
                raise BackupError(
                    f"holds schema revision {revision}, "
                    f"the manifest says {manifest.schema_revision}"
                )
            tables = [str(name) for (name,) in conn.execute(_TABLES_SQL)]
            counts = count_rows(conn.execute, tables)
            check_counts(counts, manifest.tables)
            verify_policies(conn.execute)
    except psycopg.Error as exc:
        raise BackupError(f"{what}: {exc}") from None
    except BackupError as exc:
        raise BackupError(f"{what} refused: {exc}") from None
    return counts


def _swap(
    admin: psycopg.Connection[tuple[Any, ...]],
    *,
    target: str,
    scratch: str,
    previous: str | None,
) -> None:
    """In one transaction: end the other sessions of both databases, rename the target to
    ``previous`` (when there is one) and the scratch database to the target's name.

    A session that connects between the termination and the rename makes PostgreSQL refuse
    the rename (object in use): the transaction rolls back and is tried again, a bounded
    number of times.
    """
    terminate = (
        "SELECT pg_terminate_backend(pid, %s) FROM pg_stat_activity "
        "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()"
    )
    for attempt in range(1, SWAP_ATTEMPTS + 1):
        try:
            with admin.transaction():
                admin.execute(terminate, [TERMINATE_WAIT_MS, [target, scratch]])
                if previous is not None:
                    admin.execute(
                        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                            sql.Identifier(target), sql.Identifier(previous)
                        )
                    )
                admin.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(scratch), sql.Identifier(target)
                    )
                )
            return
        except psycopg.errors.ObjectInUse:
            if attempt == SWAP_ATTEMPTS:
                raise BackupError(
                    f"database {target} is still in use after {SWAP_ATTEMPTS} attempts to end "
                    "its sessions: stop the service first"
                ) from None
            time.sleep(SWAP_RETRY_S)


def restore_postgres(
    directory: Path,
    manifest: Manifest,
    location: PostgresLocation,
    *,
    scratch: str,
    previous: str,
    owner: str | None,
    maintenance_db: str,
    pg_restore: Path,
    timeout_s: float,
) -> tuple[dict[str, int], str | None]:
    """Restore ``directory/registry.dump`` as the URL's database; the counts and the name the
    previous database now has (None when there was none)."""
    target = location.dbname
    _check_name(scratch, "scratch")
    _check_name(previous, "previous")
    if target in {maintenance_db, scratch, previous}:
        raise BackupError(
            f"database {target}: the maintenance, scratch and previous databases must differ "
            "from it"
        )
    try:
        with _connect(location, maintenance_db) as admin:
            for name in (scratch, previous):
                if _database_exists(admin, name):
                    raise BackupError(f"{location.where(name)}: exists already")
            had_target = _database_exists(admin, target)
            _create_scratch(admin, scratch, target, owner)
            try:
                role = [f"--role={owner}"] if owner is not None else []
                _run(
                    [
                        str(pg_restore),
                        "--no-owner",
                        "--no-privileges",
                        "--exit-on-error",
                        "--single-transaction",
                        "--no-password",
                        *role,
                        f"--dbname={location.conninfo(scratch)}",
                        str(directory / SNAPSHOT_FILE),
                    ],
                    location,
                    timeout_s,
                    stdout=subprocess.DEVNULL,
                )
                counts = _verify_scratch(location, scratch, manifest)
                _swap(
                    admin,
                    target=target,
                    scratch=scratch,
                    previous=previous if had_target else None,
                )
            except BaseException as failure:
                try:
                    _drop(admin, scratch)
                except psycopg.Error as exc:  # keep the first error, and say what is left
                    raise BackupError(
                        f"{failure}; the scratch database {scratch} could not be dropped: {exc}"
                    ) from None
                raise
    except psycopg.Error as exc:
        raise BackupError(f"cannot restore into {location.where()}: {exc}") from None
    return counts, previous if had_target else None
