"""SQLite: snapshot a live registry file with the online backup API, restore it by rename.

The snapshot is one read transaction of ``sqlite3``'s backup API (``source.backup(target)``,
all pages in one step), so it is consistent while the service keeps writing (WAL: readers
and the writer do not block each other); it is written in rollback-journal mode, one
self-contained file. Counts and revision are read from that file.

A restore copies the snapshot to a scratch file next to the target, checks it (integrity,
foreign keys, counts, revision, every stored hash), gives it the target's owner and mode,
keeps the target as ``<name>.before-restore-<stamp>`` (a hard link) and renames the scratch
file over the target.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote

from cap_ops.backup.content import (
    check_counts,
    count_rows,
    read_revision,
    verify_policies,
)
from cap_ops.backup.errors import BackupError
from cap_ops.backup.fsutil import (
    PRIVATE_FILE,
    copy_private,
    create_private,
    fsync_dir,
    hash_file,
    remove_quietly,
)
from cap_ops.backup.manifest import REGISTRY_FILES, FileEntry, Manifest

__all__ = ["SqliteSnapshot", "restore_sqlite", "snapshot_sqlite"]

SNAPSHOT_FILE: Final = REGISTRY_FILES["sqlite"]
SIDE_SUFFIXES: Final = ("-wal", "-shm", "-journal")
"""The files SQLite keeps next to a database: WAL, its index, a rollback journal."""
BUSY_TIMEOUT_S: Final = 10.0
SQLITE_HEADER: Final = b"SQLite format 3\x00"


@dataclass(frozen=True)
class SqliteSnapshot:
    """What a snapshot file holds: its entry, the revision and the row counts."""

    entry: FileEntry
    schema_revision: str
    tables: dict[str, int]


def _uri(path: Path, mode: str) -> str:
    """The ``file:`` URI of ``path`` opened with ``mode`` (``ro``, ``rw``: never created)."""
    return f"file:{quote(str(path.absolute()))}?mode={mode}"


@contextmanager
def _open(path: Path, mode: str) -> Iterator[sqlite3.Connection]:
    """A connection to the existing database ``path`` (autocommit), closed on exit."""
    conn = sqlite3.connect(_uri(path, mode), uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def side_files(path: Path) -> list[Path]:
    """The ``-wal``, ``-shm`` and ``-journal`` files of ``path`` that exist."""
    return [
        path.with_name(path.name + suffix)
        for suffix in SIDE_SUFFIXES
        if os.path.lexists(path.with_name(path.name + suffix))
    ]


def _tables(conn: sqlite3.Connection) -> list[str]:
    """The user tables of a database (SQLite's own ``sqlite_*`` tables left out)."""
    return [
        str(name)
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        )
    ]


def _integrity(conn: sqlite3.Connection, what: str) -> None:
    """``PRAGMA integrity_check`` and ``foreign_key_check`` must find nothing."""
    problems = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
    if problems != ["ok"]:
        raise BackupError(f"{what}: integrity check failed: {problems[0]}")
    dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
    if dangling:
        raise BackupError(f"{what}: foreign key check failed in table {dangling[0][0]}")


def snapshot_sqlite(source: Path, directory: Path) -> SqliteSnapshot:
    """Copy the live database ``source`` into ``directory/registry.db`` (0600).

    ``directory`` must be empty; on failure what was written is removed again.
    """
    if not source.is_file():
        raise BackupError(f"{source}: no SQLite registry file there")
    target = directory / SNAPSHOT_FILE
    os.close(create_private(target))
    try:
        with _open(source, "rw") as live, _open(target, "rw") as copy:
            live.backup(copy)  # all pages in one step: one read transaction, one point in time
            copy.execute("PRAGMA journal_mode = DELETE").fetchall()  # one self-contained file
            _integrity(copy, f"snapshot of {source}")
            revision = read_revision(copy.execute)
            tables = count_rows(copy.execute, _tables(copy))
        os.chmod(target, PRIVATE_FILE)
        stray = side_files(target)
        if stray:
            raise BackupError(f"{stray[0]}: left next to the snapshot")
        sha256, size = hash_file(target)
    except sqlite3.Error as exc:
        _remove_with_side_files(target)
        raise BackupError(f"cannot snapshot {source}: {exc}") from None
    except BaseException:
        _remove_with_side_files(target)
        raise
    return SqliteSnapshot(FileEntry(sha256=sha256, size=size), revision, tables)


def _remove_with_side_files(path: Path) -> None:
    """Remove ``path`` and its ``-wal``/``-shm``/``-journal`` files."""
    for side in side_files(path):
        remove_quietly(side)
    remove_quietly(path)


