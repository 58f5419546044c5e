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
from cap_ops.backup.restore import RestoreReport, restore
from cap_ops.backup.revisions import check_revision, code_revision
from cap_ops.backup.snapshot import snapshot
from cap_ops.backup.store import (
    Backup,
    latest,
    list_backups,
    newest_good,
    partial_directory,
    prune,
    publish,
)

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
