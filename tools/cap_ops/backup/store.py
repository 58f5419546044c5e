"""Backups on disk: ``<root>/<YYYYmmddTHHMMSSZ>/``, written hidden, published by one rename.

A backup is written into ``<root>/.partial-<stamp>/`` (mode 0700) and published by renaming
it to ``<root>/<stamp of its snapshot>/`` once its manifest is there and its files match it:
no reader ever sees a half-written backup. Only directories of these two name forms (and the
``.deleting-…`` ones :func:`prune` leaves after a failed removal) are ever deleted; anything
else under the root is left alone.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, NamedTuple

from cap_ops.backup.checksums import verify_files
from cap_ops.backup.errors import BackupError, guarded
from cap_ops.backup.fsutil import fsync_dir
from cap_ops.backup.manifest import Manifest, read_manifest
from cap_ops.backup.timestamps import parse_rfc3339, parse_stamp, stamp, utc, utc_now

__all__ = [
    "PARTIAL_PREFIX",
    "STALE_PARTIAL_AGE",
    "Backup",
    "latest",
    "list_backups",
    "newest_good",
    "partial_directory",
    "prune",
    "publish",
]

PARTIAL_PREFIX: Final = ".partial-"
DELETING_PREFIX: Final = ".deleting-"
STALE_PARTIAL_AGE: Final = timedelta(days=1)
PRIVATE_DIR: Final = 0o700

_DELETING_RE: Final = re.compile(
    r"^" + re.escape(DELETING_PREFIX) + r"(" + re.escape(PARTIAL_PREFIX) + r")?[0-9]{8}T[0-9]{6}Z$"
)


class Backup(NamedTuple):
    """A published backup: its directory and its manifest."""

    path: Path
    manifest: Manifest


def _require_root(root: Path) -> None:
    if root.is_symlink() or not root.is_dir():
        raise BackupError(f"{root}: the backup root is not an existing directory")


def _partial_stamp(name: str) -> datetime | None:
    """The time in a partial directory's name, or None when ``name`` is not one."""
    if not name.startswith(PARTIAL_PREFIX):
        return None
    return parse_stamp(name[len(PARTIAL_PREFIX) :])


def _is_real_dir(path: Path) -> bool:
    return not path.is_symlink() and path.is_dir()


@guarded
def partial_directory(root: Path, *, now: datetime | None = None) -> Path:
    """Create ``<root>/.partial-<stamp>/`` (mode 0700) for a backup being written."""
    _require_root(root)
    path = root / f"{PARTIAL_PREFIX}{stamp(now if now is not None else utc_now())}"
    try:
        os.mkdir(path, PRIVATE_DIR)
    except FileExistsError:
        raise BackupError(f"{path}: exists already (another backup in the same second?)") from None
    except OSError as exc:
        raise BackupError(f"{path}: cannot create: {exc.strerror}") from None
    os.chmod(path, PRIVATE_DIR)  # whatever the umask
    fsync_dir(root)
    return path


@guarded
def publish(partial: Path, root: Path) -> Path:
    """Rename the finished ``partial`` to ``<root>/<stamp of its snapshot>/``; the new path.

    Refused (nothing moved) unless ``partial`` is a partial directory of ``root`` whose files
    match its manifest, and no backup of that name exists.
    """
    _require_root(root)
    if (
        _partial_stamp(partial.name) is None
        or not _is_real_dir(partial)
        or partial.parent.resolve() != root.resolve()
    ):
        raise BackupError(f"{partial}: not a partial backup directory of {root}")
    manifest = verify_files(partial)
    final = root / stamp(parse_rfc3339(manifest.created_at))
    if os.path.lexists(final):
        raise BackupError(f"{final}: a backup of that time exists already")
    try:
        os.rename(partial, final)
    except OSError as exc:
        raise BackupError(f"cannot publish {partial} as {final}: {exc.strerror}") from None
    fsync_dir(root)
    return final


@guarded
def list_backups(root: Path) -> list[Backup]:
    """The published backups with a readable manifest, oldest first (junk is ignored)."""
    _require_root(root)
    found: list[Backup] = []
    for name in sorted(os.listdir(root)):
        path = root / name
        if parse_stamp(name) is None or not _is_real_dir(path):
            continue
        try:
            found.append(Backup(path, read_manifest(path)))
        except BackupError:
            continue
    return found


@guarded
def latest(root: Path) -> Backup | None:
    """The newest published backup with a readable manifest (its files are not checked)."""
    backups = list_backups(root)
    return backups[-1] if backups else None


def _newest_good(backups: list[Backup]) -> Backup | None:
    for backup in reversed(backups):
        try:
            verify_files(backup.path)
        except BackupError:
            continue
        return backup
    return None


@guarded
def newest_good(root: Path) -> Backup | None:
    """The newest published backup whose files match its manifest (:func:`verify_files`)."""
    return _newest_good(list_backups(root))


def _delete(path: Path) -> None:
    """Remove a backup directory: first renamed out of sight, then removed."""
    doomed = (
        path
        if path.name.startswith(DELETING_PREFIX)
        else path.with_name(DELETING_PREFIX + path.name)
    )
    try:
        if doomed != path:
            os.rename(path, doomed)
        shutil.rmtree(doomed)
    except OSError as exc:
        raise BackupError(f"cannot delete {path}: {exc.strerror or exc}") from None


@guarded
def prune(root: Path, keep_days: int, now: datetime) -> list[Path]:
    """Delete old backups; the paths deleted.

    Deleted: published backups older than ``keep_days`` days (by the time in their name),
    partial directories older than a day, and the remains of an earlier failed deletion.
    Never deleted: the newest good backup (:func:`verify_files` passes), however old, and
    anything whose name is not of the library's forms.
    """
    if keep_days < 0:
        raise BackupError(f"keep_days must be 0 or more, not {keep_days}")
    moment = utc(now)
    backups = list_backups(root)
    keep = _newest_good(backups)
    cutoff = moment - timedelta(days=keep_days)
    doomed: list[Path] = []
    for backup in backups:
        taken = parse_stamp(backup.path.name)
        if backup != keep and taken is not None and taken < cutoff:
            doomed.append(backup.path)
    for name in sorted(os.listdir(root)):
        path = root / name
        if not _is_real_dir(path):
            continue
        started = _partial_stamp(name)
        if (started is not None and started < moment - STALE_PARTIAL_AGE) or _DELETING_RE.match(
            name
        ):
            doomed.append(path)
    for path in doomed:
        _delete(path)
    if doomed:
        fsync_dir(root)
    return doomed