def _verify_copy(path: Path, manifest: Manifest) -> dict[str, int]:
    """Check a restored copy against the manifest and the service's hashes; its counts."""
    what = f"restored copy {path}"
    try:
        with _open(path, "ro") as conn:
            _integrity(conn, what)
            revision = read_revision(conn.execute)
            if revision != manifest.schema_revision:
                raise BackupError(
                    f"{what}: holds schema revision {revision}, "
                    f"the manifest says {manifest.schema_revision}"
                )
            counts = count_rows(conn.execute, _tables(conn))
            check_counts(counts, manifest.tables)
            verify_policies(conn.execute)
    except sqlite3.Error as exc:
        raise BackupError(f"{what}: {exc}") from None
    except BackupError as exc:
        raise BackupError(f"{what} refused: {exc}") from None
    return counts


def _owner_and_mode(target: Path) -> tuple[int, int, int]:
    """Owner, group and mode the restored file must have: the target's, else 0600 and the
    owner of the target's directory (where the service keeps its data)."""
    if target.exists():
        info = target.stat()
        return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)
    info = target.parent.stat()
    return info.st_uid, info.st_gid, PRIVATE_FILE


def _take_ownership(path: Path, target: Path) -> None:
    """Give ``path`` the owner, group and mode of ``target`` (see :func:`_owner_and_mode`)."""
    uid, gid, mode = _owner_and_mode(target)
    info = path.stat()
    try:
        if (info.st_uid, info.st_gid) != (uid, gid):
            os.chown(path, uid, gid)
        os.chmod(path, mode)
    except OSError as exc:
        raise BackupError(
            f"cannot give the restored file the owner {uid}:{gid} and mode {mode:04o} of "
            f"{target}: {exc.strerror} (run the restore as root or as the owner)"
        ) from None


def _quiesce(target: Path) -> list[Path]:
    """Fold the target's WAL into it and check nobody has it open.

    Returns the side files that stay (only for a target SQLite cannot read: they are moved
    aside with it; a file without SQLite's header is not even opened). A target in use (its
    WAL stays after our connection, the last one, closed; or it is locked) is refused: the
    service must be stopped first.
    """
    if not target.exists():
        return side_files(target)  # stale files of a database that is gone
    with target.open("rb") as file:
        if file.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            # Not a database (any more): SQLite must not open it, it would drop the WAL.
            return side_files(target)
    try:
        with _open(target, "rw") as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.OperationalError as exc:
        raise BackupError(
            f"{target}: cannot be opened exclusively ({exc}): stop the service first"
        ) from None
    except sqlite3.DatabaseError:
        return side_files(target)  # not a database (any more): keep its files with it
    left = side_files(target)
    if left:
        raise BackupError(
            f"{target}: in use ({left[0].name} stays after the last connection closed): "
            "stop the service first"
        )
    return []


def _swap(scratch: Path, target: Path, previous: Path, leftovers: list[Path]) -> Path | None:
    """Keep the target as ``previous`` (hard link, with its leftover side files), then rename
    ``scratch`` over ``target``. Undone on failure."""
    kept: Path | None = None
    moved: list[tuple[Path, Path]] = []
    try:
        if target.exists():
            os.link(target, previous)
            kept = previous
        for side in leftovers:
            suffix = side.name[len(target.name) :]
            moved_to = previous.with_name(previous.name + suffix)
            os.rename(side, moved_to)
            moved.append((side, moved_to))
        os.replace(scratch, target)
    except OSError as exc:
        for side, moved_to in reversed(moved):
            with contextlib.suppress(OSError):
                os.rename(moved_to, side)
        if kept is not None:
            remove_quietly(kept)
        raise BackupError(f"cannot put the restored registry in place at {target}: {exc}") from None
    fsync_dir(target.parent)
    if kept is None:  # nothing was kept: stale side files of a missing database go
        for _side, moved_to in moved:
            remove_quietly(moved_to)
    return kept


def restore_sqlite(
    directory: Path, manifest: Manifest, target: Path, *, scratch_name: str, previous_name: str
) -> tuple[dict[str, int], Path | None]:
    """Restore ``directory/registry.db`` over ``target``; the counts and the kept previous file.

    ``scratch_name`` and ``previous_name`` are file names in the target's directory.
    """
    parent = target.parent
    if not parent.is_dir():
        raise BackupError(f"{parent}: no such directory for the registry")
    if os.path.lexists(target) and not (target.is_file() and not target.is_symlink()):
        raise BackupError(f"{target}: not a regular file")
    scratch = parent / scratch_name
    previous = parent / previous_name
    if os.path.lexists(previous):
        raise BackupError(f"{previous}: exists already")
    expected = manifest.files[SNAPSHOT_FILE]
    sha256, size = copy_private(directory / SNAPSHOT_FILE, scratch)
    try:
        if (sha256, size) != (expected.sha256, expected.size):
            raise BackupError(f"{directory / SNAPSHOT_FILE}: changed while being restored")
        counts = _verify_copy(scratch, manifest)
        for side in side_files(scratch):
            remove_quietly(side)
        _take_ownership(scratch, target)
        leftovers = _quiesce(target)
        kept = _swap(scratch, target, previous, leftovers)
    except BaseException:
        _remove_with_side_files(scratch)
        raise
    return counts, kept
