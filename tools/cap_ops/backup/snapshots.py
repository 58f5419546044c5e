"""``snapshot``: a consistent copy of a live registry into an empty directory, manifest last."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from cap_ops.backup.errors import BackupError, guarded
from cap_ops.backup.fsutil import remove_quietly
from cap_ops.backup.manifest import REGISTRY_FILES, Manifest, RegistryKind, write_manifest
from cap_ops.backup.postgres_backend import PG_DUMP, PG_RESTORE, snapshot_postgres
from cap_ops.backup.sqlite_backend import snapshot_sqlite
from cap_ops.backup.timestamps import rfc3339, utc_now
from cap_ops.backup.urls import SqliteLocation, parse_registry_url
from cap_verifier import __version__

__all__ = ["DEFAULT_TOOL_TIMEOUT_S", "snapshot"]

DEFAULT_TOOL_TIMEOUT_S: Final = 3600.0


def _require_empty_directory(directory: Path) -> None:
    """``directory`` must be an existing, empty directory (not a symlink)."""
    if directory.is_symlink() or not directory.is_dir():
        raise BackupError(f"{directory}: not an existing directory")
    entries = os.listdir(directory)
    if entries:
        raise BackupError(f"{directory}: not empty (holds {sorted(entries)[0]})")


@guarded
def snapshot(
    registry_url: str,
    directory: Path,
    *,
    pg_dump: Path = PG_DUMP,
    pg_restore: Path = PG_RESTORE,
    timeout_s: float = DEFAULT_TOOL_TIMEOUT_S,
) -> Manifest:
    """Snapshot the live registry of ``registry_url`` into the empty ``directory``.

    SQLite: ``registry.db`` by the online backup API; PostgreSQL: ``registry.dump`` by
    ``pg_dump -Fc`` at an exported snapshot. The row counts and the schema revision are read
    from the same point in time as the copy; ``manifest.json`` is written last, so a directory
    with a manifest holds a whole snapshot. Files are mode 0600. The service keeps serving.
    On failure ``directory`` is empty again. ``timeout_s`` bounds each PostgreSQL tool run.
    """
    location = parse_registry_url(registry_url)
    _require_empty_directory(directory)
    created_at = rfc3339(utc_now())
    if isinstance(location, SqliteLocation):
        taken = snapshot_sqlite(location.path, directory)
        registry: RegistryKind = "sqlite"
        entry, revision, tables = taken.entry, taken.schema_revision, taken.tables
    else:
        dumped = snapshot_postgres(
            location, directory, pg_dump=pg_dump, pg_restore=pg_restore, timeout_s=timeout_s
        )
        registry = "postgresql"
        entry, revision, tables = dumped.entry, dumped.schema_revision, dumped.tables
    snapshot_file = directory / REGISTRY_FILES[registry]
    try:
        manifest = Manifest(
            format=1,
            created_at=created_at,
            service_version=__version__,
            schema_revision=revision,
            registry=registry,
            files={REGISTRY_FILES[registry]: entry},
            tables=tables,
        )
        write_manifest(directory, manifest)
    except BaseException:
        remove_quietly(snapshot_file)
        raise
    return manifest
