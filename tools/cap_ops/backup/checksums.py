"""The files of a backup against its manifest: check them all, or record one more.

:func:`verify_files` is the first step of every restore: nothing is touched before the files
of the backup are exactly those the manifest lists, each with its size and sha256.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import msgspec

from cap_ops.backup.errors import BackupError, guarded
from cap_ops.backup.fsutil import hash_file
from cap_ops.backup.manifest import (
    MANIFEST_NAME,
    REGISTRY_FILES,
    FileEntry,
    Manifest,
    read_manifest,
    write_manifest,
)

__all__ = ["add_file", "file_entry", "verify_files"]

_OWNER_ONLY = 0o077


def file_entry(path: Path) -> FileEntry:
    """The manifest entry (sha256, size) of the regular file ``path``."""
    sha256, size = hash_file(path)
    return FileEntry(sha256=sha256, size=size)


@guarded
def verify_files(directory: Path) -> Manifest:
    """Check ``directory`` against its manifest and return the manifest.

    Every listed file must be a regular file of the listed size and sha256, and every entry of
    the directory but ``manifest.json`` must be listed. A one-line BackupError names the first
    file that differs. Reads only.
    """
    manifest = read_manifest(directory)
    for name, expected in sorted(manifest.files.items()):
        path = directory / name
        try:
            info = path.lstat()
        except FileNotFoundError:
            raise BackupError(f"{path}: listed in the manifest but missing") from None
        if not stat.S_ISREG(info.st_mode):
            raise BackupError(f"{path}: not a regular file")
        if info.st_size != expected.size:
            raise BackupError(
                f"{path}: {info.st_size} bytes, the manifest says {expected.size} "
                "(truncated or changed)"
            )
        sha256, size = hash_file(path)
        if size != expected.size or sha256 != expected.sha256:
            raise BackupError(
                f"{path}: sha256 {sha256} differs from the manifest's {expected.sha256} "
                "(corrupted or changed)"
            )
    extra = sorted(set(os.listdir(directory)) - set(manifest.files) - {MANIFEST_NAME})
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise BackupError(f"{directory / extra[0]}: not listed in the manifest{more}")
    return manifest


@guarded
def add_file(directory: Path, manifest: Manifest, path: Path) -> Manifest:
    """Record ``path`` (a file inside ``directory``) in the manifest and rewrite the manifest.

    ``manifest`` is the backup's current manifest, as :func:`snapshot` or an earlier
    ``add_file`` returned it; it must equal ``manifest.json`` on disk (a stale one is refused,
    so no entry is lost). The file must be a regular file directly in ``directory``, readable
    and writable by its owner only (mode 0600 or stricter: backups hold secrets). Recording a
    name again replaces its entry (a re-run of a playbook step); the snapshot file itself
    cannot be replaced. Returns the new manifest.
    """
    name = path.name
    if path.parent.resolve() != directory.resolve():
        raise BackupError(f"{path}: not directly inside the backup directory {directory}")
    if name == MANIFEST_NAME or name in REGISTRY_FILES.values():
        raise BackupError(f"{path}: {name} is written by the library, not added")
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise BackupError(f"{path}: missing") from None
    if not stat.S_ISREG(info.st_mode):
        raise BackupError(f"{path}: not a regular file")
    if stat.S_IMODE(info.st_mode) & _OWNER_ONLY:
        raise BackupError(
            f"{path}: mode {stat.S_IMODE(info.st_mode):04o}, must be 0600 or stricter "
            "(group and others must not read a backup)"
        )
    on_disk = read_manifest(directory)
    if on_disk != manifest:
        raise BackupError(
            f"{directory / MANIFEST_NAME}: differs from the manifest given to add_file "
            "(pass the one the last snapshot or add_file returned)"
        )
    files = dict(manifest.files)
    files[name] = file_entry(path)
    updated = msgspec.structs.replace(manifest, files=files)
    write_manifest(directory, updated)
    return updated
