"""The data layer of the backup and restore runbooks (called by the playbooks' modules).

- :func:`snapshot` copies a live registry (SQLite online backup, or ``pg_dump`` at an exported
  snapshot) into an empty directory and writes ``manifest.json`` last (:class:`Manifest`).
- :func:`add_file` records one more file (an encrypted config archive…) in the manifest.
- :func:`verify_files` checks every file of a backup against its manifest.
- :func:`restore` checks a backup, restores it into a scratch copy, checks that copy (counts,
  schema revision, every stored hash recomputed by the service's code) and swaps it in.
- :func:`partial_directory`, :func:`publish`, :func:`list_backups`, :func:`latest`,
  :func:`newest_good` and :func:`prune` keep backups on disk under one root.

Every failure is a :class:`BackupError` whose text is one line; a failed operation leaves the
data as it was.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cap_ops.backup.checksums import add_file, verify_files
    from cap_ops.backup.errors import BackupError
    from cap_ops.backup.manifest import (
        MANIFEST_NAME,
        REGISTRY_FILES,
        FileEntry,
        Manifest,
        RegistryKind,
        read_manifest,
        write_manifest,
    )
    from cap_ops.backup.restoring import RestoreReport, restore
    from cap_ops.backup.revisions import check_revision, code_revision
    from cap_ops.backup.snapshots import snapshot
    from cap_ops.backup.store import (
        Backup,
        latest,
        list_backups,
        newest_good,
        partial_directory,
        prune,
        publish,
    )

_EXPORTS: dict[str, str] = {
    "Backup": "cap_ops.backup.store",
    "BackupError": "cap_ops.backup.errors",
    "FileEntry": "cap_ops.backup.manifest",
    "MANIFEST_NAME": "cap_ops.backup.manifest",
    "Manifest": "cap_ops.backup.manifest",
    "REGISTRY_FILES": "cap_ops.backup.manifest",
    "RegistryKind": "cap_ops.backup.manifest",
    "RestoreReport": "cap_ops.backup.restoring",
    "add_file": "cap_ops.backup.checksums",
    "check_revision": "cap_ops.backup.revisions",
    "code_revision": "cap_ops.backup.revisions",
    "latest": "cap_ops.backup.store",
    "list_backups": "cap_ops.backup.store",
    "newest_good": "cap_ops.backup.store",
    "partial_directory": "cap_ops.backup.store",
    "prune": "cap_ops.backup.store",
    "publish": "cap_ops.backup.store",
    "read_manifest": "cap_ops.backup.manifest",
    "restore": "cap_ops.backup.restoring",
    "snapshot": "cap_ops.backup.snapshots",
    "verify_files": "cap_ops.backup.checksums",
    "write_manifest": "cap_ops.backup.manifest",
}
"""Name -> its module, imported on first use: a module needing only ``publish`` does not load
SQLAlchemy, Alembic and the PostgreSQL driver (each Ansible module is a new process). No module
is named like a function it exports (the import system would shadow the function)."""


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "MANIFEST_NAME",
    "REGISTRY_FILES",
    "Backup",
    "BackupError",
    "FileEntry",
    "Manifest",
    "RegistryKind",
    "RestoreReport",
    "add_file",
    "check_revision",
    "code_revision",
    "latest",
    "list_backups",
    "newest_good",
    "partial_directory",
    "prune",
    "publish",
    "read_manifest",
    "restore",
    "snapshot",
    "verify_files",
    "write_manifest",
]
