"""``restore``: a checked backup replaces the registry, through a scratch copy and a swap.

Order: the backup's files against the manifest (nothing touched on failure), the snapshot's
schema revision against the code's, the backend against the URL; then a scratch copy, checked
(integrity, counts, revision, every stored hash), then the swap, which keeps the previous data.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

from msgspec import Meta, Struct

from cap_ops.backup.checksums import verify_files
from cap_ops.backup.errors import BackupError, guarded
from cap_ops.backup.manifest import RegistryKind
from cap_ops.backup.postgres_backend import PG_RESTORE, restore_postgres
from cap_ops.backup.revisions import check_revision
from cap_ops.backup.snapshots import DEFAULT_TOOL_TIMEOUT_S
from cap_ops.backup.sqlite_backend import restore_sqlite
from cap_ops.backup.timestamps import stamp, utc, utc_now
from cap_ops.backup.urls import SqliteLocation, parse_registry_url

__all__ = ["RestoreReport", "restore"]


class RestoreReport(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a restore did (``msgspec.to_builtins(report)`` is plain JSON for Ansible)."""

    registry: RegistryKind
    target: str
    """The restored registry: the SQLite file, or the PostgreSQL database name."""
    backup: str
    """The backup directory restored from."""
    created_at: str
    """When the restored snapshot was taken (the manifest's ``created_at``)."""
    schema_revision: str
    tables: dict[str, int]
    """Row count of every restored table (equal to the manifest's)."""
    seconds: Annotated[float, Meta(ge=0)]
    previous: str | None
    """Where the data replaced went: the file ``<name>.before-restore-<stamp>`` next to the
    SQLite file, or the database ``<db>_before_restore_<stamp>``; None when there was none.
    Kept: the caller decides when to delete it."""


@guarded
def restore(
    directory: Path,
    registry_url: str,
    *,
    scratch: str | None = None,
    owner: str | None = None,
    maintenance_db: str = "postgres",
    now: datetime | None = None,
    pg_restore: Path = PG_RESTORE,
    timeout_s: float = DEFAULT_TOOL_TIMEOUT_S,
) -> RestoreReport:
    """Restore the backup in ``directory`` over the registry of ``registry_url``.

    The caller stops the service first (a SQLite file still open is refused; PostgreSQL
    sessions of the target are terminated). ``scratch`` names the scratch copy: a file name in
    the SQLite file's directory (default ``.<name>.restore-<stamp>``), or a database on the
    same server (default ``<db>_restore_<stamp>``). PostgreSQL only: ``owner`` is the role
    that must own the restored database and its objects (default: the role of the URL), and
    ``maintenance_db`` the database the library connects to for CREATE/ALTER DATABASE.
    ``now`` (default: the clock) gives the stamp of the scratch and previous names.
    """
    started = time.monotonic()
    location = parse_registry_url(registry_url)
    kind: RegistryKind = "sqlite" if isinstance(location, SqliteLocation) else "postgresql"
    manifest = verify_files(directory)
    if manifest.registry != kind:
        raise BackupError(
            f"{directory}: holds a {manifest.registry} snapshot, the registry URL names {kind}"
        )
    check_revision(manifest.schema_revision, service_version=manifest.service_version)
    moment = stamp(utc(now) if now is not None else utc_now())
    if isinstance(location, SqliteLocation):
        name = location.path.name
        if scratch is not None and (not scratch or "/" in scratch or scratch in {".", ".."}):
            raise BackupError(f"scratch {scratch!r}: must be a file name, not a path")
        counts, kept = restore_sqlite(
            directory,
            manifest,
            location.path,
            scratch_name=scratch or f".{name}.restore-{moment}",
            previous_name=f"{name}.before-restore-{moment}",
        )
        target = str(location.path)
        previous = None if kept is None else str(kept)
    else:
        # Lower case: names that psql users can type without quotes.
        suffix = moment.lower()
        counts, previous = restore_postgres(
            directory,
            manifest,
            location,
            scratch=scratch or f"{location.dbname}_restore_{suffix}",
            previous=f"{location.dbname}_before_restore_{suffix}",
            owner=owner,
            maintenance_db=maintenance_db,
            pg_restore=pg_restore,
            timeout_s=timeout_s,
        )
        target = location.dbname
    return RestoreReport(
        registry=kind,
        target=target,
        backup=str(directory),
        created_at=manifest.created_at,
        schema_revision=manifest.schema_revision,
        tables=counts,
        seconds=round(time.monotonic() - started, 3),
        previous=previous,
    )
