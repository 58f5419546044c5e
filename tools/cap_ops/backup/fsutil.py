"""Files of a backup: created private (0600) and exclusive, replaced atomically, hashed.

Every file this library writes is created with ``O_EXCL`` and mode 0600 (backups hold the
whole registry, and the playbooks add encrypted secrets next to it); a file is published by
``os.replace`` after an ``fsync``, and its directory is synced after that.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
from pathlib import Path
from typing import Final

from cap_ops.backup.errors import BackupError

__all__ = [
    "CHUNK",
    "PRIVATE_FILE",
    "copy_private",
    "create_private",
    "fsync_dir",
    "hash_file",
    "remove_quietly",
    "write_private_atomic",
]

PRIVATE_FILE: Final = 0o600
CHUNK: Final = 1 << 20


def create_private(path: Path) -> int:
    """Create ``path`` (it must not exist) with mode 0600 and return a descriptor for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, PRIVATE_FILE)
    except FileExistsError:
        raise BackupError(f"{path}: exists already") from None
    except OSError as exc:
        raise BackupError(f"{path}: cannot create: {exc.strerror}") from None
    os.fchmod(fd, PRIVATE_FILE)  # whatever the umask
    return fd


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_quietly(path: Path) -> None:
    """Remove the file ``path`` if it is there (cleanup after a failure)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def write_private_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` (mode 0600) as a whole: a temporary file, fsync, then ``os.replace``."""
    temp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    fd = create_private(temp)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError as exc:
        remove_quietly(temp)
        raise BackupError(f"{path}: cannot write: {exc.strerror}") from None
    except BaseException:
        remove_quietly(temp)
        raise
    fsync_dir(path.parent)


def hash_file(path: Path) -> tuple[str, int]:
    """The hex sha256 and the size of the regular file ``path`` (a symlink is refused)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BackupError(f"{path}: missing") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BackupError(f"{path}: is a symbolic link, not a file") from None
        raise BackupError(f"{path}: cannot read: {exc.strerror}") from None
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BackupError(f"{path}: not a regular file")
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def copy_private(source: Path, target: Path) -> tuple[str, int]:
    """Copy ``source`` to the new file ``target`` (0600, fsynced); its sha256 and size."""
    digest = hashlib.sha256()
    size = 0
    fd = create_private(target)
    try:
        with source.open("rb") as src, os.fdopen(fd, "wb", closefd=False) as dst:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(fd)
    except OSError as exc:
        remove_quietly(target)
        raise BackupError(f"cannot copy {source} to {target}: {exc.strerror}") from None
    except BaseException:
        remove_quietly(target)
        raise
    finally:
        os.close(fd)
    return digest.hexdigest(), size
